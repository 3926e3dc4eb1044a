-- The staged rows, and how many of them carry a time not truncated to the hour (must be 0):
-- one published row per admitted call, no time finer than the hour.
SELECT count(*) AS staged,
       count(*) FILTER (WHERE date_trunc('hour', call_hour) <> call_hour) AS untruncated
FROM staged_pseudonymized
