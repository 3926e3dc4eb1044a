-- For the reconciliation of the refresh: (events, quarantined rows, rows of erased subjects
-- left out).
SELECT (SELECT count(*) FROM consent_events),
       (SELECT count(*) FROM consent_quarantine),
       (SELECT count(*) FROM consent_classified) - (SELECT count(*) FROM consent_kept)
