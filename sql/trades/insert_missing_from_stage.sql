-- Gap repair: the staged trades that trades does not hold yet, each id once (stream rows stay as they are).
INSERT INTO ${database}.trades
SELECT *
FROM ${database}.${stage}
WHERE (exchange, symbol, trade_id) NOT IN
(
    SELECT exchange, symbol, trade_id FROM ${database}.trades
    WHERE (exchange, symbol, trade_id) IN (SELECT exchange, symbol, trade_id FROM ${database}.${stage})
)
ORDER BY exchange, symbol, trade_id
LIMIT 1 BY exchange, symbol, trade_id
