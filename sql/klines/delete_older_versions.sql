-- Second half of an idempotent replace: the new version is already inserted, older rows go.
-- Lightweight DELETE masks rows synchronously, so a plain SELECT sees one row per minute afterwards.
DELETE FROM ${database}.klines_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND ingested_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
