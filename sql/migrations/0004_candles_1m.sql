-- 1-minute candles built from market.trades (the ground truth), one row per (exchange, symbol, minute)
-- that had trades. Compare with market.klines_1m, which holds what the exchange published.
--
-- Built per window from the trades table, not fed by a materialized view: an MV sees every inserted block,
-- so a re-ingested day would be counted twice (reference/clickhouse.md §1.5). A rebuild inserts the new
-- build, then deletes older builds of the window. Stored as finished values in a ReplacingMergeTree
-- versioned by built_at: if a background merge meets the old and the new build of a minute between the
-- insert and the delete, the newer build wins (an AggregatingMergeTree would add the two builds' states).
CREATE TABLE IF NOT EXISTS ${database}.candles_1m
(
    exchange               LowCardinality(String) CODEC(ZSTD(1)),
    symbol                 LowCardinality(String) CODEC(ZSTD(1)),
    open_time              DateTime64(3, 'UTC')   CODEC(Delta, ZSTD(1)),  -- start of the minute
    open                   Decimal(38, 18)        CODEC(GCD, ZSTD(1)),    -- price of the lowest trade id in the minute
    high                   Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    low                    Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    close                  Decimal(38, 18)        CODEC(GCD, ZSTD(1)),    -- price of the highest trade id (ids order trades within a ms)
    volume                 Decimal(38, 18)        CODEC(GCD, ZSTD(1)),
    quote_volume           Decimal(38, 18)        CODEC(ZSTD(1)),         -- sum of price × qty, exact (Decimal256 products)
    trades                 UInt64                 CODEC(T64, ZSTD(1)),    -- individual trades: sum(last - first + 1), as in klines
    taker_buy_base_volume  Decimal(38, 18)        CODEC(GCD, ZSTD(1)),    -- qty where the buyer was the taker (not is_buyer_maker)
    taker_buy_quote_volume Decimal(38, 18)        CODEC(ZSTD(1)),
    agg_trades             UInt32                 CODEC(T64, ZSTD(1)),    -- aggregate trades in the minute
    first_trade_id         UInt64                 CODEC(DoubleDelta, ZSTD(1)),  -- aggregate ids spanned
    last_trade_id          UInt64                 CODEC(DoubleDelta, ZSTD(1)),
    built_at               DateTime64(3, 'UTC')   CODEC(Delta, ZSTD(1))   -- build version: the newest wins
)
ENGINE = ReplacingMergeTree(built_at)
PARTITION BY toYYYYMM(open_time)
ORDER BY (exchange, symbol, open_time);
