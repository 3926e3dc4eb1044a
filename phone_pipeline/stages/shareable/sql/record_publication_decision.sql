-- The dataset's publication decision for the partition: published, withheld or withdrawn, why
-- (NULL when within limits), and the rows copied or removed.
INSERT INTO analytics.shareable_publications
    (call_date, dataset, decision, reasons, published_rows, withdrawn_rows, recorded_at)
VALUES ($call_date, $dataset, $decision, $reasons, $published_rows, $withdrawn_rows, now())
