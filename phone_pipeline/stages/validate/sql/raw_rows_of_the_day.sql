-- The raw rows of the day with the load order of their file: the place of a row (file, then
-- row) decides which of two rows with one call_id is the duplicate.
SELECT raw_calls.*, landing_files.load_order
FROM raw_calls JOIN landing_files USING (content_hash)
WHERE raw_calls.call_date = $call_date
