"""How long the re-identification risk measures take on a day of N pseudonymised calls.

Not a test: prints seconds and peak memory for the row-level dataset (the expensive one: k-anonymity
over four quasi-identifiers, the (hour, region) trace index, unicity p = 1..4 on a sample).

    .venv/bin/python scripts/measure_risk_scale.py --rows 1000000 --subscribers 150000
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time

import duckdb

from phone_pipeline.stages.risk.assets import measure_candidate
from phone_pipeline.domain.publication import CALLS_PSEUDONYMIZED
from phone_pipeline.domain.risk import (
    UNICITY,
    load_trace_index,
    measure_k_anonymity,
    measure_unicity,
)
from phone_pipeline.warehouse import ANALYTICS, ANALYTICS_TABLES

DAY = dt.date(2026, 11, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--subscribers", type=int, default=150_000)
    parser.add_argument("--regions", type=int, default=60)
    parser.add_argument("--sample", type=int, default=10_000)
    args = parser.parse_args()

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH ':memory:' AS {ANALYTICS}")
    con.execute(
        f"CREATE TABLE {ANALYTICS}.calls_pseudonymized ({ANALYTICS_TABLES['calls_pseudonymized']})"
    )
    con.execute("SELECT setseed(0.42)")
    started = time.perf_counter()
    # Skewed activity (a few heavy callers, many light ones), a home region per subscriber most of
    # the time, daytime-heavy hours: closer to real traces than uniform noise.
    con.execute(
        f"""
        INSERT INTO {ANALYTICS}.calls_pseudonymized
        WITH draws AS (
            SELECT floor(pow(random(), 2.5) * $subscribers)::BIGINT AS subscriber,
                   random() AS r_place, random() AS r_hour, random() AS r_callee
            FROM range($rows)
        )
        SELECT $day, timezone('UTC', $day::TIMESTAMP)
                   + to_hours(CASE WHEN r_hour < 0.8 THEN 8 + floor(r_hour / 0.8 * 12)
                                   ELSE floor((r_hour - 0.8) / 0.2 * 24) END::INTEGER),
               'v1:' || md5(subscriber::VARCHAR), CASE WHEN r_callee < 0.5 THEN
                   'v1:' || md5((floor(r_callee * 2 * $subscribers))::BIGINT::VARCHAR) END,
               'US', 'mobile', 'US', 'mobile',
               'R' || (CASE WHEN r_place < 0.7 THEN subscriber % $regions
                            ELSE floor(r_place * 1000)::BIGINT % $regions END)::VARCHAR,
               60, 'answered'
        FROM draws
        """,
        {"day": DAY, "rows": args.rows, "subscribers": args.subscribers, "regions": args.regions},
    )
    print(f"generated {args.rows} calls in {time.perf_counter() - started:.1f} s")
    relation = CALLS_PSEUDONYMIZED.risk_relation()
    day = {"call_date": DAY}
    parts = {}
    started = time.perf_counter()
    measure_k_anonymity(con, relation, "subscriber", CALLS_PSEUDONYMIZED.quasi_identifiers, 5, day)
    parts["k-anonymity (DuckDB)"] = time.perf_counter() - started
    started = time.perf_counter()
    index = load_trace_index(
        con, f"(SELECT * FROM {relation} WHERE trace_time IS NOT NULL)",
        "subscriber", "trace_time", "trace_place", day,
    )  # fmt: skip
    parts["trace index (DuckDB + numpy)"] = time.perf_counter() - started
    started = time.perf_counter()
    measure_unicity(index, args.sample, seed=1)
    parts[f"unicity p=1..4, sample {args.sample}"] = time.perf_counter() - started
    for name, seconds in parts.items():
        print(f"  {name:34} {seconds:6.1f} s")
    started = time.perf_counter()
    measures = measure_candidate(con, CALLS_PSEUDONYMIZED, DAY, 5, args.sample)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for measure in measures:
        if measure.measure in ("subscribers", "share_below_k", UNICITY):
            print(f"  {measure.measure:14} {measure.parameter!s:5} value={measure.value:.4f} "
                  f"subscribers={measure.subscribers} sampled={measure.sampled}")  # fmt: skip
    print(f"all measures of calls_pseudonymized (as the asset runs them): {seconds:.1f} s, "
          f"{index.subscribers} subscribers with traces, peak RSS {peak_mb:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
