-- The day's quarantined caller strings the number cache could not read (with the default
-- region): their country is guessed from a leading calling code (domain/fairness.py).
SELECT DISTINCT q.caller_number
FROM calls_quarantine AS q
LEFT JOIN number_cache AS cache
  ON cache.raw_number = q.caller_number AND cache.default_region = $default_region
WHERE q.call_date = $call_date AND cache.e164 IS NULL AND q.caller_number IS NOT NULL
