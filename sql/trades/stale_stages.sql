-- Stage tables a crashed load left behind, older than the given hours.
SELECT name
FROM system.tables
WHERE database = {database:String}
  AND startsWith(name, {prefix:String})
  AND metadata_modification_time < now() - toIntervalSecond(toUInt64({hours:Float64} * 3600))
ORDER BY name
