-- Exchange messages or rows that could not be accepted, kept verbatim with the reason.
-- Nothing malformed is silently dropped: it lands here, and the run that met it says so.
CREATE TABLE IF NOT EXISTS ${database}.dead_letters
(
    received_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),  -- arrival order
    exchange    LowCardinality(String)                CODEC(ZSTD(1)),
    source      LowCardinality(String)                CODEC(ZSTD(1)),         -- rest | archive | stream
    kind        LowCardinality(String)                CODEC(ZSTD(1)),         -- kline | agg_trade | ...
    symbol      LowCardinality(String)                CODEC(ZSTD(1)),
    reason      String                                CODEC(ZSTD(3)),         -- human-readable: which field, what was wrong
    payload     String                                CODEC(ZSTD(3))          -- the raw message or row exactly as received
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (exchange, kind, received_at);
