-- Every row of one symbol's window, as stored (plain SELECT), for validation against the schema.
SELECT exchange, symbol, open_time, close_time, open, high, low, close, volume, quote_volume, trades,
       taker_buy_base_volume, taker_buy_quote_volume
FROM ${database}.klines_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
ORDER BY open_time
