-- The latest call day the row accounting holds: the report covers the 30 days up to it.
SELECT max(call_date) FROM analytics.row_accounting
