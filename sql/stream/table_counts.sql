-- Rows in trades and klines_1m, to tell how many a flush inserted.
SELECT (SELECT count() FROM ${database}.trades), (SELECT count() FROM ${database}.klines_1m)
