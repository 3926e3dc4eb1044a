-- The requests not completed yet, with their number, in request id order: each is applied
-- once, then marked completed.
SELECT request_id, usable.e164
FROM erasure_requests
JOIN erasure_usable AS usable USING (request_id)
WHERE completed_at IS NULL
ORDER BY 1
