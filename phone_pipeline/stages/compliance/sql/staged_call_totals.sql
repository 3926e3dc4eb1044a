-- The calls counted by the staged quiet hours and by the staged overall contact pressure: each
-- must equal the day's validated calls (the compliance_rows_reconcile gate).
SELECT
    (SELECT coalesce(sum(calls), 0) FROM staged_quiet_hours) AS quiet_hours_calls,
    (SELECT coalesce(sum(calls), 0) FROM staged_contact_pressure WHERE scope = 'all')
        AS contact_pressure_calls
