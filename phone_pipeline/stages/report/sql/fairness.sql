-- The caller groups the fairness stage flagged (rates of groups, counts only).
SELECT call_date, measure, country, number_type, rows, affected, rate, rest_rate
FROM analytics.fairness_rates
WHERE flagged AND call_date BETWEEN $first_day AND $last_day
