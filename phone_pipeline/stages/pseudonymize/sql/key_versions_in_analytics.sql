-- Every key version analytics holds pseudonyms of, over all partitions (one row per partition
-- in pseudonym_key_periods: cheap), to warn when versions are mixed across partitions.
SELECT DISTINCT key_version FROM analytics.pseudonym_key_periods WHERE rows > 0 ORDER BY 1
