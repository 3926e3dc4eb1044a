-- What analytics.calls_pseudonymized shows an outsider of the day ($call_date), one row per
-- (subscriber, record): the caller's records (hour, region, their number's country and type)
-- with their (hour, region) trace point, and the consenting callee's (hour, their number's
-- country and type; the region is the caller's, so no point of the callee's trace).
SELECT caller_pseudonym AS subscriber, 'caller' AS role, call_hour, region AS place,
       caller_country AS country, caller_number_type AS number_type,
       call_hour AS trace_time, region AS trace_place
FROM analytics.calls_pseudonymized WHERE call_date = $call_date
UNION ALL
SELECT callee_pseudonym, 'callee', call_hour, NULL, callee_country, callee_number_type,
       NULL, NULL
FROM analytics.calls_pseudonymized
WHERE call_date = $call_date AND callee_pseudonym IS NOT NULL
