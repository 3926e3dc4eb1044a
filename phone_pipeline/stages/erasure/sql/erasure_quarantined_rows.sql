-- The request rows that are not usable, as read, each with its reason and detail.
SELECT reason, detail, source_file, source_row, phone_number, requested_at, request_id
FROM erasure_classified
WHERE reason IS NOT NULL
