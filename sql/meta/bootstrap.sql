-- Run before any migration: the target database and the table that records applied migrations.
CREATE DATABASE IF NOT EXISTS ${database};

CREATE TABLE IF NOT EXISTS ${database}.schema_migrations
(
    version    UInt32                 CODEC(ZSTD(1)),
    name       String                 CODEC(ZSTD(1)),
    checksum   String                 CODEC(ZSTD(1)),  -- sha256 of the file's bytes: an applied file must not change
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(ZSTD(1))
)
ENGINE = MergeTree
ORDER BY version;
