-- The partitions a stage holds (one for a day's load): each is attached to trades whole.
SELECT DISTINCT partition_id
FROM system.parts
WHERE database = {database:String} AND table = {table:String} AND active
ORDER BY partition_id
