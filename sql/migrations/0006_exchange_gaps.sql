-- Ranges the exchange itself has no data for (REST returned nothing when a gap was repaired): recorded so
-- gap repair does not ask for them again and again, and so a report can tell them from our own losses.
CREATE TABLE IF NOT EXISTS ${database}.exchange_gaps
(
    exchange   LowCardinality(String)  CODEC(ZSTD(1)),
    symbol     LowCardinality(String)  CODEC(ZSTD(1)),
    kind       LowCardinality(String)  CODEC(ZSTD(1)),      -- klines (minutes, epoch ms) | agg_trades (aggregate ids)
    first      Int64                   CODEC(ZSTD(1)),      -- first missing minute (ms) or aggregate id
    last       Int64                   CODEC(ZSTD(1)),      -- last missing minute (ms) or aggregate id, inclusive
    found_at   DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree(found_at)
ORDER BY (exchange, symbol, kind, first, last);
