"""Registry refresh: a registry (consent, do-not-call, erasure requests) read in full from its
landing folder at each run.

`stage_registry` reads every file row by row into TEMP tables (a malformed row is set aside
with a reason, an unreadable file is logged by its redacted name); the stage classifies the
staged rows its own way; `replace_registry` then replaces the registry's tables and its
quarantine in one transaction (a failure leaves the old rows) and counts what was read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb

from phone_pipeline.landing import CALL_FILE_SUFFIXES, RegistryRead, stage_registry_files
from phone_pipeline.stages.shared.checks import FILES_READABLE_SUFFIX, files_readable_check
from phone_pipeline.warehouse import transaction


@dataclass(frozen=True)
class LandingRegistry:
    """A registry's landing contract and the names derived from `name`: its staged TEMP table
    `<name>_staged` (and `<name>_staged_malformed`), its `<name>_quarantine` table and its
    `<name>_files_readable` check."""

    asset_key: dg.AssetKey
    name: str
    label: str  # how a log line names its files ("Consent file not read: ...")
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = CALL_FILE_SUFFIXES

    @property
    def staged(self) -> str:
        return f"{self.name}_staged"

    @property
    def malformed(self) -> str:
        return f"{self.staged}_malformed"

    @property
    def quarantine(self) -> str:
        return f"{self.name}_quarantine"


@dataclass(frozen=True)
class RegistryRefresh:
    """What a refresh read: every row of the staged files (malformed ones included), the
    quarantine's rows by reason, and the (WARN) check naming the files not read."""

    rows_read: int
    quarantined_by_reason: dict[str, int]
    files_readable: dg.AssetCheckResult


def stage_registry(
    con: duckdb.DuckDBPyConnection,
    log: logging.Logger,  # the run's (context.log: a DagsterLogManager is one)
    registry: LandingRegistry,
    folder: Path,
) -> RegistryRead:
    """Stage every file of `folder` as text into `registry.staged` (with source_file and
    source_row); log each file that could not be read."""
    columns = ", ".join(f"{name} VARCHAR" for name in (*registry.required, *registry.optional))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {registry.staged} (source_file VARCHAR, "
        f"source_row BIGINT, {columns})"
    )
    read = stage_registry_files(
        con, folder, registry.staged, registry.required, registry.optional, registry.suffixes
    )
    for problem in read.unreadable.values():
        log.error(f"{registry.label} file not read: {problem}")
    return read


def replace_registry(
    con: duckdb.DuckDBPyConnection,
    registry: LandingRegistry,
    read: RegistryRead,
    replaced: Mapping[str, str],
    quarantined_sql: str,
    appended: Sequence[str] = (),
) -> RegistryRefresh:
    """In one transaction: empty each table of `replaced` and the quarantine, fill each from
    its SELECT, quarantine the classified rows `quarantined_sql` selects and the malformed rows,
    and run the `appended` statements (rows kept across refreshes, such as erasure requests)."""
    with transaction(con):
        for table in (*replaced, registry.quarantine):
            con.execute(f"DELETE FROM {table}")
        for table, select_sql in replaced.items():
            con.execute(f"INSERT INTO {table} BY NAME {select_sql}")
        con.execute(f"INSERT INTO {registry.quarantine} BY NAME {quarantined_sql}")
        con.execute(
            f"INSERT INTO {registry.quarantine} BY NAME SELECT reason, detail, source_file, "
            f"source_row FROM {registry.malformed}"
        )
        for statement in appended:
            con.execute(statement)
    rows_read = con.execute(
        f"SELECT (SELECT count(*) FROM {registry.staged}) "
        f"+ (SELECT count(*) FROM {registry.malformed})"
    ).fetchone()[0]
    reasons = dict(
        con.execute(f"SELECT reason, count(*) FROM {registry.quarantine} GROUP BY 1").fetchall()
    )
    return RegistryRefresh(
        rows_read,
        reasons,
        files_readable_check(
            registry.asset_key, f"{registry.name}{FILES_READABLE_SUFFIX}", read.unreadable
        ),
    )
