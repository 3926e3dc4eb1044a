-- The usable events of this refresh, in the shape of consent_events: compared with the events
-- kept so far, they tell which partitions the refresh can change.
CREATE OR REPLACE TEMP TABLE consent_new_events AS
SELECT e164, clean_purpose AS purpose, clean_status AS status, recorded_at_utc AS recorded_at
FROM consent_kept
WHERE reason IS NULL
