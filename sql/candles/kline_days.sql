-- Which UTC days of one symbol's window have klines to reconcile against (and how many minutes).
SELECT toString(toDate(open_time)) AS day, count() AS minutes
FROM ${database}.klines_1m
WHERE exchange = {exchange:String} AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
GROUP BY day
ORDER BY day
