-- Holes in one symbol's aggregate ids within a time window: (the id before, the id after), oldest first.
SELECT prev_id, trade_id
FROM
(
    SELECT trade_id, lagInFrame(trade_id) OVER w AS prev_id, row_number() OVER w AS n
    FROM ${database}.trades
    WHERE exchange = {exchange:String}
      AND symbol = {symbol:String}
      AND ts >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
      AND ts < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
    WINDOW w AS (ORDER BY exchange, symbol, trade_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
WHERE n > 1 AND trade_id > prev_id + 1
ORDER BY trade_id
LIMIT {limit:UInt32}
