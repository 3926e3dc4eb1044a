-- Every number string of the raw calls of the day, as caller or callee (one column `raw_number`,
-- repeats kept): what the number cache parses once and the number map of the day copies.
SELECT caller_number AS raw_number FROM raw_calls WHERE call_date = $call_date
UNION ALL
SELECT callee_number FROM raw_calls WHERE call_date = $call_date
