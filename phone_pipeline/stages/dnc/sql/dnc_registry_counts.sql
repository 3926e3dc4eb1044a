-- For the reconciliation of the refresh and its metadata: (listings, numbers listed,
-- quarantined rows).
SELECT (SELECT count(*) FROM dnc_registry),
       (SELECT count(DISTINCT e164) FROM dnc_registry),
       (SELECT count(*) FROM dnc_quarantine)
