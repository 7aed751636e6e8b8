-- Per UTC day of one symbol's window: what the aggregates hold (for metadata and Plots).
SELECT
    toString(toDate(open_time))   AS day,
    count()                       AS hours,
    countIf(minutes < 60)         AS incomplete_hours,
    sum(minutes)                  AS minutes_total
FROM ${database}.ohlcv_1h
WHERE exchange = {exchange:String} AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
GROUP BY day
ORDER BY day
