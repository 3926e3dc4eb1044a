-- The earlier days the day's 7-day counts reach back to that hold validated calls (metadata:
-- a day never materialised contributes no calls, and the run does not fail on it).
SELECT DISTINCT call_date
FROM calls_validated
WHERE call_date BETWEEN $history_start AND $call_date - 1
ORDER BY 1
