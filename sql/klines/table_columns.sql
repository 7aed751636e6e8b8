-- Column names and types of a table, for the column-schema metadata Dagster shows.
SELECT name, type, comment
FROM system.columns
WHERE database = {database:String} AND table = {table:String}
ORDER BY position
