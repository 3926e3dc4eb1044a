-- Requests are kept across refreshes (their completion is evidence): a new one is appended
-- with the time it was received, one already registered is left as it is.
INSERT OR IGNORE INTO erasure_requests BY NAME
SELECT request_id, requested_at_utc AS requested_at, source_file, now() AS received_at
FROM erasure_usable
