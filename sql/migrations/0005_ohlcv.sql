-- Hourly and daily OHLCV built from market.klines_1m (1h from the minutes, 1d from the hours).
--
-- Exact: open is the first minute's open, close the last minute's close, high the max, low the min,
-- volumes and trade counts the sums (Decimal sums are exact). `minutes` says how many 1m klines a row was
-- built from (60 for a complete hour, 1440 for a complete day), so an incomplete hour or day is visible.
-- Rebuilt per (symbol, UTC day): the new build is inserted, then older builds of the day are deleted, so a
-- plain SELECT sees one row per hour/day; ReplacingMergeTree(built_at) keeps the newer build if a merge
-- meets both first. Not a SummingMergeTree: it would add prices across parts (reference/clickhouse.md §3.2).
CREATE TABLE IF NOT EXISTS ${database}.ohlcv_1h
(
    exchange               LowCardinality(String) CODEC(ZSTD(1)),
    symbol                 LowCardinality(String) CODEC(ZSTD(1)),
    open_time              DateTime64(3, 'UTC')   CODEC(Delta, ZSTD(1)),  -- start of the hour
    open                   Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    high                   Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    low                    Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    close                  Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    volume                 Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    quote_volume           Decimal(38, 18)        CODEC(ZSTD(1)),
    trades                 UInt64                 CODEC(T64, ZSTD(1)),
    taker_buy_base_volume  Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    taker_buy_quote_volume Decimal(38, 18)        CODEC(ZSTD(1)),
    minutes                UInt16                 CODEC(T64, ZSTD(1)),    -- 1m klines it was built from (60 = complete)
    built_at               DateTime64(3, 'UTC')   CODEC(Delta, ZSTD(1))   -- build version: the newest wins
)
ENGINE = ReplacingMergeTree(built_at)
PARTITION BY toYYYYMM(open_time)
ORDER BY (exchange, symbol, open_time);

CREATE TABLE IF NOT EXISTS ${database}.ohlcv_1d
(
    exchange               LowCardinality(String) CODEC(ZSTD(1)),
    symbol                 LowCardinality(String) CODEC(ZSTD(1)),
    open_time              DateTime64(3, 'UTC')   CODEC(Delta, ZSTD(1)),  -- start of the UTC day
    open                   Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    high                   Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    low                    Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    close                  Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    volume                 Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    quote_volume           Decimal(38, 18)        CODEC(ZSTD(1)),
    trades                 UInt64                 CODEC(T64, ZSTD(1)),
    taker_buy_base_volume  Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    taker_buy_quote_volume Decimal(38, 18)        CODEC(ZSTD(1)),
    minutes                UInt16                 CODEC(T64, ZSTD(1)),    -- 1m klines under it (1440 = complete)
    hours                  UInt8                  CODEC(T64, ZSTD(1)),    -- hourly rows it was built from
    built_at               DateTime64(3, 'UTC')   CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(built_at)
-- ~365 rows per symbol-year: yearly partitions keep the partition count tiny.
PARTITION BY toYear(open_time)
ORDER BY (exchange, symbol, open_time);
