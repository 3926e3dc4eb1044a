-- The day's pseudonymised rows and the rows kept by contribution bounding: bounding only drops.
SELECT
    (SELECT count(*) FROM analytics.calls_pseudonymized WHERE call_date = $call_date) AS rows,
    (SELECT count(*) FROM dp_bounded_calls) AS kept_rows
