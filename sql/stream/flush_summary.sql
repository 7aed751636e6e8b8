-- What a flush held: per kind and symbol, messages, refused ones, the trade-time span (µs) for the candles
-- to build and the lag, the newest event time, and the first trade id.
SELECT
    kind,
    symbol,
    count()                                                   AS messages,
    countIf(reason != '')                                     AS refused,
    toUnixTimestamp64Micro(minIf(ts, kind IN ('agg_trade', 'trade') AND reason = '')) AS first_ts_us,
    toUnixTimestamp64Micro(maxIf(ts, kind IN ('agg_trade', 'trade') AND reason = '')) AS last_ts_us,
    countIf(kind = 'kline' AND reason = '' AND closed)        AS closed_klines,
    minIf(trade_id, kind IN ('agg_trade', 'trade') AND reason = '') AS first_id
FROM ${database}.${parsed}
GROUP BY kind, symbol
ORDER BY kind, symbol
