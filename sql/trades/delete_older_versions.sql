-- Second half of an idempotent replace: the new version is attached, older rows of the window go.
-- Lightweight DELETE masks rows synchronously: a plain SELECT sees each trade once afterwards.
DELETE FROM ${database}.trades
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND ts >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND ts < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND ingested_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
