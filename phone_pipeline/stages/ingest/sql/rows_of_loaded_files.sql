-- Every row of every loaded file is in raw_calls, was left out as an erased subject's, or was
-- swept by retention (counted per file when swept): (rows of loaded files, rows accounted for).
SELECT
    (SELECT coalesce(sum(rows), 0) FROM landing_files) AS file_rows,
    (SELECT count(*) FROM raw_calls)
    + (SELECT count(*) FROM erasure_exclusions
       WHERE content_hash IN (SELECT content_hash FROM landing_files))
    + (SELECT coalesce(sum(rows), 0) FROM retention_swept_rows
       WHERE content_hash IN (SELECT content_hash FROM landing_files)) AS kept_or_erased
