-- One flush's raw frames, exactly as received (one String per frame), for ClickHouse to parse in bulk.
CREATE TABLE IF NOT EXISTS ${database}.${raw} (raw String) ENGINE = Memory
