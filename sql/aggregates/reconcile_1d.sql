-- Days of one symbol's window where ohlcv_1d differs from its hours in ohlcv_1h aggregated again now
-- (all fields, exactly; a day missing on either side counts). Empty when they agree.
SELECT
    toUnixTimestamp64Milli(day)                  AS open_ms,
    anyIf(row, side = 0)                         AS from_hours,
    anyIf(row, side = 1)                         AS stored,
    countIf(side = 0)                            AS from_hours_rows,
    countIf(side = 1)                            AS stored_rows
FROM
(
    SELECT 0 AS side, toStartOfDay(open_time) AS day,
           (argMin(open, open_time), max(high), min(low), argMax(close, open_time), sum(volume), sum(quote_volume),
            sum(trades), sum(taker_buy_base_volume), sum(taker_buy_quote_volume), sum(toUInt64(minutes))) AS row
    FROM ${database}.ohlcv_1h
    WHERE exchange = {exchange:String} AND symbol = {symbol:String}
      AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
    GROUP BY day
    UNION ALL
    SELECT 1, open_time,
           (open, high, low, close, volume, quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume,
            toUInt64(minutes))
    FROM ${database}.ohlcv_1d
    WHERE exchange = {exchange:String} AND symbol = {symbol:String}
      AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
)
GROUP BY day
HAVING from_hours_rows != 1 OR stored_rows != 1 OR from_hours != stored
ORDER BY day
