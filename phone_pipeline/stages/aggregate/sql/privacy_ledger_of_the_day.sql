-- The day's spends, oldest first, shown with each DP publication (no figures, no subscriber).
SELECT output, epsilon, run_id, recorded_at
FROM analytics.privacy_budget_ledger
WHERE call_date = $call_date
ORDER BY recorded_at
