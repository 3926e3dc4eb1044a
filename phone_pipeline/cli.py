"""`phone-pipeline`: generate synthetic data, run the pipeline headless, demo, or open the UI."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phone_pipeline.settings import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The console shows warnings and errors; every event is still in the instance for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _generate(settings: Settings, args: argparse.Namespace) -> None:
    from phone_pipeline.domain.synthetic import generate

    summary = generate(
        settings.home,
        rows=args.rows,
        days=args.days,
        seed=args.seed,
        start_date=args.start,
        default_region=settings.default_region,
        dnc_share=args.dnc_share,
    )
    print(
        f"Generated {summary.rows} calls over {summary.days} day(s) from {summary.start_date} "
        f"({summary.subscribers} fictional subscribers, {summary.junk_rows} deliberately bad rows) "
        f"in {settings.home / 'landing'}"
    )


def _partitions_with_data(settings: Settings) -> list[str]:
    from phone_pipeline.domain.retention import retention_cutoff
    from phone_pipeline.landing import LandingFileError, call_dates_in_file, list_landing_files
    from phone_pipeline.partitions import partition_range

    first, last = partition_range()
    # Partitions past the restricted retention stay deleted (raw_calls would refuse them).
    cutoff = retention_cutoff(dt.datetime.now(dt.UTC).date(), settings.retention_restricted_days)
    if cutoff is not None:
        first = max(first, cutoff)
    days: set[dt.date] = set()
    for path in list_landing_files(settings.landing_calls):
        try:
            days |= call_dates_in_file(path, first, last)
        except LandingFileError as error:
            print(f"warning: {error}", file=sys.stderr)
    return sorted(day.isoformat() for day in days)


def _report_unreadable_files(since: float) -> None:
    """Print the landing files the runs since `since` (a POSIX time) could not read at all, from
    the latest result of each `*_files_readable` check (WARN checks: the runs still succeed).
    Names and problems are redacted by the stages that read the files."""
    import dagster as dg

    from phone_pipeline.checks.common import FILES_READABLE_SUFFIX
    from phone_pipeline.definitions import defs

    check_keys = sorted(
        (
            key
            for key in defs.resolve_job_def(
                "call_pipeline"
            ).asset_layer.asset_graph.asset_check_keys
            if key.name.endswith(FILES_READABLE_SUFFIX)
        ),
        key=lambda key: key.name,
    )
    problems: list[str] = []
    with dg.DagsterInstance.get() as instance:
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
        for key in check_keys:
            record = latest.get(key)
            evaluation = record.event.asset_check_evaluation if record and record.event else None
            if evaluation is None or record.event.timestamp < since or evaluation.passed:
                continue
            files = evaluation.metadata.get("unreadable_files")
            for problem in (files.value if files is not None else {}).values():
                problems.append(f"  {key.name}: {problem}")
    if problems:
        print(
            "Files not read (their rows were not processed; fix or replace them and run again, "
            "see README, Troubleshooting):"
        )
        print("\n".join(problems))


def _run(settings: Settings, partitions: list[str] | None) -> int:
    from phone_pipeline.domain.pseudonyms import PseudonymKeyError
    from phone_pipeline.instance import ensure_dagster_home
    from phone_pipeline.key_check import verify_warehouse_key
    from phone_pipeline.rotation import keyring_from_environment

    try:  # say what is wrong before Dagster would, with a traceback, at run start
        verify_warehouse_key(settings.restricted_db, keyring_from_environment(settings))
    except PseudonymKeyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    ensure_dagster_home(settings.dagster_home)
    started = time.time()
    import dagster as dg
    import duckdb

    from phone_pipeline.definitions import defs

    partitions = partitions or _partitions_with_data(settings)
    if not partitions:
        print(f"No call-log files with readable dates in {settings.landing_calls}.")
        return 1
    job = defs.resolve_job_def("call_pipeline")
    failed = []
    with dg.DagsterInstance.get() as instance:
        for partition in partitions:
            outcome = _execute_partition(job, instance, partition)
            if outcome.interrupted:
                name = signal.Signals(outcome.interrupted).name
                print(f"{partition}: run {outcome.run_id[:8]} stopped by {name}")
                print(f"Stopped by {name}; later partitions were not run.", file=sys.stderr)
                return 128 + outcome.interrupted
            status = "ok" if outcome.success else "FAILED (see the run in the UI)"
            print(f"{partition}: run {outcome.run_id[:8]} {status}")
            if not outcome.success:
                failed.append(partition)
    if settings.analytics_db.exists():
        with duckdb.connect(str(settings.analytics_db), read_only=True) as con:
            totals = con.execute(
                "SELECT stage, outcome, sum(rows) FROM row_accounting GROUP BY ALL ORDER BY 1, 2"
            ).fetchall()
            decisions = con.execute(
                "SELECT dataset, decision, count(*) FROM shareable_publications "
                "GROUP BY ALL ORDER BY 1, 2"
            ).fetchall()
        print("Row accounting over all partitions:")
        for stage, outcome, rows in totals:
            print(f"  {stage:34} {outcome:20} {rows}")
        # Withheld is the risk gate's decision, not a failure: analytics/reidentification_risk
        # and the `<dataset>_risk_within_limits` checks say why.
        print("Shareable zone, partitions per dataset and decision:")
        for dataset, decision, partitions in decisions:
            print(f"  {dataset:34} {decision:20} {partitions}")
    _report_unreadable_files(started)
    return 1 if failed else 0


@dataclass(frozen=True)
class _Outcome:
    run_id: str
    success: bool
    interrupted: int | None  # the signal that stopped the run


def _execute_partition(job: Any, instance: Any, partition: str) -> _Outcome:
    """One partition's run in this process, guarded: dead runs holding the DuckDB pool are reaped,
    a wait for the pool says for whom, and SIGINT/SIGTERM stop the run (see run_recovery.py)."""
    from phone_pipeline.run_recovery import RunGuard, RunWorker

    run_id = str(uuid.uuid4())

    def say(message: str) -> None:
        print(f"{partition}: {message}", file=sys.stderr, flush=True)

    guard = RunGuard(instance, run_id, announce=say)
    try:
        with guard:
            result = job.execute_in_process(
                partition_key=partition,
                instance=instance,
                raise_on_error=False,
                run_config=QUIET,
                run_id=run_id,
                tags=RunWorker.current().tags(),
            )
    except KeyboardInterrupt:  # a signal outside Dagster's own handling (run start or end)
        return _Outcome(run_id, False, guard.interrupted or signal.SIGINT)
    return _Outcome(run_id, result.success, guard.interrupted)


def _rotate_keys(settings: Settings) -> int:
    """Re-pseudonymise published partitions made with an older key (see README: key rotation)."""
    from phone_pipeline.domain.pseudonyms import PseudonymKeyError
    from phone_pipeline.instance import ensure_dagster_home
    from phone_pipeline.rotation import keyring_from_environment, rotate_keys

    try:
        keyring = keyring_from_environment(settings)
    except PseudonymKeyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ensure_dagster_home(settings.dagster_home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        plan, failed = rotate_keys(settings, instance, run_config=QUIET)
    print(
        f"Primary key version {plan.primary_version} (configured: {keyring.versions}). "
        f"Re-pseudonymised {len(plan.rerun) - len(failed)} partition(s), "
        f"{len(plan.current)} already current, {len(plan.stale)} marked in "
        "analytics.pseudonym_key_periods (restricted rows gone)."
    )
    for day in plan.rerun:
        print(
            f"  {day}: {'FAILED (see the run in the UI)' if day.isoformat() in failed else 'rotated'}"
        )
    for day in plan.stale:
        print(f"  {day}: kept under its older key (restricted rows gone)")
    return 1 if failed else 0


def _ui(settings: Settings, port: int) -> int:
    from phone_pipeline.instance import ensure_dagster_home
    from phone_pipeline.process_group import run_in_process_group

    home = ensure_dagster_home(settings.dagster_home)
    print(f"Dagster instance: {home}; open http://127.0.0.1:{port}", flush=True)
    dagster = Path(sys.executable).with_name("dagster")
    # A child in its own process group, not exec: SIGINT/SIGTERM stop every process of it.
    return run_in_process_group(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phone-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("generate", "write synthetic call logs, consent events and cells"),
                       ("demo", "generate a sample, run it, and say where the results are")):  # fmt: skip
        command = commands.add_parser(name, help=text)
        command.add_argument("--rows", type=int, default=20_000)
        command.add_argument("--days", type=int, default=3)
        command.add_argument("--seed", type=int, default=42)
        command.add_argument("--start", type=dt.date.fromisoformat, default=None,
                             help="first day (default: the days ending yesterday, UTC)")  # fmt: skip
        command.add_argument("--dnc-share", type=float, default=0.0,
                             help="also write a do-not-call registry listing this share of "
                                  "subscribers (landing/dnc)")  # fmt: skip
    run = commands.add_parser("run", help="materialise every partition that has landing data")
    run.add_argument("--partition", action="append", help="a day (YYYY-MM-DD); repeatable")
    commands.add_parser(
        "rotate-keys",
        help="re-pseudonymise published partitions made with an older key (primary key: see README)",
    )
    ui = commands.add_parser("ui", help="start the Dagster UI and daemon on this data home")
    ui.add_argument("--port", type=int, default=3000)
    bench = commands.add_parser("bench", help="benchmark a day of calls (see benchmarks/README.md)")
    from phone_pipeline import bench as benchmark

    benchmark.add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "bench":  # its own data home under /tmp: no ./data folders
        return benchmark.main_from_args(args)

    settings = load_settings()
    settings.ensure_folders()
    if args.command == "generate":
        _generate(settings, args)
        return 0
    if args.command == "run":
        return _run(settings, args.partition)
    if args.command == "ui":
        return _ui(settings, args.port)
    if args.command == "rotate-keys":
        return _rotate_keys(settings)
    # demo
    if not os.environ.get("PHONE_PIPELINE_PSEUDONYM_KEY"):
        # A throwaway key for this process only: it is never written or printed.
        os.environ["PHONE_PIPELINE_PSEUDONYM_KEY"] = secrets.token_hex(32)
        print(
            "PHONE_PIPELINE_PSEUDONYM_KEY is not set: this demo uses a throwaway key, so its "
            "pseudonyms will not match later runs. Set the variable for real use."
        )
    _generate(settings, args)
    code = _run(settings, None)
    print(
        f"\nResults:\n  shareable zone: {settings.shareable_db} (the datasets whose "
        "re-identification risk passed the gate; see analytics.shareable_publications)\n"
        f"  analytics zone (internal): {settings.analytics_db} (calls_pseudonymized, "
        "call_volume_hourly, call_volume_by_country, row_accounting, reidentification_risk)\n"
        f"  compliance zone: {settings.compliance_db} (contact_pressure, quiet_hours, "
        "abandonment_rates, dnc_call_findings: by pseudonym, for the compliance team)\n"
        f"  restricted zone: {settings.restricted_db} (raw_calls, calls_validated, "
        "calls_quarantine, consent_events, consented_calls, dnc_scrub_list, ...)\n"
        f"  record of processing: {settings.home / 'records' / 'record_of_processing.md'}\n"
        "Open the UI (runs, lineage, checks): .venv/bin/phone-pipeline ui   then http://127.0.0.1:3000"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
