"""The one Definitions object of phone_pipeline."""

from __future__ import annotations

import dagster as dg

import phone_pipeline.dagster_fixes  # noqa: F401  (applied on import: see its docstring)
from phone_pipeline import stages
from phone_pipeline.automation.jobs import (
    call_pipeline_job,
    record_of_processing_job,
    retention_sweep_job,
)
from phone_pipeline.automation.run_recovery import dead_run_reaper, guarded_in_process_executor
from phone_pipeline.automation.schedules import daily_reprocess_schedule, daily_retention_schedule
from phone_pipeline.automation.sensors import (
    landing_calls_sensor,
    privacy_rerun_sensor,
    record_after_failed_run,
)
from phone_pipeline.resources import build_resources
from phone_pipeline.settings import load_settings

defs = dg.Definitions(
    # Every asset of every stage folder: a new stage is picked up without a list to keep.
    assets=dg.load_assets_from_package_module(stages),
    jobs=[call_pipeline_job, record_of_processing_job, retention_sweep_job],
    sensors=[landing_calls_sensor, privacy_rerun_sensor, record_after_failed_run, dead_run_reaper],
    schedules=[daily_reprocess_schedule, daily_retention_schedule],
    resources=build_resources(load_settings()),
    # Steps run one after another in the run's process: faster to start than a process per step,
    # and DuckDB allows one writer per file anyway. Guarded: the run records its process, reaps
    # dead runs holding the DuckDB pool and says whom it waits for (run_recovery.py).
    executor=guarded_in_process_executor,
)
