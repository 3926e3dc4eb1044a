-- One spend of the day's privacy budget: recorded before the noisy figures are written, so a
-- failure in between overstates the spend, never hides one.
INSERT INTO analytics.privacy_budget_ledger
    (call_date, output, epsilon, delta, budget_per_day, mechanism, run_id, recorded_at)
VALUES ($call_date, $output, $epsilon, 0.0, $budget_per_day, $mechanism, $run_id, now())
