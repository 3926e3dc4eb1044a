-- Of the candidate files (temp table `candidates`, by content hash), those already ingested,
-- each with the days of its rows that no run has validated or quarantined yet: the sensor asks
-- for runs of those days only (a file is loaded whole by whichever run came first).
SELECT files.content_hash,
       list(DISTINCT raw.call_date) FILTER (WHERE raw.call_date IS NOT NULL
            AND raw.call_date NOT IN (SELECT call_date FROM calls_validated
                                      UNION SELECT call_date FROM calls_quarantine))
FROM landing_files AS files
JOIN candidates USING (content_hash)
LEFT JOIN raw_calls AS raw USING (content_hash)
GROUP BY 1
