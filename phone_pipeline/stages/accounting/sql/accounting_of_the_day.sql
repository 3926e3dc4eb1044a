-- The partition's published accounting, in a stable order: summed per stage and outcome for
-- the equations, shown row by row in the UI (counts only).
SELECT stage, outcome, coalesce(reason, ''), rows
FROM analytics.row_accounting
WHERE call_date = $call_date
ORDER BY stage, outcome, reason
