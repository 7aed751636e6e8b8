-- A twin of trades (same columns, codecs, key and partitioning) that one load fills and checks before
-- its partition is attached to trades: nothing of a bad day ever reaches trades.
CREATE TABLE IF NOT EXISTS ${database}.${stage} AS ${database}.trades
