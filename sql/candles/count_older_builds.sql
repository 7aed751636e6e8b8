-- Candles of one symbol's window from builds before the given one (the rows a rebuild must remove).
SELECT count()
FROM ${database}.candles_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND built_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
