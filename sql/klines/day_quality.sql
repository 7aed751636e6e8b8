-- Per UTC day of one symbol's window: what a materialization reports and what the checks assert.
SELECT
    toString(toDate(open_time))                                   AS day,
    count()                                                       AS row_count,
    uniqExact(open_time)                                          AS distinct_minutes,
    toUnixTimestamp64Milli(min(open_time))                        AS first_open_ms,
    toUnixTimestamp64Milli(max(open_time))                        AS last_open_ms,
    countIf(NOT (low <= least(open, close) AND greatest(open, close) <= high)) AS ohlc_violations,
    countIf(volume < 0 OR quote_volume < 0
            OR taker_buy_base_volume < 0 OR taker_buy_quote_volume < 0)       AS negative_volumes,
    countIf(toUnixTimestamp64Milli(open_time) % 60000 != 0
            OR toUnixTimestamp64Milli(close_time) != toUnixTimestamp64Milli(open_time) + 59999) AS misaligned_rows
FROM ${database}.klines_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
GROUP BY day
ORDER BY day
