-- The distinct minutes present in one symbol's window (to list the missing ones).
SELECT DISTINCT toUnixTimestamp64Milli(open_time) AS open_ms
FROM ${database}.klines_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
ORDER BY open_ms
