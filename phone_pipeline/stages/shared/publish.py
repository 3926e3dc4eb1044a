"""Write, audit, publish: the one way a stage's rows reach a zone table.

A stage stages the partition's rows in TEMP tables (`stage_rows`), computes its gates from those
staged rows (blocking check results), and hands both to `publish_if_gates_pass` with the tables
it publishes. Only when every gate passed are the partitions replaced, all in one transaction
(a failure leaves the old rows); otherwise the zone is left untouched and the log names the
failed gates (names only: a refused row may hold a number).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import duckdb

from phone_pipeline.sql import SqlValues, run
from phone_pipeline.stages.shared.assets import DerivedLineage, table_metadata
from phone_pipeline.stages.shared.checks import gates_failed_message
from phone_pipeline.warehouse import replace_partition

# Metadata an asset adds to its table's: fixed values, or read from the published tables.
ExtraMetadata = Mapping[str, object] | Callable[[duckdb.DuckDBPyConnection], Mapping[str, object]]


@dataclass(frozen=True)
class Target:
    """One zone table a stage publishes: the SELECT over its staged rows that replaces the
    partition, and the asset it materialises (None: a table written along with another target,
    whose asset reports it, such as the key periods of the pseudonymised calls)."""

    table: str
    select_sql: str
    asset_key: dg.AssetKey | None = None
    # Called only once published: deriving lineage parses SQL, and a refused run needs none.
    lineage: Callable[[], DerivedLineage] | None = None
    metadata: ExtraMetadata = field(default_factory=dict)


@dataclass(frozen=True)
class Publication:
    """What came of it: the failed gates' names (none: published) and the results to yield,
    materialisations first, then the gates, in the order the stage gave them."""

    failed_gates: list[str]
    results: list[dg.MaterializeResult | dg.AssetCheckResult]

    @property
    def published(self) -> bool:
        return not self.failed_gates


def stage_rows(
    con: duckdb.DuckDBPyConnection, selects: Mapping[str, str], values: SqlValues | None = None
) -> None:
    """Stage each SELECT's rows as a TEMP table of that name (in order: a later one may read an
    earlier one), with `values` bound to the parameters each names."""
    for name, select_sql in selects.items():
        run(con, f"CREATE OR REPLACE TEMP TABLE {name} AS {select_sql}", values)


def publish_if_gates_pass(
    con: duckdb.DuckDBPyConnection,
    log: logging.Logger,  # the run's (context.log: a DagsterLogManager is one)
    call_date: dt.date,
    gates: Sequence[dg.AssetCheckResult],
    targets: Sequence[Target],
    staged: str,
    refused: str,
    before_publish: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    values: SqlValues | None = None,
) -> Publication:
    """Replace `call_date`'s partition of every target by its SELECT, in one transaction, only
    if every gate passed; otherwise write nothing and log `Blocking gate(s) <names> failed on
    <staged>: <refused>.`

    `gates` are blocking (ERROR) results computed from the staged rows; a WARN result is a
    finding, not a gate, and is refused here. `before_publish` runs once the gates passed and
    before the partitions are replaced, in its own transaction (the privacy-budget ledger: a
    failure in between overstates a spend, never hides one). `values` are bound to the
    parameters the targets' SELECTs name.
    """
    warnings = [gate.check_name for gate in gates if gate.severity != dg.AssetCheckSeverity.ERROR]
    if warnings:
        raise ValueError(f"not blocking, so not a gate: {warnings}")
    failed = [gate.check_name for gate in gates if not gate.passed]
    if failed:
        log.error(gates_failed_message(failed, staged, refused))
        return Publication(failed, list(gates))
    if before_publish is not None:
        before_publish(con)
    replace_partition(
        con, call_date, {target.table: target.select_sql for target in targets}, values
    )
    materializations = [
        dg.MaterializeResult(
            asset_key=target.asset_key,
            metadata={
                **table_metadata(
                    con,
                    target.table,
                    call_date,
                    target.lineage() if target.lineage is not None else None,
                ),
                **(target.metadata(con) if callable(target.metadata) else target.metadata),
            },
        )
        for target in targets
        if target.asset_key is not None
    ]
    return Publication([], [*materializations, *gates])
