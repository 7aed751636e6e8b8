-- Rows of one symbol's window in a derived table from builds before the given one (what a rebuild removes).
SELECT count()
FROM ${database}.${table}
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND built_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
