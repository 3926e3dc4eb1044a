-- The day's pseudonymised rows: each admitted call with its caller's (and consenting callee's)
-- pseudonym from the registered `pseudonym_map` (computed in Python: the key never enters SQL),
-- the time truncated to the hour, the cell's region (else the number's, else 'unknown') and the
-- minimised columns only: no numbers, no call_id, no cell.
SELECT calls.call_date, date_trunc('hour', calls.started_at_utc) AS call_hour,
       caller.pseudonym AS caller_pseudonym, callee.pseudonym AS callee_pseudonym,
       calls.caller_country, calls.caller_number_type, calls.callee_country,
       calls.callee_number_type,
       coalesce(cells.region, calls.caller_geo_region, 'unknown') AS region,
       calls.duration_seconds, calls.disposition
FROM consented_calls AS calls
JOIN pseudonym_map AS caller ON caller.e164 = calls.caller_e164
LEFT JOIN pseudonym_map AS callee ON callee.e164 = calls.callee_e164
LEFT JOIN cell_reference AS cells ON cells.cell_id = calls.cell_id
WHERE calls.call_date = $call_date
