-- The dataset's earlier decision for the partition: only the latest one is kept.
DELETE FROM analytics.shareable_publications WHERE call_date = $call_date AND dataset = $dataset
