-- The retention sweeps since $since (one per run), per zone: when, the day counted from, tables
-- with rows deleted, rows deleted.
SELECT min(swept_at) AS swept_at, run_id AS sweep, as_of, zone,
       count(*) FILTER (WHERE rows_deleted > 0) AS tables_swept, sum(rows_deleted) AS rows_deleted
FROM analytics.retention_log
WHERE swept_at >= $since
GROUP BY run_id, as_of, zone
