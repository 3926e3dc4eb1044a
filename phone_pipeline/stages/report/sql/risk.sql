-- The measured re-identification risk per day and candidate dataset (subscriber counts, shares).
SELECT call_date, dataset, measure, parameter, parameter_upper, value, subscribers, margin_95,
       applicable
FROM analytics.reidentification_risk
WHERE call_date BETWEEN $first_day AND $last_day
