-- The differential privacy budget each day's outputs spent.
SELECT call_date, output, epsilon, budget_per_day
FROM analytics.privacy_budget_ledger
WHERE call_date BETWEEN $first_day AND $last_day
