-- (numbers on the list, rows repeating a number and reason): the list holds one row per number
-- and reason, and the gate stops a run whose list repeats one.
SELECT count(DISTINCT e164), count(*) - count(DISTINCT (e164, reason))
FROM dnc_scrub_list
