-- A request applied: when, and the partitions (dates) it changed, for the audit.
UPDATE erasure_requests
SET completed_at = now(), affected_partitions = $affected_partitions
WHERE request_id = $request_id
