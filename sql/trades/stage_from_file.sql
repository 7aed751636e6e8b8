-- An aggTrades CSV (embedded mode: a local file, plain or gzip, that ClickHouse reads itself) into the stage.
-- ClickHouse parses the CSV. Prices and quantities are read as text and must be plain decimals with at
-- most 18 fractional digits (ClickHouse's own Decimal parser would round a 19th digit away and accept
-- signs and exponents); they are then converted exactly. The time unit is decided per value by
-- magnitude (µs from 2025 in spot files, ms before and in futures files): ts is always µs.
INSERT INTO ${database}.${stage}
    (exchange, symbol, trade_id, price, qty, first_trade_id, last_trade_id, ts, is_buyer_maker, source, ingested_at)
SELECT
    {exchange:String},
    {symbol:String},
    agg_trade_id,
    toDecimal128(price, 18),
    toDecimal128(quantity, 18),
    first_trade_id,
    last_trade_id,
    fromUnixTimestamp64Micro(if(transact_time > 100000000000000, transact_time, transact_time * 1000), 'UTC'),
    is_buyer_maker,
    {source:String},
    fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
FROM file({path:String}, 'CSV', {structure:String}, {compression:String})
WHERE throwIf(
    NOT (match(price, '^[0-9]{1,20}(\\.[0-9]{1,18})?$') AND match(quantity, '^[0-9]{1,20}(\\.[0-9]{1,18})?$')),
    'a price or quantity is not a plain non-negative decimal with at most 18 fractional digits'
) = 0
