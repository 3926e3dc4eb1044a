-- The published day's calls after a do-not-call listing: calls, callees and campaigns (the
-- no_calls_after_dnc_listing finding; no callee is named).
SELECT coalesce(sum(calls), 0),
       count(DISTINCT callee_pseudonym),
       list(DISTINCT coalesce(campaign_id, '(no campaign)') ORDER BY 1)
FROM compliance.dnc_call_findings
WHERE call_date = $call_date
