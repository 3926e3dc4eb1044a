-- Per scope (all calls, per campaign) of the published day: callees over the 24-hour cap, over
-- the 7-day cap, and all callees (contact_pressure's metadata).
SELECT scope,
       count(*) FILTER (WHERE over_24h_cap),
       count(*) FILTER (WHERE over_7d_cap),
       count(*)
FROM compliance.contact_pressure
WHERE call_date = $call_date
GROUP BY 1
