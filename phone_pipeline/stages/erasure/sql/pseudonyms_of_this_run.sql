-- The pseudonyms to look for in every zone now: the register entries added by this run (new
-- requests, or a new key version) and those of the requests processed now.
CREATE OR REPLACE TEMP TABLE pseudonyms_of_this_run AS
SELECT pseudonym
FROM erasure_register
WHERE pseudonym NOT IN (SELECT pseudonym FROM register_before)
   OR list_contains(CAST($processed_request_ids AS VARCHAR[]), request_id)
