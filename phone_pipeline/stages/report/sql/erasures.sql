-- Erasure requests made or completed since $since, and every pending one: their times, the days
-- they changed and the rows they removed. No request id, no number, no pseudonym: the request
-- table holds none, the register of pseudonyms is not read.
SELECT r.requested_at, r.received_at, r.completed_at,
       coalesce(len(r.affected_partitions), 0) AS partitions,
       coalesce((SELECT sum(m.rows) FROM erasure_removals AS m WHERE m.request_id = r.request_id),
                0) AS rows_removed
FROM erasure_requests AS r
WHERE r.requested_at >= $since OR r.completed_at >= $since OR r.completed_at IS NULL
