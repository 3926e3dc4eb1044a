-- Rows per day, stage, outcome and reason over the window (counts only).
SELECT call_date, stage, outcome, reason, sum(rows) AS rows
FROM analytics.row_accounting
WHERE call_date BETWEEN $first_day AND $last_day
GROUP BY ALL
