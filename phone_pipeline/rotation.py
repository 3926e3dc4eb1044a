"""Key rotation: re-pseudonymise published partitions made with an older key (what
`phone-pipeline rotate-keys` runs). The plan is domain/pseudonyms.py's `plan_rotation`; the work
goes through Dagster (pseudonymize and everything downstream, for each partition to rotate), so
every gate runs and the runs show in the UI. Partitions whose restricted rows are gone cannot be
re-pseudonymised: they are marked in `analytics.pseudonym_key_periods`."""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from phone_pipeline import catalog
from phone_pipeline.domain.pseudonyms import (
    Keyring,
    RotationPlan,
    build_keyring,
    check_key_file_location,
    plan_rotation,
)
from phone_pipeline.settings import SETTING, Settings
from phone_pipeline.sql import run

STALE_NOTE = "restricted rows gone: kept under key version {version}, not re-pseudonymised"


def keyring_from_environment(settings: Settings) -> Keyring:
    """The keyring as the pipeline's resource builds it, read from the same variables."""
    from phone_pipeline.resources import PROJECT_ROOT

    env = os.environ
    key, keys, key_file = (SETTING[name] for name in ("key", "versioned_keys", "key_file"))
    file_text = None
    if env.get(key_file.env):
        path = check_key_file_location(Path(env[key_file.env]), [settings.home, PROJECT_ROOT])
        file_text = path.read_text()
    return build_keyring(
        env.get(key.env) or None,
        SETTING["key_version"].read(),
        env.get(keys.env) or None,
        file_text,
        SETTING["primary_version"].read(),
    )


def published_key_versions(con: duckdb.DuckDBPyConnection) -> dict[dt.date, set[int]]:
    """Key versions by call date across every day-partitioned table of the catalog that names
    people by pseudonym, in the zone files open on `con` (the analytics file as the connection's
    own or attached as `analytics`; compliance and shareable attached under their names): a
    table added to the catalog is rotated without a list to update."""
    present = {
        (database, table)
        for database, table in con.execute(
            "SELECT database_name, table_name FROM duckdb_tables() WHERE schema_name = 'main'"
        ).fetchall()
    }
    own = con.execute("SELECT current_database()").fetchone()[0]
    versions: dict[dt.date, set[int]] = defaultdict(set)
    for entry in catalog.TABLES:
        columns = [c.name for c in entry.columns if c.people & catalog.PSEUDONYMS]
        if entry.zone == catalog.RESTRICTED or not columns or entry.partition is None:
            continue
        # The zone attached under its name, or (analytics) the connection's own file.
        candidates = [entry.zone] + ([own] if entry.zone == catalog.ANALYTICS else [])
        database = next((name for name in candidates if (name, entry.name) in present), None)
        if database is None:
            continue  # that zone's file is not open here, or holds no such table yet
        values = " UNION ALL ".join(
            f'SELECT call_date, "{column}" AS value FROM "{database}".main."{entry.name}"'
            for column in columns
        )
        for day, version in con.execute(
            f"""
            SELECT DISTINCT call_date, CAST(regexp_extract(value, '^v([0-9]+):', 1) AS INTEGER)
            FROM ({values}) WHERE value IS NOT NULL
            """
        ).fetchall():
            versions[day].add(version)
    return dict(versions)


def plan_for(settings: Settings, primary_version: int) -> RotationPlan:
    if not settings.analytics_db.exists():
        return RotationPlan(primary_version, [], [], [])
    with duckdb.connect(str(settings.analytics_db), read_only=True) as published:
        for zone, path in (("compliance", settings.compliance_db),
                           ("shareable", settings.shareable_db)):  # fmt: skip
            if path.exists():
                run(published, f"ATTACH $path AS {zone} (READ_ONLY)", {"path": str(path)})
        versions = published_key_versions(published)
    restricted_rows: dict[dt.date, int] = {}
    if settings.restricted_db.exists():
        with duckdb.connect(str(settings.restricted_db), read_only=True) as restricted:
            restricted_rows = dict(
                restricted.execute(
                    "SELECT call_date, count(*) FROM consented_calls GROUP BY 1"
                ).fetchall()
            )
    return plan_rotation(versions, restricted_rows, primary_version)


def rotation_selection() -> dg.AssetSelection:
    """What a rotation re-runs, derived from the asset graph: the day-partitioned assets outside
    the restricted zone that make pseudonyms (they need the key: analytics' calls_pseudonymized,
    the compliance tables) and everything downstream of them (aggregates, the risk measure, the
    shareable copies, row accounting, the record of processing). The restricted stages are left
    as they are: their rows hold numbers, not pseudonyms."""
    from phone_pipeline.definitions import defs

    makers = [
        spec.key
        for assets_def in defs.resolve_asset_graph().assets_defs
        if "pseudonym_key" in assets_def.required_resource_keys
        for spec in assets_def.specs
        if spec.partitions_def is not None and spec.tags.get("zone") != "restricted"
    ]
    return dg.AssetSelection.assets(*makers).downstream()


def rotate_keys(
    settings: Settings,
    instance: dg.DagsterInstance,
    resources: dict[str, Any] | None = None,
    run_config: dict[str, Any] | None = None,
) -> tuple[RotationPlan, list[str]]:
    """Re-pseudonymise every partition of the plan through Dagster, mark the stale ones.
    Returns the plan and the partitions whose run failed."""
    from phone_pipeline.definitions import defs
    from phone_pipeline.resources import build_resources

    plan = plan_for(settings, keyring_from_environment(settings).primary_version)
    selection = rotation_selection()
    failed = []
    for day in plan.rerun:
        result = dg.materialize(
            list(defs.assets or []),
            selection=selection,
            partition_key=day.isoformat(),
            instance=instance,
            resources=resources or build_resources(settings),
            run_config=run_config,
            tags={"phone_pipeline/trigger": "rotate_keys"},
            raise_on_error=False,
        )
        if not result.success:
            failed.append(day.isoformat())
    if plan.stale:
        from phone_pipeline.warehouse import ANALYTICS_TABLES, ensure_tables

        with duckdb.connect(str(settings.analytics_db)) as analytics:
            ensure_tables(analytics, None, ANALYTICS_TABLES)
            versions = published_key_versions(analytics)
            for day in plan.stale:
                rows = analytics.execute(
                    "SELECT count(*) FROM calls_pseudonymized WHERE call_date = ?", [day]
                ).fetchone()[0]
                old = min(versions.get(day, {0}))
                analytics.execute("DELETE FROM pseudonym_key_periods WHERE call_date = ?", [day])
                analytics.execute(
                    "INSERT INTO pseudonym_key_periods VALUES (?, ?, ?, ?, now())",
                    [day, old, rows, STALE_NOTE.format(version=old)],
                )
    return plan, failed
