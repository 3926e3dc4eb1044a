-- The classified registry rows left once erased subjects are left out (rows without a usable
-- number are kept: they are quarantined with their reason).
CREATE OR REPLACE TEMP TABLE consent_kept AS
SELECT * FROM consent_classified
WHERE e164 IS NULL OR e164 NOT IN (SELECT e164 FROM consent_erased)
