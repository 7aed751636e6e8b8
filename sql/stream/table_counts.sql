-- Rows in trades, klines_1m and individual_trades, to tell how many a flush inserted.
SELECT (SELECT count() FROM ${database}.trades), (SELECT count() FROM ${database}.klines_1m),
       (SELECT count() FROM ${database}.individual_trades)
