-- The flush's valid aggregate trades that trades does not hold yet (a repeated message, a rotation overlap
-- or a replayed spool block adds nothing): each trade id once, plain SELECT stays exact.
INSERT INTO ${database}.trades
    (exchange, symbol, trade_id, price, qty, first_trade_id, last_trade_id, ts, is_buyer_maker, source, ingested_at)
SELECT 'binance', symbol, trade_id, price, qty, first_trade_id, last_trade_id, ts, is_buyer_maker, 'stream', now64(3)
FROM ${database}.${parsed}
WHERE kind = 'agg_trade' AND reason = ''
  AND (symbol, trade_id) NOT IN
  (
      SELECT symbol, trade_id FROM ${database}.trades
      WHERE exchange = 'binance'
        AND (symbol, trade_id) IN (SELECT symbol, trade_id FROM ${database}.${parsed} WHERE kind = 'agg_trade' AND reason = '')
  )
ORDER BY symbol, trade_id
LIMIT 1 BY symbol, trade_id
