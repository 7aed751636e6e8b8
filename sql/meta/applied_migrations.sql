SELECT version, name, checksum
FROM ${database}.schema_migrations
ORDER BY version
