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

from phone_pipeline.domain.pseudonyms import (
    Keyring,
    RotationPlan,
    build_keyring,
    check_key_file_location,
    plan_rotation,
)
from phone_pipeline.settings import SETTING, Settings

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
    """Key versions by call date across every table that names people by pseudonym (columns
    `*_pseudonym` of a table with `call_date`) in the databases open on `con`: found in the
    warehouse itself, so that a table added later is rotated without a list to update."""
    tables = con.execute(
        r"""
        SELECT table_catalog, table_name, list(column_name ORDER BY column_name)
                   FILTER (WHERE column_name LIKE '%\_pseudonym' ESCAPE '\')
        FROM information_schema.columns
        WHERE table_schema = 'main'
        GROUP BY ALL
        HAVING bool_or(column_name = 'call_date')
           AND count(*) FILTER (WHERE column_name LIKE '%\_pseudonym' ESCAPE '\') > 0
        """
    ).fetchall()
    versions: dict[dt.date, set[int]] = defaultdict(set)
    for catalog, table, columns in tables:
        values = " UNION ALL ".join(
            f'SELECT call_date, "{column}" AS value FROM "{catalog}".main."{table}"'
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
                published.execute(f"ATTACH '{path}' AS {zone} (READ_ONLY)")
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
