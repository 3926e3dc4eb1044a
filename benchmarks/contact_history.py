"""Contact pressure at steady state: how its cost grows with the days of history kept.

`phone-pipeline bench` runs two days, so its warm run sees one day of history; a real warehouse
keeps a week or more, and the 7-day caps read all of it. This script builds that week from a
bench's work folder (its two days of validated calls, repeated and moved by whole days into 8
days), then times the contact-pressure SQL the pipeline runs for a day with 0, 1, 3 and 7 days
of history before it. Only the four columns the rule reads are copied: no phone number leaves
the work folder, and nothing is printed but figures.

    .venv/bin/phone-pipeline bench --rows 10000000 --home /tmp/bench10m
    .venv/bin/python benchmarks/contact_history.py /tmp/bench10m
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path

import duckdb

from phone_pipeline.domain.contact import contact_pressure_sql
from phone_pipeline.settings import load_settings
from phone_pipeline.sql import run

DAYS = 8  # the day measured and the 7 days its longest window reaches back into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path, help="work folder of a finished `phone-pipeline bench`")
    args = parser.parse_args(argv)
    source = args.home / "pipeline" / "warehouse" / "restricted.duckdb"
    if not source.exists():
        parser.error(f"no bench warehouse at {source}")
    scratch = args.home / "contact_history.duckdb"
    scratch.unlink(missing_ok=True)
    con = duckdb.connect(str(scratch))
    con.execute(f"SET memory_limit = '{load_settings().duckdb_memory_limit}'")
    quoted = str(source).replace("'", "''")
    con.execute(f"ATTACH '{quoted}' AS bench (READ_ONLY)")
    bench_days = [row[0] for row in con.execute(
        "SELECT DISTINCT call_date FROM bench.calls_validated ORDER BY 1"
    ).fetchall()]  # fmt: skip
    if not bench_days:
        parser.error("the bench warehouse holds no validated calls")
    con.execute(
        "CREATE TABLE calls_validated (call_date DATE, callee_e164 VARCHAR, campaign_id VARCHAR, "
        "started_at_utc TIMESTAMPTZ)"
    )
    first = bench_days[0]
    for offset in range(DAYS):
        bench_day = bench_days[offset % len(bench_days)]
        shift = (first - bench_day).days + offset
        run(
            con,
            "INSERT INTO calls_validated SELECT call_date + $shift, callee_e164, campaign_id, "
            "started_at_utc + to_days($shift) FROM bench.calls_validated "
            "WHERE call_date = $bench_day",
            {"shift": shift, "bench_day": bench_day},
        )
    con.execute("DETACH bench")
    per_day = con.execute("SELECT count(*) FROM calls_validated").fetchone()[0] // DAYS
    print(f"{per_day:,} calls a day; contact pressure of one day with N days of history before it")
    print(f"{'history days':>12} {'seconds':>8} {'callee rows':>12}")
    for history in (0, 1, 3, 7):
        values = {
            "call_date": first + dt.timedelta(days=history),
            "max_calls_24h": 3,
            "max_calls_7d": 7,
        }
        started = time.perf_counter()
        rows = run(
            con, f"SELECT count(*) FROM ({contact_pressure_sql('calls_validated')})", values
        ).fetchone()[0]
        print(f"{history:>12} {time.perf_counter() - started:>8.2f} {rows:>12,}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory of this process: {peak:.2f} GiB")
    con.close()
    scratch.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
