-- Every request with when it was received and completed and the rows it removed, for the
-- audit table of the metadata (request ids and times, never numbers).
SELECT request_id, received_at, completed_at,
       (SELECT coalesce(sum(rows), 0) FROM erasure_removals AS r
        WHERE r.request_id = q.request_id)
FROM erasure_requests AS q
ORDER BY received_at
