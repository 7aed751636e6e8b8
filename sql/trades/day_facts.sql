-- Per UTC day of one symbol's window, read back from trades with a plain SELECT (no FINAL): what a
-- materialization reports and what the checks assert. Row-to-row checks run in id order within each day.
SELECT
    toString(day)                                             AS day,
    count()                                                   AS row_count,
    uniqExact(trade_id)                                       AS distinct_ids,
    min(trade_id)                                             AS first_id,
    max(trade_id)                                             AS last_id,
    countIf(n > 1 AND trade_id > prev_id + 1)                 AS id_gaps,
    sumIf(trade_id - prev_id - 1, n > 1 AND trade_id > prev_id + 1) AS missing_ids,
    groupArrayIf(10)((prev_id, trade_id), n > 1 AND trade_id > prev_id + 1) AS first_id_gaps,
    countIf(n > 1 AND first_trade_id != prev_last + 1)        AS chain_breaks,
    groupArrayIf(10)((prev_last, first_trade_id), n > 1 AND first_trade_id != prev_last + 1) AS first_chain_breaks,
    sum(last_trade_id - first_trade_id + 1)                   AS trades,
    sum(qty)                                                  AS volume,
    countIf(source = 'archive')                               AS from_archive,
    countIf(source = 'rest')                                  AS from_rest,
    countIf(source = 'stream')                                AS from_stream
FROM
(
    SELECT
        toDate(ts) AS day, trade_id, first_trade_id, last_trade_id, qty, source,
        row_number() OVER w              AS n,
        lagInFrame(trade_id) OVER w      AS prev_id,
        lagInFrame(last_trade_id) OVER w AS prev_last
    FROM ${database}.trades
    WHERE exchange = {exchange:String}
      AND symbol = {symbol:String}
      AND ts >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND ts < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
    WINDOW w AS (PARTITION BY toDate(ts) ORDER BY exchange, symbol, trade_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
GROUP BY day
ORDER BY day
