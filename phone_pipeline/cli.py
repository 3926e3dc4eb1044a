"""`phone-pipeline`: generate synthetic data, run the pipeline headless, demo, or open the UI."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phone_pipeline import catalog
from phone_pipeline.settings import SettingError, Settings, env_name, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The console shows warnings and errors; every event is still in the instance for the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _generate(settings: Settings, args: argparse.Namespace) -> None:
    from phone_pipeline.settings import read_home_settings, record_first_day
    from phone_pipeline_synthetic import generate

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
    # The partitions (the UI's, the sensor's, `run`'s) start where the data does.
    first = record_first_day(settings.home, summary.start_date)
    variable = env_name("partitions_start_date")
    where = read_home_settings(settings.home).path
    print(f"First daily partition: {first} ({variable} in {where})")
    if os.environ.get(variable, "").strip():
        print(f"  {variable} set in the environment overrides it: {os.environ[variable].strip()}")


def _swept_days(settings: Settings) -> tuple[set[dt.date], set[str]]:
    """Days whose restricted rows a sweep deleted, and the content hashes of loaded files."""
    import duckdb

    if not settings.restricted_db.exists():
        return set(), set()
    try:
        with duckdb.connect(str(settings.restricted_db), read_only=True) as con:
            days = {row[0] for row in con.execute(
                "SELECT DISTINCT call_date FROM retention_swept_rows").fetchall()}  # fmt: skip
            loaded = {row[0] for row in con.execute(
                "SELECT content_hash FROM landing_files").fetchall()}  # fmt: skip
    except duckdb.Error:  # busy (another writer) or not created yet: the runs will say
        return set(), set()
    return days, loaded


def _partitions_with_data(settings: Settings, done_days: list[str] | None = None) -> list[str]:
    """Days with calls in the landing files that a run may process; days processed before and
    swept by retention since are left out (and added to `done_days`)."""
    from phone_pipeline.automation.partitions import partition_range
    from phone_pipeline.domain.redaction import redact
    from phone_pipeline.domain.retention import RetentionPolicy
    from phone_pipeline.landing import (
        LandingFileError,
        call_dates_in_file,
        content_hash,
        landing_name,
        list_call_files,
    )

    first, last = partition_range()
    today = dt.datetime.now(dt.UTC).date()
    policy = RetentionPolicy(
        settings.retention_restricted_days,
        settings.retention_pseudonymized_days,
        settings.retention_aggregates_days,
    )
    # Days past the restricted retention are processed (a backfill; each run sweeps its day at
    # its end); days older than every zone's retention, or before the first partition, are not.
    oldest = policy.oldest_processed(today)
    floor = first if oldest is None or oldest < first else oldest
    swept, loaded = _swept_days(settings)
    days: set[dt.date] = set()
    done: dict[dt.date, bool] = {}  # a swept day -> no new file has calls on it
    for path in list_call_files(settings.landing_calls):
        try:
            found = call_dates_in_file(path, dt.date(1, 1, 1), last, settings.landing_calls)
        except LandingFileError as error:
            print(f"warning: {error}", file=sys.stderr)
            continue
        too_old = sorted(day for day in found if day < floor)
        if too_old:
            why = (
                f"the first partition is {first} ({_start_date_source(settings)}); set an "
                f"earlier {env_name('partitions_start_date')} there to process them"
                if floor == first
                else f"every zone's retention has passed them: the oldest day any zone keeps "
                f"on {today} is {floor} ({policy.settings_text()})"
            )
            print(
                f"warning: {redact(landing_name(settings.landing_calls, path))}: calls on "
                f"{len(too_old)} day(s) from {too_old[0]} "
                f"to {too_old[-1]} are not processed: {why}",
                file=sys.stderr,
            )
        kept = {day for day in found if day >= floor}
        is_new = content_hash(path) not in loaded
        for day in kept & swept:
            done[day] = done.get(day, True) and not is_new
        days |= kept
    for day in sorted(day for day, nothing_new in done.items() if nothing_new):
        # Processed before and swept by retention: a run would be refused; nothing to do.
        days.discard(day)
        print(f"{day}: already processed, its restricted rows swept by retention: not run again")
        if done_days is not None:
            done_days.append(day.isoformat())
    return sorted(day.isoformat() for day in days)


def _start_date_source(settings: Settings) -> str:
    """Where the first partition comes from: the environment, the home's file, or the default."""
    from phone_pipeline.settings import read_home_settings

    variable = env_name("partitions_start_date")
    if os.environ.get(variable, "").strip():
        return f"{variable} in the environment"
    home_file = read_home_settings(settings.home)
    if variable in home_file.values:
        return f"{variable} in {home_file.path}"
    return f"{variable}, default"


def _report_unreadable_files(since: float) -> None:
    """Print the landing files the runs since `since` (a POSIX time) could not read at all, from
    the latest result of each `*_files_readable` check (WARN checks: the runs still succeed).
    Names and problems are redacted by the stages that read the files."""
    import dagster as dg

    from phone_pipeline.definitions import defs
    from phone_pipeline.stages.shared.checks import FILES_READABLE_SUFFIX

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
    from phone_pipeline.warehouse import when_unlocked

    done_days: list[str] = []
    partitions = partitions or _partitions_with_data(settings, done_days)
    if not partitions:
        if done_days:  # a backfill run again: nothing new, nothing wrong
            return 0
        print(f"No call-log file in {settings.landing_calls} has calls on a day to process.")
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
                _after_failed_run(instance, outcome.run_id)
    if settings.analytics_db.exists():
        # Another run may be writing the file (it holds the pool now): wait for its lock.
        with when_unlocked(
            lambda: duckdb.connect(str(settings.analytics_db), read_only=True)
        ) as con:
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
        # and the `<dataset>_shared_only_within_risk_limits` checks say why.
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
    from phone_pipeline.automation.run_recovery import RunGuard, RunWorker

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


