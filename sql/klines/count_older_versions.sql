-- Rows of one symbol's window written before the given version (the rows a replace must remove).
SELECT count()
FROM ${database}.klines_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND ingested_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
