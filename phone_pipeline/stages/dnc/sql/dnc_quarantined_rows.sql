-- The registry rows that are not usable listings, as read, each with its reason and detail.
SELECT reason, detail, source_file, source_row, phone_number, listed_at
FROM dnc_classified
WHERE reason IS NOT NULL
