-- What replaces the consent registry: every usable event kept, with its source file and row.
SELECT e164, clean_purpose AS purpose, clean_status AS status, recorded_at_utc AS recorded_at,
       source, source_file, source_row
FROM consent_kept
WHERE reason IS NULL
