-- The CSV columns of an aggTrades archive as sent (server mode: the client streams the CSV into this
-- table, then stage_from_raw.sql checks and converts it exactly like stage_from_file.sql).
CREATE TABLE IF NOT EXISTS ${database}.${raw}
(
    agg_trade_id   UInt64,
    price          String,
    quantity       String,
    first_trade_id UInt64,
    last_trade_id  UInt64,
    transact_time  Int64,
    is_buyer_maker Bool,
    is_best_match  Bool
)
ENGINE = Memory
