-- 1m candles of one symbol's window, built from trades with a plain SELECT (each trade once).
-- Open and close are chosen by aggregate trade id, not by time: many trades share a millisecond.
-- Notional is summed as Decimal256 products (Decimal128 multiplication wraps silently, sql/README.md).
-- only_missing = 1 (the stream's closed minutes) builds only the minutes that have no candle yet, so a
-- minute is built once and no older build needs deleting; 0 (a rebuild) builds every minute of the window.
INSERT INTO ${database}.candles_1m
SELECT
    exchange,
    symbol,
    toStartOfMinute(ts)                                                    AS open_time,
    argMin(price, trade_id)                                                AS open,
    max(price)                                                             AS high,
    min(price)                                                             AS low,
    argMax(price, trade_id)                                                AS close,
    sum(qty)                                                               AS volume,
    toDecimal128(sum(toDecimal256(price, 18) * qty), 18)                   AS quote_volume,
    sum(last_trade_id - first_trade_id + 1)                                AS trade_count,
    sumIf(qty, NOT is_buyer_maker)                                         AS taker_buy_base_volume,
    toDecimal128(sumIf(toDecimal256(price, 18) * qty, NOT is_buyer_maker), 18) AS taker_buy_quote_volume,
    count()                                                                AS agg_trades,
    min(trade_id)                                                          AS first_agg_id,
    max(trade_id)                                                          AS last_agg_id,
    fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')                    AS built_at
FROM ${database}.trades
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND ts >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND ts < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND (NOT {only_missing:Bool} OR toStartOfMinute(ts) NOT IN
  (
      SELECT open_time FROM ${database}.candles_1m
      WHERE exchange = {exchange:String}
        AND symbol = {symbol:String}
        AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
        AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  ))
GROUP BY exchange, symbol, open_time
