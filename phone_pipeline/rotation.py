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
from phone_pipeline.settings import Settings

STALE_NOTE = "restricted rows gone: kept under key version {version}, not re-pseudonymised"


def keyring_from_environment(settings: Settings) -> Keyring:
    """The keyring as the pipeline's resource builds it, read from the same variables."""
    from phone_pipeline.resources import PROJECT_ROOT

    env = os.environ
    file_text = None
    if env.get("PHONE_PIPELINE_PSEUDONYM_KEY_FILE"):
        path = check_key_file_location(
            Path(env["PHONE_PIPELINE_PSEUDONYM_KEY_FILE"]), [settings.home, PROJECT_ROOT]
        )
        file_text = path.read_text()
    return build_keyring(
        env.get("PHONE_PIPELINE_PSEUDONYM_KEY") or None,
        int(env.get("PHONE_PIPELINE_PSEUDONYM_KEY_VERSION") or 1),
        env.get("PHONE_PIPELINE_PSEUDONYM_KEYS") or None,
        file_text,
        int(env.get("PHONE_PIPELINE_PSEUDONYM_PRIMARY_VERSION") or 0),
    )


def published_key_versions(analytics: duckdb.DuckDBPyConnection) -> dict[dt.date, set[int]]:
    versions: dict[dt.date, set[int]] = defaultdict(set)
    for day, version in analytics.execute(
        """
        SELECT DISTINCT call_date,
               CAST(regexp_extract(value, '^v([0-9]+):', 1) AS INTEGER)
        FROM (SELECT call_date, unnest([caller_pseudonym, callee_pseudonym]) AS value
              FROM calls_pseudonymized)
        WHERE value IS NOT NULL
        """
    ).fetchall():
        versions[day].add(version)
    return dict(versions)


def plan_for(settings: Settings, primary_version: int) -> RotationPlan:
    if not settings.analytics_db.exists():
        return RotationPlan(primary_version, [], [], [])
    with duckdb.connect(str(settings.analytics_db), read_only=True) as analytics:
        versions = published_key_versions(analytics)
    restricted_rows: dict[dt.date, int] = {}
    if settings.restricted_db.exists():
        with duckdb.connect(str(settings.restricted_db), read_only=True) as restricted:
            restricted_rows = dict(
                restricted.execute(
                    "SELECT call_date, count(*) FROM consented_calls GROUP BY 1"
                ).fetchall()
            )
    return plan_rotation(versions, restricted_rows, primary_version)


def rotate_keys(
    settings: Settings,
    instance: dg.DagsterInstance,
    resources: dict[str, Any] | None = None,
    run_config: dict[str, Any] | None = None,
) -> tuple[RotationPlan, list[str]]:
    """Re-pseudonymise every partition of the plan through Dagster, mark the stale ones.
    Returns the plan and the partitions whose run failed."""
    from phone_pipeline.checks.accounting import ROW_ACCOUNTING
    from phone_pipeline.checks.aggregate import CALL_VOLUME_BY_COUNTRY, CALL_VOLUME_HOURLY
    from phone_pipeline.checks.pseudonymize import CALLS_PSEUDONYMIZED
    from phone_pipeline.definitions import defs
    from phone_pipeline.resources import build_resources

    plan = plan_for(settings, keyring_from_environment(settings).primary_version)
    # Only pseudonymize and what depends on it: the restricted stages are left as they are.
    selection = [CALLS_PSEUDONYMIZED, CALL_VOLUME_HOURLY, CALL_VOLUME_BY_COUNTRY, ROW_ACCOUNTING]
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
