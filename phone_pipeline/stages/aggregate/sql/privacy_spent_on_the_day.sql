-- Epsilon already spent on the day (the subscriber-period) by every DP publication of any
-- output, re-runs included: spends add up (sequential composition).
SELECT coalesce(sum(epsilon), 0) AS spent
FROM analytics.privacy_budget_ledger
WHERE call_date = $call_date
