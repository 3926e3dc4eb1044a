"""Turning Great Expectations suites and SQL audits into Dagster asset check results.

Every gate is declared blocking (an ERROR result stops the run's downstream steps). Results carry
counts and percentages only, never values: a GX result can quote the phone numbers it rejected.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import dagster as dg
import duckdb

from phone_pipeline.domain.markdown import markdown_table
from phone_pipeline.resources import GreatExpectationsResource, SuiteOutcome
from phone_pipeline.sql import SqlValues, run
from phone_pipeline.stages.shared.frames import distinct_values_frame


def blocking(asset_key: dg.AssetKey, name: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset_key, description=description, blocking=True)


def warning(asset_key: dg.AssetKey, name: str, description: str) -> dg.AssetCheckSpec:
    # Reported in the UI but not blocking: used where stopping all partitions would be worse.
    return dg.AssetCheckSpec(name, asset=asset_key, description=description)


def _suite_markdown(outcome: SuiteOutcome) -> str:
    return markdown_table(
        ["expectation", "column", "passed", "unexpected", "of distinct values"],
        ["---", "---", "---", "---:", "---:"],
        [
            [
                item.expectation,
                item.column or "",
                "yes" if item.success else "NO",
                int(item.counts.get("unexpected_count", 0)),
                int(item.counts.get("element_count", outcome.rows)),
            ]
            for item in outcome.expectations
        ],
    )


def suite_check(
    gx: GreatExpectationsResource,
    asset_key: dg.AssetKey,
    check_name: str,
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    expectations: list[Any],
    values: SqlValues | None = None,
) -> dg.AssetCheckResult:
    """Run a stage's suite over the distinct values of `relation_sql` (see
    stages/shared/frames.py), with `values` bound to the parameters it names."""
    frame = distinct_values_frame(con, relation_sql, expectations, values)
    rows = run(con, f"SELECT count(*) FROM ({relation_sql})", values).fetchone()[0]
    started = time.perf_counter()
    outcome = gx.validate(check_name, frame, expectations)
    # Shown in the UI; `phone-pipeline bench` sums it per stage from the run's event log.
    suite_seconds = time.perf_counter() - started
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "suite": outcome.suite,
            "rows": rows,
            "distinct_value_rows_validated": outcome.rows,
            "expectations": len(outcome.expectations),
            "failed_expectations": dg.MetadataValue.json(
                [f"{item.expectation}({item.column or 'table'})" for item in outcome.failed]
            ),
            "results": dg.MetadataValue.md(_suite_markdown(outcome)),
            "suite_seconds": round(suite_seconds, 3),
        },
    )


def sql_check(
    asset_key: dg.AssetKey,
    check_name: str,
    passed: bool,
    metadata: Mapping[str, Any] | None = None,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    description: str | None = None,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=bool(passed),
        severity=severity,
        metadata=dict(metadata or {}),
        description=description,
    )


def gates_failed_message(failed_gates: list[str], staged: str, refused: str) -> str:
    """What a refused publication logs and reports: the failed gates by name, never a value."""
    return f"Blocking gate(s) {', '.join(failed_gates)} failed on {staged}: {refused}."


def reconcile_check(
    asset_key: dg.AssetKey, check_name: str, equations: Mapping[str, tuple[int, int]]
) -> dg.AssetCheckResult:
    """Each equation is (left, right) counts that must be equal; all are shown, failures named."""
    broken = [name for name, (left, right) in equations.items() if left != right]
    return sql_check(
        asset_key,
        check_name,
        passed=not broken,
        metadata={
            **{
                name: f"{left} = {right}" if left == right else f"{left} != {right}"
                for name, (left, right) in equations.items()
            },
            "broken": dg.MetadataValue.json(broken),
        },
    )


# The name of each landing folder's readability check ends so (`landing_files_readable` for
# calls, `consent_`, `dnc_`, `erasure_files_readable`); the CLI's exit summary finds them by it.
FILES_READABLE_SUFFIX = "_files_readable"


def files_readable_check(
    asset_key: dg.AssetKey, check_name: str, unreadable: Mapping[str, str]
) -> dg.AssetCheckResult:
    """WARN, never blocking: one unreadable landing file must not stop every partition. Names are
    already redacted by the landing functions (redacted name -> problem)."""
    if not check_name.endswith(FILES_READABLE_SUFFIX):
        raise ValueError(f"{check_name!r} must end with {FILES_READABLE_SUFFIX!r}")
    return sql_check(
        asset_key,
        check_name,
        passed=not unreadable,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unreadable_file_count": len(unreadable),
            "unreadable_files": dg.MetadataValue.json(dict(unreadable)),
        },
    )
