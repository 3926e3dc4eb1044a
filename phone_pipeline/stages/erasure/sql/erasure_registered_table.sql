-- The requests of this refresh registered in an earlier run, with the number their register
-- entries name (filled from registered_requests): what resolves a request id to one request.
CREATE OR REPLACE TEMP TABLE erasure_registered (
    request_id VARCHAR,
    requested_at TIMESTAMPTZ,
    e164 VARCHAR
)
