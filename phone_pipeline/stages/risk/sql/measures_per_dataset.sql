-- What the partition's risk rows hold per dataset, read back after the write: the measures the
-- gate needs (subscribers, share below k at the configured k, unicity per p, suppressed cells'
-- subscribers) and the rows of the dataset they were measured on.
SELECT dataset,
       count(*) FILTER (WHERE measure = 'subscribers') AS subscribers,
       count(*) FILTER (WHERE measure = 'share_below_k' AND parameter = $k) AS share_below_k,
       count(DISTINCT parameter) FILTER (WHERE measure = 'unicity') AS unicity_points,
       count(*) FILTER (WHERE measure = 'suppressed_cells_subscribers') AS suppressed,
       max(dataset_rows) AS dataset_rows
FROM analytics.reidentification_risk
WHERE call_date = $call_date
GROUP BY dataset
