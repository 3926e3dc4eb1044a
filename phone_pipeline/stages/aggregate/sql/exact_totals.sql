-- The day's pseudonymised rows and the calls summed over all staged cells (before suppression):
-- equal when every row fell in exactly one cell.
SELECT
    (SELECT count(*) FROM analytics.calls_pseudonymized WHERE call_date = $call_date) AS rows,
    (SELECT coalesce(sum(calls), 0) FROM staged_cells) AS all_cells_calls
