-- The published day's abandonment per campaign, for its metadata table and its finding.
SELECT coalesce(campaign_id, '(no campaign)'), live_answered_calls, abandoned_calls,
       abandonment_rate, over_limit
FROM compliance.abandonment_rates
WHERE call_date = $call_date
ORDER BY 1
