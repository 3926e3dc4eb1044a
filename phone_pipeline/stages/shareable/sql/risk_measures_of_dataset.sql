-- A dataset's risk measures of the partition, as the gate reads them, with the rows of the
-- partition they were measured on (a gate on other rows than those to publish is an error).
SELECT dataset, measure, parameter, parameter_upper, value, subscribers, sampled, margin_95,
       applicable, dataset_rows
FROM analytics.reidentification_risk
WHERE call_date = $call_date AND dataset = $dataset
