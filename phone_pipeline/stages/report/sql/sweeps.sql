-- The retention sweeps since $since, per sweep and zone: tables with rows deleted, rows deleted.
SELECT swept_at, as_of, zone, count(*) FILTER (WHERE rows_deleted > 0) AS tables_swept,
       sum(rows_deleted) AS rows_deleted
FROM analytics.retention_log
WHERE swept_at >= $since
GROUP BY ALL
