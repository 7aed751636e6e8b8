-- What a load must satisfy before its stage is attached to trades, with the first offending trade of each
-- kind (ids are unique per symbol, so a trade id names the row). Row-to-row checks run in id order.
SELECT
    count()                                                             AS row_count,
    min(trade_id)                                                       AS first_id,
    max(trade_id)                                                       AS last_id,
    toUnixTimestamp64Micro(min(ts))                                     AS first_ts_us,
    toUnixTimestamp64Micro(max(ts))                                     AS last_ts_us,
    countIf(n > 1 AND trade_id != prev_id + 1)                          AS id_gaps,
    argMinIf((prev_id, trade_id), trade_id, n > 1 AND trade_id != prev_id + 1)            AS first_id_gap,
    countIf(n > 1 AND first_trade_id != prev_last + 1)                  AS chain_breaks,
    argMinIf((prev_last, first_trade_id, trade_id), trade_id, n > 1 AND first_trade_id != prev_last + 1) AS first_chain_break,
    countIf(n > 1 AND ts < prev_ts)                                     AS time_reversals,
    minIf(trade_id, n > 1 AND ts < prev_ts)                             AS first_time_reversal_id,
    countIf(price <= 0 OR qty <= 0 OR first_trade_id > last_trade_id)   AS bad_values,
    minIf(trade_id, price <= 0 OR qty <= 0 OR first_trade_id > last_trade_id) AS first_bad_value_id,
    countIf(ts < fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
            OR ts >= fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC'))   AS outside_window,
    minIf(trade_id, ts < fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
                    OR ts >= fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')) AS first_outside_id,
    countIf(exchange != {exchange:String} OR symbol != {symbol:String}) AS foreign_rows
FROM
(
    SELECT
        exchange, symbol, trade_id, first_trade_id, last_trade_id, price, qty, ts,
        row_number() OVER w         AS n,
        lagInFrame(trade_id) OVER w      AS prev_id,
        lagInFrame(last_trade_id) OVER w AS prev_last,
        lagInFrame(ts) OVER w            AS prev_ts
    FROM ${database}.${stage}
    WINDOW w AS (ORDER BY exchange, symbol, trade_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
