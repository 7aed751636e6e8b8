-- Days of one symbol's window from its hours (plain SELECT: one row per hour).
INSERT INTO ${database}.ohlcv_1d
SELECT
    exchange,
    symbol,
    toStartOfDay(open_time)         AS day,
    argMin(open, open_time),
    max(high),
    min(low),
    argMax(close, open_time),
    sum(volume),
    sum(quote_volume),
    sum(trades),
    sum(taker_buy_base_volume),
    sum(taker_buy_quote_volume),
    sum(minutes),
    count(),
    fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
FROM ${database}.ohlcv_1h
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
GROUP BY exchange, symbol, day
