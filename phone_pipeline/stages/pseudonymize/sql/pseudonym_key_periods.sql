-- The partition's row of analytics.pseudonym_key_periods: under which key version its staged
-- rows were pseudonymised (`phone-pipeline rotate-keys` and the cross-partition warning read it).
SELECT $call_date AS call_date, $key_version AS key_version, count(*) AS rows, NULL AS note,
       now() AS recorded_at
FROM staged_pseudonymized
