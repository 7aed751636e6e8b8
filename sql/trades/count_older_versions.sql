-- Rows of one symbol's window written before the given version (the rows a replace must remove).
SELECT count()
FROM ${database}.trades
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND ts >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND ts < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND ingested_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
