-- The time (µs) of the aggregate trade just before a flush's first one: its minute may still have been open
-- at the previous flush, so the candles to build start there. A primary-key point read.
SELECT toUnixTimestamp64Micro(ts)
FROM ${database}.trades
WHERE exchange = 'binance' AND symbol = {symbol:String} AND trade_id = {trade_id:UInt64}
LIMIT 1
