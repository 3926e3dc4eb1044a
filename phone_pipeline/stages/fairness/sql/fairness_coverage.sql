-- Per measure: the rows and affected rows the partition's fairness report sums to (read back),
-- against the same counts taken straight from the stages' tables. Every row that reached a
-- measure's stage must sit in exactly one group of it.
WITH report AS (
    SELECT measure, sum(rows) AS rows, sum(affected) AS affected
    FROM analytics.fairness_rates WHERE call_date = $call_date GROUP BY measure
),
validated AS (SELECT count(*) AS n FROM calls_validated WHERE call_date = $call_date),
quarantined AS (SELECT count(*) AS n FROM calls_quarantine WHERE call_date = $call_date),
excluded AS (SELECT count(*) AS n FROM consent_exclusions WHERE call_date = $call_date),
admitted AS (
    SELECT count(*) AS n, count(*) FILTER (WHERE cells.suppressed) AS suppressed
    FROM analytics.calls_pseudonymized AS calls
    LEFT JOIN analytics.call_volume_hourly AS cells
      ON cells.call_date = calls.call_date AND cells.call_hour = calls.call_hour
     AND cells.region = calls.region
    WHERE calls.call_date = $call_date
),
sources (measure, rows, affected) AS (
    SELECT 'quarantine', (SELECT n FROM validated) + (SELECT n FROM quarantined),
           (SELECT n FROM quarantined)
    UNION ALL SELECT 'consent_exclusion', (SELECT n FROM validated), (SELECT n FROM excluded)
    UNION ALL SELECT 'suppression', n, suppressed FROM admitted
)
SELECT sources.measure, coalesce(report.rows, 0), sources.rows,
       coalesce(report.affected, 0), sources.affected
FROM sources LEFT JOIN report USING (measure)
ORDER BY sources.measure
