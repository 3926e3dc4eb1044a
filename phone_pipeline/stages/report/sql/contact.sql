-- The compliance zone's findings per day, counted: callees are counted, never named.
SELECT call_date, 'callees_over_24h_cap' AS finding,
       count(DISTINCT callee_pseudonym) FILTER (WHERE over_24h_cap) AS value
FROM compliance.contact_pressure
WHERE call_date BETWEEN $first_day AND $last_day AND scope = 'all'
GROUP BY call_date
UNION ALL
SELECT call_date, 'callees_over_7d_cap',
       count(DISTINCT callee_pseudonym) FILTER (WHERE over_7d_cap)
FROM compliance.contact_pressure
WHERE call_date BETWEEN $first_day AND $last_day AND scope = 'all'
GROUP BY call_date
UNION ALL
SELECT call_date, 'calls_outside_window',
       coalesce(sum(calls) FILTER (WHERE window_status = 'outside_window'), 0)
FROM compliance.quiet_hours
WHERE call_date BETWEEN $first_day AND $last_day
GROUP BY call_date
UNION ALL
SELECT call_date, 'calls_window_unknown',
       coalesce(sum(calls) FILTER (WHERE window_status = 'unknown'), 0)
FROM compliance.quiet_hours
WHERE call_date BETWEEN $first_day AND $last_day
GROUP BY call_date
UNION ALL
SELECT call_date, 'callees_called_after_dnc', count(DISTINCT callee_pseudonym)
FROM compliance.dnc_call_findings
WHERE call_date BETWEEN $first_day AND $last_day
GROUP BY call_date
UNION ALL
SELECT call_date, 'calls_after_dnc', sum(calls)
FROM compliance.dnc_call_findings
WHERE call_date BETWEEN $first_day AND $last_day
GROUP BY call_date
UNION ALL
SELECT call_date, 'campaigns_over_abandonment_limit', count(*) FILTER (WHERE over_limit)
FROM compliance.abandonment_rates
WHERE call_date BETWEEN $first_day AND $last_day
GROUP BY call_date
