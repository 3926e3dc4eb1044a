-- The day's rows per stage, outcome and reason, long format, counts only: received (kept or
-- left out as an erased subject's), excluded by erasure, validated or quarantined, admitted or
-- excluded by consent, published pseudonymised. The aggregates' cell membership follows.
SELECT 'ingest' AS stage, 'received' AS outcome, NULL AS reason,
       (SELECT count(*) FROM raw_calls WHERE call_date = $call_date)
       + (SELECT count(*) FROM erasure_exclusions WHERE call_date = $call_date) AS rows
UNION ALL
SELECT 'erasure', 'excluded', reason, count(*) FROM erasure_exclusions
  WHERE call_date = $call_date GROUP BY reason
UNION ALL
SELECT 'validate', 'validated', NULL, count(*) FROM calls_validated
  WHERE call_date = $call_date
UNION ALL
SELECT 'validate', 'quarantined', reason, count(*) FROM calls_quarantine
  WHERE call_date = $call_date GROUP BY reason
UNION ALL
SELECT 'consent', 'admitted', NULL, count(*) FROM consented_calls
  WHERE call_date = $call_date
UNION ALL
SELECT 'consent', 'excluded', reason, count(*) FROM consent_exclusions
  WHERE call_date = $call_date GROUP BY reason
UNION ALL
SELECT 'pseudonymize', 'published', NULL, count(*) FROM analytics.calls_pseudonymized
  WHERE call_date = $call_date
