-- For the reconciliation of the validated calls of the day: (distinct call ids, rows without a
-- callee number whose callee was not erased). Each validated call_id occurs once, and a callee
-- number is missing only where the callee was erased.
SELECT count(DISTINCT call_id),
       count(*) FILTER (WHERE callee_e164 IS NULL AND callee_erased IS NOT TRUE)
FROM calls_validated
WHERE call_date = $call_date
