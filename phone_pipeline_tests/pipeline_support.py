"""Helpers shared by the Dagster-level tests: a data home for a whole test module, table snapshots,
what a run did step by step, and the numbers of the input files.

Plain functions (no fixtures here): each test module builds its own module-scoped fixtures with
`module_pipeline`, so that one generated partition and one run serve several read-only tests.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import pytest

from phone_pipeline.definitions import defs
from phone_pipeline.domain.pseudonyms import Pseudonymizer, decode_key
from phone_pipeline.settings import load_settings
from phone_pipeline_tests.conftest import (
    LENIENT_RISK_LIMITS,
    NO_RETENTION,
    TEST_KEY,
    Pipeline,
    dagster_instance,
)

# Every asset of the call_pipeline job writes one of these; the checks evaluated per run must cover them all.
_CALL_PIPELINE_LAYER = defs.resolve_job_def("call_pipeline").asset_layer
ALL_ASSETS = {key.to_user_string() for key in _CALL_PIPELINE_LAYER.executable_asset_keys}
ALL_CHECKS = {key.name for key in _CALL_PIPELINE_LAYER.asset_graph.asset_check_keys}
# The assets of the job that are DuckDB tables (the others are documents, such as the record of
# processing).
TABLE_ASSETS = {
    spec.key.to_user_string()
    for assets_def in defs.resolve_asset_graph().assets_defs
    for spec in assets_def.specs
    if "duckdb" in spec.kinds and spec.key.to_user_string() in ALL_ASSETS
}
PARTITIONED_TABLES = (
    "raw_calls",
    "calls_validated",
    "calls_quarantine",
    "consented_calls",
    "consent_exclusions",
)
ANALYTICS_TABLES = (
    "calls_pseudonymized",
    "call_volume_hourly",
    "call_volume_by_country",
    "row_accounting",
)


@contextmanager
def module_pipeline(
    home: Path, key: str = TEST_KEY, persistent: bool = False, **overrides: Any
) -> Iterator[Pipeline]:
    """What the `settings` and `pipeline` fixtures give, for a longer scope than one test
    (`persistent`: see `dagster_instance`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", key)
        patch.setenv("PHONE_PIPELINE_HOME", str(home / "data"))
        patch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
        for name, value in LENIENT_RISK_LIMITS.items():
            patch.setenv(name, value)
        settings = replace(load_settings(), home=home / "data", **{**NO_RETENTION, **overrides})
        settings.ensure_folders()
        with dagster_instance(persistent) as instance:
            yield Pipeline(settings=settings, instance=instance)


def pseudonymizer(key: str = TEST_KEY, version: int = 1) -> Pseudonymizer:
    return Pseudonymizer(decode_key(key), version)


def wait_for(
    what: str,
    condition: Callable[[], Any],
    timeout: float,
    explain: Callable[[], str],
    poll_seconds: float = 0.2,
) -> Any:
    """Poll `condition` until it returns something truthy, and return that; fail with `explain()`
    after `timeout` seconds (a regression fails the test instead of hanging it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout:.0f} s waiting for {what}.\n\n{explain()}")
        time.sleep(poll_seconds)


# --- what a run did -------------------------------------------------------------------------------


def step_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """step key -> last of STEP_START / STEP_SUCCESS / STEP_FAILURE / STEP_SKIPPED."""
    outcomes: dict[str, str] = {}
    for event in result.all_events:
        if event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            outcomes[event.step_key] = event.event_type_value
    return outcomes


def step_failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    """step key -> the error message with its causes (what a user sees in the UI)."""
    failures = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            messages = []
            while error is not None:
                messages.append(f"{error.cls_name}: {error.message}")
                error = error.cause or error.context
            failures[event.step_key] = "\n".join(messages)
    return failures


# --- table contents -------------------------------------------------------------------------------


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = 'main'"
        ).fetchall()
    )


def snapshot(
    con: duckdb.DuckDBPyConnection,
    exclude_columns: frozenset[str] = frozenset({"recorded_at"}),
    call_date: dt.date | None = None,
) -> dict[str, list[tuple]]:
    """Every table's rows (sorted, as a multiset), without the columns that hold run times.

    With `call_date`, only that partition of the tables that have a `call_date` column (tables
    without one are left out).
    """
    contents = {}
    for table in table_names(con):
        columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
        kept = ", ".join(f'"{name}"' for name in columns if name not in exclude_columns)
        where = ""
        params: list[Any] = []
        if call_date is not None:
            if "call_date" not in columns:
                continue
            where, params = " WHERE call_date = ?", [call_date]
        rows = con.execute(f"SELECT {kept} FROM {table}{where}", params).fetchall()
        contents[table] = sorted(rows, key=repr)
    return contents


def count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    return con.execute(sql, params or []).fetchone()[0]


def accounting(con: duckdb.DuckDBPyConnection, call_date: dt.date) -> dict[tuple[str, str], int]:
    """(stage, outcome) -> rows, summed over reasons, from analytics.row_accounting."""
    totals: dict[tuple[str, str], int] = {}
    for stage, outcome, rows in con.execute(
        "SELECT stage, outcome, sum(rows) FROM row_accounting WHERE call_date = ? GROUP BY 1, 2",
        [call_date],
    ).fetchall():
        totals[(stage, outcome)] = int(rows)
    return totals


# --- the input's phone numbers --------------------------------------------------------------------


def read_text_csv(path: Path) -> pd.DataFrame:
    """A landing CSV as pandas reads it without guessing: `+`, leading zeros and 'N/A' kept."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_csv_atomically(frame: pd.DataFrame, path: Path) -> None:
    """As a producer should: write `<name>.part`, then rename (the sensor skips `.part` names)."""
    part = path.with_name(path.name + ".part")
    frame.to_csv(part, index=False)
    os.replace(part, path)


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def input_phone_numbers(settings_home: Path, restricted: duckdb.DuckDBPyConnection) -> set[str]:
    """Every number of the input as written in the files, plus every E.164 form the pipeline made.

    Strings with fewer than 7 digits ('N/A', '', 'anonymous', '12345', '555-CALL') are no phone
    numbers and would match unrelated text, so they are left out.
    """
    landing = settings_home / "landing"
    numbers: set[str] = set()
    for path in sorted((landing / "calls").glob("*.csv")):
        frame = read_text_csv(path)
        numbers |= set(frame["caller_number"]) | set(frame["callee_number"])
    for path in sorted((landing / "consent").glob("*.csv")):
        numbers |= set(read_text_csv(path)["phone_number"])
    for sql in (
        "SELECT caller_e164 FROM calls_validated UNION SELECT callee_e164 FROM calls_validated",
        "SELECT e164 FROM consent_events",
        "SELECT e164 FROM number_cache WHERE e164 IS NOT NULL",
    ):
        numbers |= {row[0] for row in restricted.execute(sql).fetchall()}
    return {number for number in numbers if number and _digits(number) >= 7}


def numbers_found(numbers: set[str], texts: list[str]) -> set[str]:
    """The numbers that occur as a substring of any text."""
    haystack = "\n".join(texts)
    return {number for number in numbers if number in haystack}
