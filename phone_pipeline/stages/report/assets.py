"""The privacy report: regenerated at the end of every run from the evidence tables the stages
write (counts and aggregates only), shown in the UI as Markdown with its plots and written as one
self-contained HTML file, `<data home>/records/privacy_report.html`."""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from phone_pipeline import catalog
from phone_pipeline.domain.privacy_report import (
    WINDOW_DAYS,
    ReportInputs,
    build_report,
    cells_sql,
    render_html,
    render_markdown,
    report_window,
)
from phone_pipeline.resources import PipelineConfig
from phone_pipeline.sql import run, statement
from phone_pipeline.stages.retention.assets import LAST_STAGES, PARTITION_RETENTION
from phone_pipeline.stages.shared.assets import DUCKDB_POOL, OWNERS, zones_connection

PRIVACY_REPORT = dg.AssetKey(["governance", "privacy_report"])
REPORT_FILE = "privacy_report.html"

# The statements the report runs (sql/<name>.sql), by the input they fill.
STATEMENTS = {
    "accounting": statement(__file__, "accounting"),
    "risk": statement(__file__, "risk"),
    "publications": statement(__file__, "publications"),
    "erasures": statement(__file__, "erasures"),
    "sweeps": statement(__file__, "sweeps"),
    "budget": statement(__file__, "budget"),
    "contact": statement(__file__, "contact"),
    "fairness": statement(__file__, "fairness"),
    "cells": cells_sql([(table.name, table.qualified) for table in catalog.AGGREGATES]),
}
LATEST_DAY = statement(__file__, "latest_day")


def report_inputs(
    con, config: PipelineConfig, generated_at: dt.datetime, window_days: int = WINDOW_DAYS
) -> ReportInputs:
    """Everything the report shows, read on a restricted connection with the analytics and
    compliance zones attached."""
    latest = con.execute(LATEST_DAY).fetchone()[0]
    window = report_window(latest, window_days)
    first_day, last_day = window or (generated_at.date(), generated_at.date())
    values = {
        "first_day": first_day,
        "last_day": last_day,
        "since": generated_at - dt.timedelta(days=window_days),
    }
    frames: dict[str, pd.DataFrame] = {
        name: run(con, sql, values).df() for name, sql in STATEMENTS.items()
    }
    return ReportInputs(
        generated_at=generated_at,
        first_day=window[0] if window else None,
        last_day=window[1] if window else None,
        limits=config.risk_limits,
        min_cell_size=config.min_cell_size,
        **frames,
    )


@dg.asset(
    key=PRIVACY_REPORT,
    # After every stage it reports on and the partition's own retention sweep: a run's report
    # includes that run's day.
    deps=[*LAST_STAGES, PARTITION_RETENTION],
    group_name="governance",
    owners=OWNERS,
    kinds={"html", "matplotlib"},
    tags={"stage": "report"},
    pool=DUCKDB_POOL,
    description=(
        "The privacy report for the data protection officer, regenerated on every run: per day "
        f"and over the last {WINDOW_DAYS} days, consent coverage and exclusions, quarantine, the "
        "row flow from received to published, small-cell suppression, re-identification risk "
        "against its limits, shareable decisions, erasure requests, retention sweeps, the "
        "differential privacy budget, contact findings and fairness flags. Counts and "
        f"aggregates only. Also written to `records/{REPORT_FILE}` in the data home (one "
        "self-contained HTML file)."
    ),
)
def privacy_report(
    restricted_warehouse: DuckDBResource,
    analytics_warehouse: DuckDBResource,
    compliance_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    with zones_connection(restricted_warehouse, analytics_warehouse, compliance_warehouse) as con:
        inputs = report_inputs(con, pipeline_config, dt.datetime.now(dt.UTC))
    read_seconds = time.perf_counter() - started
    document = build_report(inputs)
    page = render_html(document)
    path = Path(pipeline_config.data_home) / "records" / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(page, encoding="utf-8")
    partial.replace(path)  # readers never see half a report
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(render_markdown(document)),
            "path": dg.MetadataValue.path(str(path)),
            "first_day": str(inputs.first_day or ""),
            "last_day": str(inputs.last_day or ""),
            "figures": len(document.figures),
            "read_seconds": round(read_seconds, 3),
            "build_seconds": round(time.perf_counter() - started, 3),
        }
    )