def _after_failed_run(instance: Any, run_id: str) -> None:
    """Name the blocking checks that failed (their descriptions hold counts, never values), and
    regenerate the record of processing: the failed gate stopped the run before it, and without
    a daemon no `record_after_failed_run` sensor does it."""
    import dagster as dg

    from phone_pipeline.definitions import defs

    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            reason = evaluation.description or "see the check in the UI"
            print(f"  gate failed: {evaluation.asset_key.to_user_string()} "
                  f"{evaluation.check_name}: {reason}")  # fmt: skip
    record = defs.resolve_job_def("record_of_processing_job").execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        tags={"phone_pipeline/trigger": "record_after_failed_run",
              "phone_pipeline/failed_run": run_id},
    )  # fmt: skip
    print(
        "  record of processing regenerated with the failure"
        if record.success
        else f"  record of processing NOT regenerated: run {record.run_id[:8]} failed"
    )


# Marks a data home whose warehouse was written by `demo` under a throwaway key (no key in it).
THROWAWAY_DEMO_MARKER = ".throwaway_demo"


def _use_throwaway_key(settings: Settings) -> bool:
    """Give a keyless demo a throwaway key for this process only (never written or printed).

    Nobody can ever hold the key of an earlier throwaway demo, so its warehouse is replaced rather
    than refused (the README promises a repeatable demo). A warehouse written under a real key
    is never touched: without that key the demo is refused."""
    marker = settings.home / THROWAWAY_DEMO_MARKER
    warehouse = settings.restricted_db.parent
    if any(warehouse.glob("*.duckdb")):
        if not marker.exists():
            print(
                f"error: {warehouse} was written under a pseudonym key and "
                f"{env_name('key')} is not set: set the key it was written with, or "
                f"run the demo in another data home ({env_name('home')}).",
                file=sys.stderr,
            )
            return False
        for folder in (warehouse, settings.home / "landing", settings.home / "records"):
            shutil.rmtree(folder, ignore_errors=True)
        settings.ensure_folders()
        print("Removed the earlier throwaway demo's warehouse: replaced the earlier demo.")
    marker.write_text(
        "Written by `phone-pipeline demo` under a throwaway key: the next keyless demo replaces "
        "this data home's warehouse, landing and records folders.\n"
    )
    os.environ[env_name("key")] = secrets.token_hex(32)
    print(
        f"{env_name('key')} is not set: this demo uses a throwaway key, so its "
        "pseudonyms will not match later runs. Set the variable for real use."
    )
    return True


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
    from phone_pipeline.automation.process_group import run_in_process_group
    from phone_pipeline.instance import ensure_dagster_home

    home = ensure_dagster_home(settings.dagster_home)
    print(f"Dagster instance: {home}; open http://127.0.0.1:{port}", flush=True)
    # `dg dev` (what `dagster dev` is superseded by) finds the code location in pyproject.toml's
    # [tool.dg]. A child in its own process group, not exec: SIGINT/SIGTERM stop every process of it.
    dg_cli = Path(sys.executable).with_name("dg")
    return run_in_process_group(
        [str(dg_cli), "dev", "-h", "127.0.0.1", "-p", str(port)], cwd=PROJECT_ROOT
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
    # The benchmark lives outside the product (phone_pipeline_bench): imported, and its options
    # parsed, only when it is the command (`phone-pipeline bench --help` lists them).
    commands.add_parser(
        "bench", help="benchmark a day of calls (see benchmarks/README.md)", add_help=False
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":  # its own data home under /tmp: no ./data folders
        from phone_pipeline_bench import main as bench_main

        return bench_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    try:
        settings = load_settings()
    except SettingError as error:  # names the variable and what it allows; no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
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
    if not os.environ.get(env_name("key")) and not _use_throwaway_key(settings):
        return 2
    _generate(settings, args)
    settings = load_settings()  # with the first day the generation recorded
    code = _run(settings, None)
    print(f"\n{_demo_results(settings)}")
    return code


def _demo_results(settings: Settings) -> str:
    """Where the demo's results are: each zone's file and tables, as the catalog lists them."""
    from phone_pipeline.stages.report.assets import REPORT_FILE

    def tables(zone: str) -> str:
        return ", ".join(table.name for table in catalog.zone_tables(zone))

    restricted = len(catalog.zone_tables(catalog.RESTRICTED))
    return (
        f"Results:\n  shareable zone: {settings.shareable_db} (the datasets whose "
        "re-identification risk passed the gate; see analytics.shareable_publications: "
        f"{tables(catalog.SHAREABLE)})\n"
        f"  analytics zone (internal): {settings.analytics_db} ({tables(catalog.ANALYTICS)})\n"
        f"  compliance zone: {settings.compliance_db} (by pseudonym, for the compliance team: "
        f"{tables(catalog.COMPLIANCE)})\n"
        f"  restricted zone: {settings.restricted_db} ({restricted} tables, numbers among them: "
        ".venv/bin/python -m phone_pipeline.catalog --zone restricted)\n"
        f"  record of processing: {settings.home / 'records' / 'record_of_processing.md'}\n"
        f"  privacy report (for the data protection officer, a page for any browser): "
        f"{settings.home / 'records' / REPORT_FILE}\n"
        "Open the UI (runs, lineage, checks): .venv/bin/phone-pipeline ui   then "
        "http://127.0.0.1:3000"
    )


if __name__ == "__main__":
    sys.exit(main())
