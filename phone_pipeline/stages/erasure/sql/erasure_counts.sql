-- For the reconciliation of the requests, counted in rows: (usable rows, quarantined rows,
-- usable rows with the number and time of their request, usable requests registered, usable
-- requests, register entries of usable requests under the configured key versions).
SELECT (SELECT count(*) FROM erasure_classified WHERE reason IS NULL),
       (SELECT count(*) FROM erasure_quarantine),
       -- Rows, not ids: each usable row has the number and time of its request.
       (SELECT count(*)
        FROM erasure_classified AS c
        JOIN erasure_usable AS u
          ON u.request_id = c.clean_request_id AND u.e164 = c.e164
         AND u.requested_at_utc = c.requested_at_utc
        WHERE c.reason IS NULL),
       (SELECT count(*) FROM erasure_usable JOIN erasure_requests USING (request_id)),
       (SELECT count(*) FROM erasure_usable),
       (SELECT count(*)
        FROM erasure_register JOIN erasure_usable USING (request_id)
        WHERE list_contains(CAST($key_versions AS INTEGER[]), key_version))
