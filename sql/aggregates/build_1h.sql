-- Hours of one symbol's window from its 1m klines (plain SELECT: one row per minute).
INSERT INTO ${database}.ohlcv_1h
SELECT
    exchange,
    symbol,
    toStartOfHour(open_time)        AS hour,
    argMin(open, open_time),
    max(high),
    min(low),
    argMax(close, open_time),
    sum(volume),
    sum(quote_volume),
    sum(trades),
    sum(taker_buy_base_volume),
    sum(taker_buy_quote_volume),
    count(),
    fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
FROM ${database}.klines_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
GROUP BY exchange, symbol, hour
