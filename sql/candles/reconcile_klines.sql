-- Minutes of one symbol's window where the candles built from trades and the exchange's klines disagree
-- on trade count, volume or quote volume (exactly). A kline minute without trades matches no candle; a
-- candle minute without a kline is a mismatch.
SELECT
    toUnixTimestamp64Milli(open_time) AS open_ms,
    sum(k_trades)  AS kline_trades,  sum(c_trades)  AS candle_trades,
    sum(k_volume)  AS kline_volume,  sum(c_volume)  AS candle_volume,
    sum(k_quote)   AS kline_quote_volume, sum(c_quote) AS candle_quote_volume,
    max(has_kline) AS has_kline
FROM
(
    SELECT open_time, trades AS k_trades, toUInt64(0) AS c_trades, volume AS k_volume,
           toDecimal128(0, 18) AS c_volume, quote_volume AS k_quote, toDecimal128(0, 18) AS c_quote,
           toUInt8(1) AS has_kline
    FROM ${database}.klines_1m
    WHERE exchange = {exchange:String} AND symbol = {symbol:String}
      AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
    UNION ALL
    SELECT open_time, toUInt64(0), trades, toDecimal128(0, 18), volume, toDecimal128(0, 18), quote_volume,
           toUInt8(0)
    FROM ${database}.candles_1m
    WHERE exchange = {exchange:String} AND symbol = {symbol:String}
      AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
)
GROUP BY open_time
HAVING kline_trades != candle_trades OR kline_volume != candle_volume
    OR kline_quote_volume != candle_quote_volume OR has_kline = 0
ORDER BY open_time
