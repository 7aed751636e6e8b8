-- The flush's valid individual trades (`@trade`) that individual_trades does not hold yet: each id once.
INSERT INTO ${database}.individual_trades
    (exchange, symbol, trade_id, price, qty, ts, is_buyer_maker, source, ingested_at)
SELECT 'binance', symbol, trade_id, price, qty, ts, is_buyer_maker, 'stream', now64(3)
FROM ${database}.${parsed}
WHERE kind = 'trade' AND reason = ''
  AND (symbol, trade_id) NOT IN
  (
      SELECT symbol, trade_id FROM ${database}.individual_trades
      WHERE exchange = 'binance'
        AND (symbol, trade_id) IN (SELECT symbol, trade_id FROM ${database}.${parsed} WHERE kind = 'trade' AND reason = '')
  )
ORDER BY symbol, trade_id
LIMIT 1 BY symbol, trade_id
