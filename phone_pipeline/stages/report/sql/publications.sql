-- The publication decision per day and dataset of the shareable zone.
SELECT call_date, dataset, decision, reasons, published_rows, withdrawn_rows
FROM analytics.shareable_publications
WHERE call_date BETWEEN $first_day AND $last_day
