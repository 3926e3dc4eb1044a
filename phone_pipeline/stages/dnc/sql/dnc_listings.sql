-- What replaces the do-not-call registry: every usable listing, with its source file and row.
SELECT e164, listed_at_utc AS listed_at, source_file, source_row
FROM dnc_classified
WHERE reason IS NULL
