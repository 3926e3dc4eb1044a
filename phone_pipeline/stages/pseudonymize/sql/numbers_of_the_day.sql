-- The distinct numbers (E.164) of the day's admitted calls, callers and consenting callees:
-- each is pseudonymised once in Python and joined back to the rows.
SELECT caller_e164 FROM consented_calls WHERE call_date = $call_date
UNION
SELECT callee_e164 FROM consented_calls WHERE call_date = $call_date AND callee_e164 IS NOT NULL
