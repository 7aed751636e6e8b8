-- 1-minute candles exactly as the exchange published them (REST, archives, closed stream klines).
--
-- Prices and quantities: Decimal(38, 18), parsed from the exchange's strings, never through float.
--   18 fractional digits keep sub-satoshi prices exact (SHIB/BTC 0.000000001745 needs 12);
--   20 integer digits hold any single quantity (a 25 000 000 000 PEPE volume needs 11) and sums of
--   ~1e12 quote volume per symbol-year with 8 orders of magnitude to spare.
--   Decimal128 MULTIPLICATION wraps silently (ClickHouse#38223): widen with toDecimal256(x, 18)
--   before price * qty (see sql/README.md).
CREATE TABLE IF NOT EXISTS ${database}.klines_1m
(
    exchange               LowCardinality(String)   CODEC(ZSTD(1)),         -- a few venues: dictionary-coded, ~0 B/row
    symbol                 LowCardinality(String)   CODEC(ZSTD(1)),         -- hundreds of symbols at most: dictionary-coded
    open_time              DateTime64(3, 'UTC')     CODEC(Delta, ZSTD(1)),  -- constant 60 s steps: Delta turns them into one repeated value
    close_time             DateTime64(3, 'UTC')     CODEC(Delta, ZSTD(1)),  -- open_time + 59.999 s, same shape as open_time
    open                   Decimal(38, 18)          CODEC(GCD, ZSTD(1)),    -- prices sit on a tick grid: GCD strips the common factor (measured best for decimals)
    high                   Decimal(38, 18)          CODEC(GCD, ZSTD(1)),
    low                    Decimal(38, 18)          CODEC(GCD, ZSTD(1)),
    close                  Decimal(38, 18)          CODEC(GCD, ZSTD(1)),
    volume                 Decimal(38, 18)          CODEC(GCD, ZSTD(1)),    -- quantities sit on a lot grid: GCD again
    quote_volume           Decimal(38, 18)          CODEC(ZSTD(1)),         -- products of price and qty share no useful GCD
    trades                 UInt64                   CODEC(T64, ZSTD(1)),    -- small counts in a wide type: T64 drops the unused high bits
    taker_buy_base_volume  Decimal(38, 18)          CODEC(GCD, ZSTD(1)),
    taker_buy_quote_volume Decimal(38, 18)          CODEC(ZSTD(1)),
    source                 LowCardinality(String)   CODEC(ZSTD(1)),         -- rest | archive | stream: which path wrote the row
    ingested_at            DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))  -- version: the newest write of a minute wins
)
-- ReplacingMergeTree is only the safety net: writers replace a (symbol, window) by inserting the new
-- version and deleting older versions in that window, so a plain SELECT (no FINAL) is exact after a write.
ENGINE = ReplacingMergeTree(ingested_at)
-- Monthly partitions: ~13 per symbol-year, far under the 100-partitions-per-insert limit, and a
-- partition count that stays in the low hundreds for a decade (daily would be thousands).
PARTITION BY toYYYYMM(open_time)
-- Every query filters on venue and symbol, then a time range: the leading key columns, lowest cardinality first.
ORDER BY (exchange, symbol, open_time);
