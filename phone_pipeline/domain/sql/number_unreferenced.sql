-- The condition (on `cache`, a row of number_cache) that nothing kept refers to the entry any
-- more: no known number of a kept day, no consent or do-not-call listing, no quarantined row's
-- raw string. The sweep deletes such entries and its check counts those left (expects 0).
NOT EXISTS (SELECT 1 FROM known_numbers AS kept WHERE kept.e164 = cache.e164)
AND NOT EXISTS (SELECT 1 FROM consent_events AS kept WHERE kept.e164 = cache.e164)
AND NOT EXISTS (SELECT 1 FROM dnc_registry AS kept WHERE kept.e164 = cache.e164)
AND NOT EXISTS (SELECT 1 FROM calls_quarantine AS kept
                WHERE kept.caller_number = cache.raw_number)
AND NOT EXISTS (SELECT 1 FROM calls_quarantine AS kept
                WHERE kept.callee_number = cache.raw_number)
