"""The `phone-pipeline` console script, for real: each test starts it as a subprocess.

Every call gets its own environment: a data home in a temporary folder, no DAGSTER_HOME (so the CLI
uses `<home>/dagster_home`), a start date before the test days, and no other PHONE_PIPELINE_*
variable inherited from the shell that runs the tests. Each call is bounded by a timeout, and every
assertion message carries the call's exit code, stdout and stderr.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from phone_pipeline import catalog
from phone_pipeline_synthetic import generate
from phone_pipeline_tests.conftest import TEST_KEY
from phone_pipeline_tests.pipeline_support import (
    count,
    input_phone_numbers,
    numbers_found,
    read_text_csv,
    table_names,
)

# The data contract of the README, spelled out so that a change to it shows up here.
CALL_COLUMNS = (
    "call_id",
    "caller_number",
    "callee_number",
    "started_at",
    "duration_seconds",
    "disposition",
    "cell_id",
    "campaign_id",
)
CONSENT_COLUMNS = ("phone_number", "purpose", "status", "recorded_at", "source")

CLI = Path(sys.executable).with_name("phone-pipeline")
START_DATE = "2026-10-01"  # first partition: before every day the tests generate
DAY_1 = dt.date(2026, 11, 1)
DAY_2 = dt.date(2026, 11, 2)
ROWS, DAYS, SEED = 1_500, 2, 3
GENERATE_ARGS = ["generate", "--rows", str(ROWS), "--days", str(DAYS), "--seed", str(SEED)]
GENERATE_ARGS += ["--start", DAY_1.isoformat()]

GENERATE_TIMEOUT = 120
RUN_TIMEOUT = 300
PARTITION_TAG = "dagster/partition"
PARTITION_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}): run ([0-9a-f]{8}) (ok|FAILED.*)$", re.MULTILINE)
HEX_64 = re.compile(r"[0-9a-fA-F]{64}")

pytestmark = pytest.mark.skipif(not CLI.exists(), reason=f"console script not installed: {CLI}")


# --- running the console script -------------------------------------------------------------------


@dataclass
class Call:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return (
            f"phone-pipeline {' '.join(self.args)} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def cli_env(
    home: Path, key: str | None = None, settings: dict[str, str] | None = None
) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PHONE_PIPELINE_") and name != "DAGSTER_HOME"
    }
    env["PHONE_PIPELINE_HOME"] = str(home)
    env["PHONE_PIPELINE_START_DATE"] = START_DATE
    # The fixed test days would age out of a retention period: keep every partition.
    env["PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS"] = "0"
    env["PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS"] = "0"
    if key is not None:
        env["PHONE_PIPELINE_PSEUDONYM_KEY"] = key
    return {**env, **(settings or {})}


def phone_pipeline(
    args: list[str],
    home: Path,
    key: str | None = None,
    timeout: float = RUN_TIMEOUT,
    settings: dict[str, str] | None = None,
) -> Call:
    # cwd is the data home's parent: nothing the CLI might write by accident lands in the repository.
    completed = subprocess.run(
        [str(CLI), *args],
        env=cli_env(home, key, settings),
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Call(args, completed.returncode, completed.stdout, completed.stderr)


def first_partition_seen_by_a_new_process(home: Path) -> str:
    """The first partition of the definitions as a process started on `home` loads them (what
    `dg dev`'s webserver, daemon and runs do), with no start date in its environment."""
    env = cli_env(home, TEST_KEY, {"PHONE_PIPELINE_START_DATE": ""})
    code = (
        "from phone_pipeline.definitions import defs\n"
        "node = defs.resolve_asset_graph().get(__import__('dagster').AssetKey(['restricted', "
        "'raw_calls']))\n"
        "print(node.partitions_def.get_first_partition_key())"
    )
    completed = subprocess.run([sys.executable, "-c", code], env=env, cwd=home.parent,
                               capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return completed.stdout.strip()


# --- reading what a call left behind --------------------------------------------------------------


def landing_numbers(home: Path) -> set[str]:
    """Every phone number as written in the landing CSVs (7 digits or more: 'N/A' is no number)."""
    numbers: set[str] = set()
    for path in sorted((home / "landing" / "calls").glob("*.csv")):
        frame = read_text_csv(path)
        numbers |= set(frame["caller_number"]) | set(frame["callee_number"])
    for path in sorted((home / "landing" / "consent").glob("*.csv")):
        numbers |= set(read_text_csv(path)["phone_number"])
    return {number for number in numbers if sum(ch.isdigit() for ch in number) >= 7}


def all_numbers(home: Path) -> set[str]:
    """The landing numbers plus every E.164 form the pipeline derived from them."""
    with duckdb.connect(str(home / "warehouse" / "restricted.duckdb"), read_only=True) as con:
        return input_phone_numbers(home, con)


@dataclass
class RunRecord:
    run_id: str
    status: dg.DagsterRunStatus
    job_name: str
    partition: str | None


def recorded_runs(home: Path) -> list[RunRecord]:
    """The runs in the instance the CLI used (`<home>/dagster_home`), opened without DAGSTER_HOME."""
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        return [
            RunRecord(run.run_id, run.status, run.job_name, run.tags.get(PARTITION_TAG))
            for run in instance.get_runs()
        ]


def printed_runs(call: Call) -> list[tuple[str, str, str]]:
    """(partition, short run id, status) for every partition line the CLI printed."""
    return PARTITION_LINE.findall(call.stdout)


def printed_accounting(call: Call) -> dict[tuple[str, str], int]:
    """The 'Row accounting over all partitions' block: (stage, outcome) -> rows."""
    lines = call.stdout.split("Row accounting over all partitions:\n", 1)
    assert len(lines) == 2, call.describe()
    totals = {}
    for line in lines[1].splitlines():
        if not line.startswith("  "):
            break
        stage, outcome, rows = line.split()
        totals[(stage, outcome)] = int(rows)
    return totals


def db_accounting(home: Path) -> dict[tuple[str, str], int]:
    with duckdb.connect(str(home / "warehouse" / "analytics.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT stage, outcome, sum(rows) FROM row_accounting GROUP BY ALL"
        ).fetchall()
    return {(stage, outcome): int(total) for stage, outcome, total in rows}


def table_counts(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {table: count(con, f"SELECT count(*) FROM {table}") for table in table_names(con)}


def call_dates(database: Path, table: str) -> set[dt.date]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {row[0] for row in con.execute(f"SELECT DISTINCT call_date FROM {table}").fetchall()}


def warehouse_counts(home: Path) -> dict[str, dict[str, int]]:
    warehouse = home / "warehouse"
    return {
        "analytics": table_counts(warehouse / "analytics.duckdb"),
        "restricted": table_counts(warehouse / "restricted.duckdb"),
    }


def generate_in_process(home: Path) -> None:
    """The same landing data as the `generate` call, for tests that need a fresh home of their own."""
    generate(home, rows=ROWS, days=DAYS, seed=SEED, start_date=DAY_1)


# --- module fixtures: one data home, generated once and run once ----------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli") / "data"


@pytest.fixture(scope="module")
def generated(home: Path) -> Call:
    return phone_pipeline(GENERATE_ARGS, home, timeout=GENERATE_TIMEOUT)


@dataclass
class FirstRun:
    call: Call
    runs: list[RunRecord]
    counts: dict[str, dict[str, int]]


@pytest.fixture(scope="module")
def first_run(home: Path, generated: Call) -> Iterator[FirstRun]:
    assert generated.returncode == 0, generated.describe()
    call = phone_pipeline(["run"], home, key=TEST_KEY)
    assert call.returncode == 0, call.describe()
    # Captured now, so that a later `run` in this module cannot change what these tests see.
    yield FirstRun(call=call, runs=recorded_runs(home), counts=warehouse_counts(home))


# --- generate -------------------------------------------------------------------------------------


def test_generate_writes_call_files_consent_and_cells(home: Path, generated: Call) -> None:
    assert generated.returncode == 0, generated.describe()
    landing = home / "landing"
    call_files = sorted(path.name for path in (landing / "calls").iterdir())
    assert call_files == ["calls_2026-11-01.csv", "calls_2026-11-02.csv"], generated.describe()
    rows = 0
    for name in call_files:
        frame = read_text_csv(landing / "calls" / name)
        assert tuple(frame.columns) == CALL_COLUMNS, name
        rows += len(frame)
    assert rows == ROWS
    consent = read_text_csv(landing / "consent" / "consent_events.csv")
    assert tuple(consent.columns) == CONSENT_COLUMNS
    assert len(consent) > 0
    cells = read_text_csv(landing / "cells.csv")
    assert {"cell_id", "region"} <= set(cells.columns)
    assert len(cells) > 0
    assert f"Generated {ROWS} calls over {DAYS} day(s) from 2026-11-01" in generated.stdout, (
        generated.describe()
    )
    assert str(landing) in generated.stdout, generated.describe()


def test_generate_prints_no_phone_number(home: Path, generated: Call) -> None:
    assert generated.returncode == 0, generated.describe()
    numbers = landing_numbers(home)
    assert len(numbers) > 100  # the check below has something to look for
    leaked = numbers_found(numbers, [generated.stdout, generated.stderr])
    assert not leaked, f"{sorted(leaked)[:5]}\n{generated.describe()}"


# --- run ------------------------------------------------------------------------------------------


def test_run_prints_one_line_per_partition_and_row_accounting(
    home: Path, first_run: FirstRun
) -> None:
    call = first_run.call
    printed = printed_runs(call)
    assert [(day, status) for day, _, status in printed] == [
        ("2026-11-01", "ok"),
        ("2026-11-02", "ok"),
    ], call.describe()
    accounting = printed_accounting(call)
    assert accounting == db_accounting(home), call.describe()
    assert accounting[("ingest", "received")] == ROWS, call.describe()
    assert (
        accounting[("validate", "validated")] + accounting[("validate", "quarantined")] == ROWS
    ), call.describe()


def test_run_creates_the_dagster_home_of_the_data_home(home: Path, first_run: FirstRun) -> None:
    config_file = home / "dagster_home" / "dagster.yaml"
    assert config_file.is_file(), first_run.call.describe()
    config = yaml.safe_load(config_file.read_text())
    assert config["telemetry"]["enabled"] is False
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_run_records_its_runs_in_that_instance(first_run: FirstRun) -> None:
    runs = first_run.runs
    describe = f"{runs}\n{first_run.call.describe()}"
    assert len(runs) == 2, describe
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}, describe
    assert {run.job_name for run in runs} == {"call_pipeline"}, describe
    assert sorted(run.partition for run in runs) == ["2026-11-01", "2026-11-02"], describe
    # The ids the CLI printed are those of the recorded runs, partition by partition.
    recorded = {run.partition: run.run_id[:8] for run in runs}
    printed = {day: run_id for day, run_id, _ in printed_runs(first_run.call)}
    assert printed == recorded, describe


def test_run_prints_no_phone_number_and_no_key(home: Path, first_run: FirstRun) -> None:
    call = first_run.call
    numbers = all_numbers(home)
    assert len(numbers) > 100
    assert any(number.startswith("+") for number in numbers)  # the E.164 forms are in the set
    leaked = numbers_found(numbers, [call.stdout, call.stderr])
    assert not leaked, f"{sorted(leaked)[:5]}\n{call.describe()}"
    assert TEST_KEY not in call.output, call.describe()
    assert TEST_KEY.upper() not in call.output, call.describe()


def test_run_writes_the_key_into_no_file_of_the_data_home(home: Path, first_run: FirstRun) -> None:
    key_bytes = TEST_KEY.encode()
    holding = [
        path for path in home.rglob("*") if path.is_file() and key_bytes in path.read_bytes()
    ]
    assert not holding, f"{holding}\n{first_run.call.describe()}"


def test_second_run_is_idempotent(home: Path, first_run: FirstRun) -> None:
    again = phone_pipeline(["run"], home, key=TEST_KEY)
    assert again.returncode == 0, again.describe()
    assert [(day, status) for day, _, status in printed_runs(again)] == [
        ("2026-11-01", "ok"),
        ("2026-11-02", "ok"),
    ], again.describe()
    assert printed_accounting(again) == printed_accounting(first_run.call), again.describe()
    assert warehouse_counts(home) == first_run.counts, again.describe()
    runs = recorded_runs(home)
    assert len(runs) == 4, f"{runs}\n{again.describe()}"
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}, runs


def test_run_one_partition_runs_only_that_day(tmp_path: Path) -> None:
    home = tmp_path / "data"
    generate_in_process(home)
    call = phone_pipeline(["run", "--partition", DAY_1.isoformat()], home, key=TEST_KEY)
    assert call.returncode == 0, call.describe()
    assert [(day, status) for day, _, status in printed_runs(call)] == [("2026-11-01", "ok")], (
        call.describe()
    )
    runs = recorded_runs(home)
    assert [(run.partition, run.status) for run in runs] == [
        ("2026-11-01", dg.DagsterRunStatus.SUCCESS)
    ], f"{runs}\n{call.describe()}"
    warehouse = home / "warehouse"
    # Ingest loads every new file into raw_calls (whatever its day); the later stages are per day.
    assert call_dates(warehouse / "restricted.duckdb", "calls_validated") == {DAY_1}
    assert call_dates(warehouse / "restricted.duckdb", "consented_calls") == {DAY_1}
    assert call_dates(warehouse / "analytics.duckdb", "row_accounting") == {DAY_1}
    assert call_dates(warehouse / "analytics.duckdb", "calls_pseudonymized") == {DAY_1}
    # Both days have the same number of rows; only one day's worth was received.
    assert printed_accounting(call)[("ingest", "received")] == ROWS // DAYS, call.describe()


# --- run without a usable key ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyless_run(tmp_path_factory: pytest.TempPathFactory) -> Call:
    home = tmp_path_factory.mktemp("keyless") / "data"
    generate_in_process(home)
    return phone_pipeline(["run"], home, key=None)


def test_run_without_key_fails_and_names_the_variable(keyless_run: Call) -> None:
    assert keyless_run.returncode != 0, keyless_run.describe()
    assert "PHONE_PIPELINE_PSEUDONYM_KEY" in keyless_run.output, keyless_run.describe()
    assert all(status != "ok" for _, _, status in printed_runs(keyless_run)), keyless_run.describe()


def test_run_without_key_prints_no_traceback(keyless_run: Call) -> None:
    assert keyless_run.returncode != 0, keyless_run.describe()
    assert "Traceback" not in keyless_run.output, keyless_run.describe()
    assert "DagsterInvalidConfigError" not in keyless_run.output, keyless_run.describe()


def test_run_with_too_short_key_fails_without_printing_it(tmp_path: Path) -> None:
    home = tmp_path / "data"
    generate_in_process(home)
    weak_key = "weak-secret-Qx7Zp-not-256-bits"
    call = phone_pipeline(["run", "--partition", DAY_1.isoformat()], home, key=weak_key)
    assert call.returncode == 2, call.describe()  # refused before any run starts
    assert "too short" in call.stderr, call.describe()
    assert "PHONE_PIPELINE_PSEUDONYM_KEY" in call.output, call.describe()
    assert weak_key not in call.output, call.describe()
    assert "Qx7Zp" not in call.output, call.describe()


def test_run_with_malformed_settings_names_each_variable_without_a_traceback(
    tmp_path: Path,
) -> None:
    home = tmp_path / "data"
    home.mkdir()
    bad = {
        "PHONE_PIPELINE_MIN_CELL_SIZE": "five",
        "PHONE_PIPELINE_MAX_UNICITY": "2",
        "PHONE_PIPELINE_PERMITTED_CALL_WINDOW": "8-21",
    }
    call = phone_pipeline(["run"], home, key=TEST_KEY, settings=bad, timeout=GENERATE_TIMEOUT)
    assert call.returncode == 2, call.describe()  # refused before anything runs
    assert "PHONE_PIPELINE_MIN_CELL_SIZE='five' is not an integer" in call.stderr, call.describe()
    assert "PHONE_PIPELINE_MAX_UNICITY='2' is not allowed: must be 0 to 1" in call.stderr
    assert "PHONE_PIPELINE_PERMITTED_CALL_WINDOW='8-21' is not allowed" in call.stderr
    assert "Traceback" not in call.output, call.describe()
    assert not (home / "warehouse").exists(), call.describe()


# --- demo -----------------------------------------------------------------------------------------


def test_demo_without_key_runs_and_says_where_to_look(tmp_path: Path) -> None:
    home = tmp_path / "data"
    # As a new user runs it: no start date in the environment.
    no_start = {"PHONE_PIPELINE_START_DATE": ""}
    call = phone_pipeline(["demo", "--rows", "1200", "--days", "1"], home, settings=no_start)
    assert call.returncode == 0, call.describe()
    assert "throwaway key" in call.stdout, call.describe()
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert [(day, status) for day, _, status in printed_runs(call)] == [
        (yesterday.isoformat(), "ok")
    ], call.describe()
    # The partitions start where the demo's data does, for every later process on the home
    # (the webserver and daemon of `phone-pipeline ui` load the same definitions).
    settings_file = home / "settings.toml"
    assert f"First daily partition: {yesterday} (PHONE_PIPELINE_START_DATE in {settings_file})" in (
        call.stdout
    ), call.describe()
    assert first_partition_seen_by_a_new_process(home) == yesterday.isoformat()
    analytics_db = home / "warehouse" / "analytics.duckdb"
    assert analytics_db.is_file(), call.describe()
    assert str(analytics_db) in call.stdout, call.describe()
    assert str(home / "warehouse" / "restricted.duckdb") in call.stdout, call.describe()
    report = home / "records" / "privacy_report.html"
    assert str(report) in call.stdout and report.is_file(), call.describe()
    assert "phone-pipeline ui" in call.stdout, call.describe()
    assert "http://127.0.0.1:3000" in call.stdout, call.describe()
    # Where to look is read from the catalog: a table added there is named here too.
    for zone in (catalog.ANALYTICS, catalog.COMPLIANCE, catalog.SHAREABLE):
        for table in catalog.zone_tables(zone):
            assert table.name in call.stdout, (table.name, call.describe())
    # The throwaway key is 64 hex characters; nothing of that shape may be printed.
    assert not HEX_64.search(call.output), call.describe()
    leaked = numbers_found(all_numbers(home), [call.stdout, call.stderr])
    assert not leaked, f"{sorted(leaked)[:5]}\n{call.describe()}"

    # The README says the demo is safe to repeat: a second throwaway key cannot match the first
    # one's fingerprint, so the earlier throwaway demo is replaced, not refused.
    again = phone_pipeline(["demo", "--rows", "1200", "--days", "1"], home, settings=no_start)
    assert again.returncode == 0, again.describe()
    assert "replaced the earlier demo" in again.stdout, again.describe()
    assert [status for _, _, status in printed_runs(again)] == ["ok"], again.describe()


def test_run_names_the_days_before_the_first_partition_and_where_it_is_set(
    tmp_path: Path,
) -> None:
    """Late files older than the first partition do not vanish: `run` names them, their days,
    the first partition and the file that sets it (no pipeline run: nothing else to do)."""
    home = tmp_path / "data"
    generate_in_process(home)
    later = DAY_2 + dt.timedelta(days=1)
    (home / "settings.toml").write_text(f'PHONE_PIPELINE_START_DATE = "{later}"\n')
    call = phone_pipeline(["run"], home, key=TEST_KEY, settings={"PHONE_PIPELINE_START_DATE": ""})
    assert call.returncode == 1, call.describe()
    for day in (DAY_1, DAY_2):
        assert f"calls_{day}.csv: calls on 1 day(s) from {day} to {day} are not processed" in (
            call.stderr
        ), call.describe()
    assert (
        f"the first partition is {later} (PHONE_PIPELINE_START_DATE in {home / 'settings.toml'}); "
        "set an earlier PHONE_PIPELINE_START_DATE there to process them"
    ) in call.stderr, call.describe()
    assert not PARTITION_LINE.findall(call.stdout), call.describe()


def test_demo_without_key_leaves_a_real_warehouse_alone(
    tmp_path: Path, home: Path, first_run: FirstRun
) -> None:
    """A warehouse written under a real key is never wiped by a keyless demo: it is refused.
    (A copy of the module's home, which `run` wrote under TEST_KEY.)"""
    assert first_run.call.returncode == 0
    home = shutil.copytree(home, tmp_path / "data")
    before = (home / "warehouse" / "restricted.duckdb").stat().st_mtime_ns
    call = phone_pipeline(["demo", "--rows", "600", "--days", "1"], home, key=None)
    assert call.returncode == 2, call.describe()
    assert "PHONE_PIPELINE_PSEUDONYM_KEY" in call.stderr, call.describe()
    assert (home / "warehouse" / "restricted.duckdb").stat().st_mtime_ns == before
