-- Every refused frame of a flush, verbatim, with its reason. A frame already kept in the last day (a replayed
-- spool block, a repeated message) is not kept twice.
INSERT INTO ${database}.dead_letters (exchange, source, kind, symbol, reason, payload)
SELECT 'binance', 'stream', kind, symbol, reason, raw
FROM ${database}.${parsed}
WHERE reason != ''
  AND cityHash64(raw) NOT IN
  (
      SELECT cityHash64(payload) FROM ${database}.dead_letters
      WHERE exchange = 'binance' AND source = 'stream' AND received_at >= now64(3) - toIntervalDay(1)
  )
ORDER BY n
LIMIT 1 BY raw
