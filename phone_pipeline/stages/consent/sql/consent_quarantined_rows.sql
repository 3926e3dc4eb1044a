-- The registry rows kept but not usable, as read, each with its reason: the consent quarantine.
SELECT reason, source_file, source_row, phone_number, purpose, status, recorded_at, source
FROM consent_kept
WHERE reason IS NOT NULL
