-- Hours of one symbol's window where ohlcv_1h differs from its minutes in klines_1m aggregated again now
-- (all fields, exactly; an hour missing on either side counts). Empty when they agree.
SELECT
    toUnixTimestamp64Milli(hour)                 AS open_ms,
    anyIf(row, side = 0)                         AS from_minutes,
    anyIf(row, side = 1)                         AS stored,
    countIf(side = 0)                            AS from_minutes_rows,
    countIf(side = 1)                            AS stored_rows
FROM
(
    SELECT 0 AS side, toStartOfHour(open_time) AS hour,
           (argMin(open, open_time), max(high), min(low), argMax(close, open_time), sum(volume), sum(quote_volume),
            sum(trades), sum(taker_buy_base_volume), sum(taker_buy_quote_volume), toUInt64(count())) AS row
    FROM ${database}.klines_1m
    WHERE exchange = {exchange:String} AND symbol = {symbol:String}
      AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
    GROUP BY hour
    UNION ALL
    SELECT 1, open_time,
           (open, high, low, close, volume, quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume,
            toUInt64(minutes))
    FROM ${database}.ohlcv_1h
    WHERE exchange = {exchange:String} AND symbol = {symbol:String}
      AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
)
GROUP BY hour
HAVING from_minutes_rows != 1 OR stored_rows != 1 OR from_minutes != stored
ORDER BY hour
