-- Every dataset's latest decision for the partition, shown with shareable_publications.
SELECT dataset, decision, published_rows, withdrawn_rows, coalesce(reasons, '')
FROM analytics.shareable_publications
WHERE call_date = $call_date
ORDER BY dataset
