-- Rows in trades (from part metadata), to tell how many an insert added.
SELECT count() FROM ${database}.trades
