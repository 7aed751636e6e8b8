-- Second half of a rebuild: the new build is inserted, older builds of the window go (a minute whose
-- trades are gone disappears too).
DELETE FROM ${database}.candles_1m
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND built_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
