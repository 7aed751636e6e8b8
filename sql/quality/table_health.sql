-- Per table of the warehouse database: the usual ClickHouse health numbers from system.parts (active parts
-- only; load stages excluded). Compression ratio = uncompressed / compressed bytes.
SELECT
    table,
    sum(rows)                                         AS rows,
    sum(bytes_on_disk)                                AS bytes_on_disk,
    sum(data_compressed_bytes)                        AS compressed_bytes,
    sum(data_uncompressed_bytes)                      AS uncompressed_bytes,
    count()                                           AS active_parts,
    uniqExact(partition_id)                           AS partitions,
    max(modification_time)                            AS last_modified
FROM system.parts
WHERE database = {database:String}
  AND active
  AND NOT startsWith(table, '_stage')
GROUP BY table
ORDER BY table
