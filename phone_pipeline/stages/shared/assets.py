"""What every stage asset shares: its connection to the zones and the metadata it attaches."""

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from phone_pipeline import catalog
from phone_pipeline.automation.partitions import daily_partitions
from phone_pipeline.catalog import column_descriptions
from phone_pipeline.domain.markdown import markdown_table
from phone_pipeline.lineage import Computed, derive_lineage
from phone_pipeline.warehouse import (
    ANALYTICS,
    COMPLIANCE,
    SHAREABLE,
    attach_zone,
    partition_count,
    prepare_restricted,
    table_columns,
    when_unlocked,
)

OWNERS = ["team:privacy-engineering"]
RESTRICTED_GROUP = "restricted_zone"
ANALYTICS_GROUP = "analytics_zone"
# Every asset touching the DuckDB files shares one pool (limit 1 in dagster.yaml): DuckDB allows
# one writer per file, so runs started together queue instead of failing on the lock.
DUCKDB_POOL = "duckdb"

ColumnSources = Mapping[str, Sequence[tuple[dg.AssetKey, str]]]
COMPLIANCE_GROUP = "compliance_zone"
SHAREABLE_GROUP = "shareable_zone"
_GROUPS = {
    "restricted": RESTRICTED_GROUP,
    "analytics": ANALYTICS_GROUP,
    "compliance": COMPLIANCE_GROUP,
    "shareable": SHAREABLE_GROUP,
}


def zone_attributes(
    zone: str, stage: str, kinds: tuple[str, ...] = ("duckdb", "pandas")
) -> dict[str, object]:
    """What the UI shows of an asset's place: its zone (group and tag), stage, owners, kinds."""
    return {
        "group_name": _GROUPS[zone],
        "owners": OWNERS,
        "kinds": set(kinds),
        "tags": {"zone": zone, "stage": stage},
    }


def partitioned_table_spec(
    key: dg.AssetKey, deps: Sequence[dg.AssetKey], description: str, zone: str, stage: str
) -> dg.AssetSpec:
    """One table of a multi-asset stage, daily-partitioned, skipped when its gate fails."""
    return dg.AssetSpec(
        key,
        deps=deps,
        description=description,
        partitions_def=daily_partitions,
        skippable=True,
        **zone_attributes(zone, stage),
    )


@contextmanager
def restricted_connection(restricted: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    Path(restricted.database).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        con = when_unlocked(lambda: stack.enter_context(restricted.get_connection()))
        # DuckDBResource closes its connection only when the block ends without an error: a step
        # that fails (a refusal, a failed gate) would keep the file open in this process until
        # garbage collection, and the next connection with other settings is refused.
        try:
            prepare_restricted(con)
            yield con
        finally:
            con.close()


@contextmanager
def zones_connection(
    restricted: DuckDBResource,
    analytics: DuckDBResource | None = None,
    compliance: DuckDBResource | None = None,
    shareable: DuckDBResource | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The restricted file with the other zones given attached under their names."""
    with restricted_connection(restricted) as con:
        for zone, resource in ((ANALYTICS, analytics), (COMPLIANCE, compliance),
                               (SHAREABLE, shareable)):  # fmt: skip
            if resource is not None:
                attach_zone(con, zone, resource.database)
        yield con


@dataclass(frozen=True)
class DerivedLineage:
    """Column lineage read from the SQL that filled a table (`sql_lineage`), never written by hand."""

    deps_by_column: ColumnSources
    # Columns the SQL computes from no column (a constant, now(), a bound value, a fixed
    # domain): nothing to draw, but derived, not missing.
    no_source: frozenset[str] = frozenset()


def table_of(key: dg.AssetKey) -> str:
    """The table an asset key names, as the stage's SQL writes it on a restricted connection."""
    return catalog.table(*key.path).qualified


def sql_lineage(
    select_sql: str,
    deps: Sequence[dg.AssetKey],
    staged: Mapping[str, str] | None = None,
    computed: Mapping[str, Computed] | None = None,
    other_tables: Mapping[str, dg.AssetKey] | None = None,
) -> DerivedLineage:
    """Lineage of the table `select_sql` fills (pass the very string the stage runs).

    `deps`: the assets whose tables it reads (a table it reads and no dep names is an error, so
    the graph's dependencies and the SQL cannot disagree); `staged`: temp tables -> the SELECT
    that filled them; `computed`: tables filled in Python -> their columns' inputs;
    `other_tables`: tables a dep's asset writes besides its own (say, ingest's landing_files).
    """
    assets = {table_of(key): key for key in deps}
    derived = derive_lineage(select_sql, {**assets, **(other_tables or {})}, staged, computed)
    return DerivedLineage(
        {column: sources for column, sources in derived.items() if sources},
        frozenset(column for column, sources in derived.items() if not sources),
    )


def column_lineage(lineage: DerivedLineage) -> dg.TableColumnLineage:
    return dg.TableColumnLineage(
        deps_by_column={
            column: [dg.TableColumnDep(asset_key=key, column_name=name) for key, name in deps]
            for column, deps in lineage.deps_by_column.items()
        }
    )


def table_metadata(
    con: duckdb.DuckDBPyConnection,
    table: str,
    call_date: dt.date | None,
    lineage: DerivedLineage | None = None,
) -> dict[str, object]:
    """Schema (with each column's description from the catalog), row counts and column
    lineage of a table: what Dagster draws lineage from."""
    descriptions = column_descriptions(table)
    if lineage is not None and not isinstance(lineage, DerivedLineage):
        raise TypeError("column lineage comes from the stage's SQL (sql_lineage), not a dict")
    metadata: dict[str, object] = {
        "dagster/table_name": table,
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name=name, type=kind, description=descriptions.get(name))
                for name, kind in table_columns(con, table)
            ]
        ),
        "dagster/row_count": con.execute(f"SELECT count(*) FROM {table}").fetchone()[0],
    }
    if call_date is not None:
        metadata["dagster/partition_row_count"] = partition_count(con, table, call_date)
    if lineage is not None:
        metadata["dagster/column_lineage"] = column_lineage(lineage)
    return metadata


def counts_table(counts: Mapping[str, int], label: str = "reason") -> dg.MarkdownMetadataValue:
    """Counts (never values) as a small Markdown table for the UI."""
    rows: list[list[object]] = [[key, value] for key, value in sorted(counts.items())]
    return dg.MetadataValue.md(
        markdown_table([label, "rows"], ["---", "---:"], rows or [["(none)", 0]])
    )
