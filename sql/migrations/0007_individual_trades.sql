-- Binance individual trades (the `<symbol>@trade` stream, REST /api/v3/trades, the `trades` archives):
-- one row per exchange trade id, exactly as published.
--
-- A table of its own, not rows of `trades`: `trades` holds aggregate trades, whose ids are another id
-- space (one aggregate id covers first_trade_id..last_trade_id). Mixing the two would double count volume
-- and break the aggregate-id chain checks. `first_trade_id`/`last_trade_id` of `trades` refer to the
-- `trade_id` here, so the two tables join.
-- Identity is (exchange, symbol, trade_id); `ts` is µs (a ms source is stored as ms × 1000), as in `trades`.
CREATE TABLE IF NOT EXISTS ${database}.individual_trades
(
    exchange       LowCardinality(String)  CODEC(ZSTD(1)),
    symbol         LowCardinality(String)  CODEC(ZSTD(1)),
    trade_id       UInt64                  CODEC(DoubleDelta, ZSTD(1)), -- contiguous ids: ~0 B/row
    price          Decimal(38, 18)         CODEC(GCD, ZSTD(1)),        -- tick grid
    qty            Decimal(38, 18)         CODEC(GCD, ZSTD(1)),        -- lot grid
    ts             DateTime64(6, 'UTC')    CODEC(Delta, ZSTD(1)),      -- trade time
    is_buyer_maker Bool                    CODEC(ZSTD(1)),
    source         LowCardinality(String)  CODEC(ZSTD(1)),             -- stream | rest | archive
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX ts_range ts TYPE minmax GRANULARITY 1
)
-- Writers insert only ids the table does not hold yet, so a plain SELECT sees each trade once:
-- ReplacingMergeTree is the safety net.
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (exchange, symbol, trade_id);
