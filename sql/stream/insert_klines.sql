-- The flush's closed 1m klines for minutes klines_1m does not hold yet (source 'stream'). A later backfill
-- of the day replaces them with the exchange's REST or archive rows.
INSERT INTO ${database}.klines_1m
    (exchange, symbol, open_time, close_time, open, high, low, close, volume, quote_volume, trades,
     taker_buy_base_volume, taker_buy_quote_volume, source, ingested_at)
SELECT 'binance', symbol, open_time, open_time + toIntervalMillisecond(59999), k_open, k_high, k_low, k_close,
       k_volume, k_quote_volume, k_trades, k_taker_buy_base_volume, k_taker_buy_quote_volume, 'stream', now64(3)
FROM ${database}.${parsed}
WHERE kind = 'kline' AND reason = '' AND closed
  AND (symbol, open_time) NOT IN
  (
      SELECT symbol, open_time FROM ${database}.klines_1m
      WHERE exchange = 'binance'
        AND (symbol, open_time) IN (SELECT symbol, open_time FROM ${database}.${parsed} WHERE kind = 'kline' AND closed)
  )
ORDER BY symbol, open_time
LIMIT 1 BY symbol, open_time
