-- For each given symbol: its newest UTC day in klines_1m within the lookback, and how many minutes it holds.
SELECT symbol, toString(max(day)) AS newest_day, argMax(minutes, day) AS minutes
FROM
(
    SELECT symbol, toDate(open_time) AS day, count() AS minutes
    FROM ${database}.klines_1m
    WHERE exchange = {exchange:String}
      AND symbol IN {symbols:Array(String)}
      AND open_time >= fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')
      AND open_time < fromUnixTimestamp64Milli({before_ms:Int64}, 'UTC')
    GROUP BY symbol, day
)
GROUP BY symbol
ORDER BY symbol
