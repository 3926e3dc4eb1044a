-- One request per id: its rows now agree on number and time (a file sent twice repeats its
-- requests, counted once); the first usable row by file and row stands for it.
CREATE OR REPLACE TEMP TABLE erasure_usable AS
SELECT clean_request_id AS request_id, e164, requested_at_utc, source_file
FROM erasure_classified
WHERE reason IS NULL
QUALIFY row_number() OVER (PARTITION BY clean_request_id ORDER BY source_file, source_row) = 1
