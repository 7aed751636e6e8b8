-- Second half of a rebuild of a derived table: the new build is in, older builds of the window go (a row
-- whose sources are all gone disappears too).
DELETE FROM ${database}.${table}
WHERE exchange = {exchange:String}
  AND symbol = {symbol:String}
  AND open_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
  AND open_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC')
  AND built_at < fromUnixTimestamp64Milli({version_ms:Int64}, 'UTC')
