-- Binance aggregate trades (one row per aggregate trade id), exactly as the exchange published them,
-- from the daily archives, REST /api/v3/aggTrades and (later) the aggTrade stream.
--
-- Identity is (exchange, symbol, trade_id): the same trade from the archive, REST or the stream is one
-- row. Its timestamp does not depend on the source either: `ts` is microseconds everywhere (archives carry
-- µs from 2025-01-01; REST and streams are asked for µs; a ms source is stored as ms × 1000).
-- Codecs from the measurements in reference/clickhouse.md §1.2 (bytes per row: bench/archive_ingest.py).
CREATE TABLE IF NOT EXISTS ${database}.trades
(
    exchange       LowCardinality(String)  CODEC(ZSTD(1)),             -- a few venues: dictionary-coded, ~0 B/row
    symbol         LowCardinality(String)  CODEC(ZSTD(1)),
    trade_id       UInt64                  CODEC(DoubleDelta, ZSTD(1)), -- contiguous ids: DoubleDelta makes them ~0 B/row
    price          Decimal(38, 18)         CODEC(GCD, ZSTD(1)),        -- tick grid: GCD strips the common factor
    qty            Decimal(38, 18)         CODEC(GCD, ZSTD(1)),        -- lot grid: GCD again
    first_trade_id UInt64                  CODEC(DoubleDelta, ZSTD(1)), -- increasing, small steps
    last_trade_id  UInt64                  CODEC(DoubleDelta, ZSTD(1)),
    ts             DateTime64(6, 'UTC')    CODEC(Delta, ZSTD(1)),      -- µs transact time; Delta of sorted times is small
    is_buyer_maker Bool                    CODEC(ZSTD(1)),
    source         LowCardinality(String)  CODEC(ZSTD(1)),             -- archive | rest | stream
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),  -- write version: the newest wins
    -- ids and times rise together, so a per-granule min/max of ts prunes time-range reads to a few granules.
    INDEX ts_range ts TYPE minmax GRANULARITY 1
)
-- Writers replace a (symbol, UTC day) by attaching the new version, then deleting older versions of the
-- day, so a plain SELECT (no FINAL) sees each trade once. ReplacingMergeTree is only the safety net.
ENGINE = ReplacingMergeTree(ingested_at)
-- Monthly: ~13 partitions per symbol-year. A day's load is staged in a twin table and attached whole.
PARTITION BY toYYYYMM(ts)
-- Identity first: the key that deduplicates is the trade id, never a timestamp.
ORDER BY (exchange, symbol, trade_id);
