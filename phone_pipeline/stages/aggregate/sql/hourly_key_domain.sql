-- The fixed key set of a differentially private hourly output: every hour (UTC) of the day x
-- every region of the cell reference and `other` (dp_domain_region). From the calendar and
-- reference data, never from the calls: which cells exist reveals nothing.
SELECT *
FROM (
    SELECT unnest(generate_series(
        timezone('UTC', $call_date::TIMESTAMP),
        timezone('UTC', $call_date::TIMESTAMP) + INTERVAL 23 HOUR,
        INTERVAL 1 HOUR
    )) AS call_hour
)
CROSS JOIN dp_domain_region
