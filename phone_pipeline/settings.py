"""Every setting read from the environment, with its default, in one place.

Secrets are not here: the pseudonym key is read by its resource through `dg.EnvVar`, so it never
sits in a config object that could be printed.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    home: Path
    default_region: str
    min_cell_size: int
    max_quarantine_share: float
    max_call_seconds: int
    partitions_start_date: str
    sensor_interval_seconds: int
    settle_seconds: float
    duckdb_memory_limit: str
    # Named in the record of processing (the organisation responsible for the processing).
    controller: str = ""
    # Retention in days per zone (0 = kept forever); see domain/retention.py.
    retention_restricted_days: int = 90
    retention_pseudonymized_days: int = 396
    retention_aggregates_days: int = 0
    # Re-identification risk gate of the shareable zone (see domain/risk.py); None: min_cell_size.
    risk_k: int | None = None
    max_share_below_k: float = 0.0
    max_unicity: float = 0.05
    unicity_sample_size: int = 10_000
    # Responsible contact (compliance zone): frequency caps, permitted local window, abandonment.
    max_calls_24h: int = 3
    max_calls_7d: int = 7
    permitted_window: str = "08:00-21:00"
    max_abandonment_rate: float = 0.03
    # Fairness report: a group is flagged at this ratio to the rest, from this many rows.
    fairness_ratio: float = 2.0
    fairness_min_group_rows: int = 50
    # Differential privacy of published aggregates; see domain/privacy.py.
    dp_outputs: str = ""
    dp_epsilon: float = 1.0
    dp_budget_per_day: float = 4.0
    dp_max_calls_per_cell: int = 3
    dp_max_cells_per_subscriber: int = 4
    dp_max_duration_seconds: int = 600

    @property
    def landing_calls(self) -> Path:
        return self.home / "landing" / "calls"

    @property
    def landing_consent(self) -> Path:
        return self.home / "landing" / "consent"

    @property
    def landing_dnc(self) -> Path:
        return self.home / "landing" / "dnc"

    @property
    def cells_file(self) -> Path:
        return self.home / "landing" / "cells.csv"

    @property
    def restricted_db(self) -> Path:
        return self.home / "warehouse" / "restricted.duckdb"

    @property
    def analytics_db(self) -> Path:
        return self.home / "warehouse" / "analytics.duckdb"

    @property
    def compliance_db(self) -> Path:
        return self.home / "warehouse" / "compliance.duckdb"

    @property
    def shareable_db(self) -> Path:
        return self.home / "warehouse" / "shareable.duckdb"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster_home")

    def ensure_folders(self) -> None:
        for folder in (self.landing_calls, self.landing_consent, self.restricted_db.parent):
            folder.mkdir(parents=True, exist_ok=True)


def load_settings() -> Settings:
    start = _env("PHONE_PIPELINE_START_DATE", "2024-01-01")
    dt.date.fromisoformat(start)  # fail early on a malformed date
    return Settings(
        home=Path(_env("PHONE_PIPELINE_HOME", "data")).resolve(),
        default_region=_env("PHONE_PIPELINE_DEFAULT_REGION", "US").upper(),
        min_cell_size=int(_env("PHONE_PIPELINE_MIN_CELL_SIZE", "5")),
        max_quarantine_share=float(_env("PHONE_PIPELINE_MAX_QUARANTINE_SHARE", "0.2")),
        max_call_seconds=int(_env("PHONE_PIPELINE_MAX_CALL_SECONDS", "86400")),
        partitions_start_date=start,
        sensor_interval_seconds=int(_env("PHONE_PIPELINE_SENSOR_INTERVAL_SECONDS", "30")),
        settle_seconds=float(_env("PHONE_PIPELINE_SETTLE_SECONDS", "5")),
        # DuckDB's default takes 80% of RAM; bounded, it spills to disk instead.
        duckdb_memory_limit=_env("PHONE_PIPELINE_DUCKDB_MEMORY_LIMIT", "2GB"),
        controller=_env("PHONE_PIPELINE_CONTROLLER", ""),
        retention_restricted_days=int(_env("PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS", "90")),
        retention_pseudonymized_days=int(
            _env("PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS", "396")
        ),
        retention_aggregates_days=int(_env("PHONE_PIPELINE_RETENTION_AGGREGATES_DAYS", "0")),
        risk_k=int(_env("PHONE_PIPELINE_RISK_K", "0")) or None,
        max_share_below_k=float(_env("PHONE_PIPELINE_MAX_SHARE_BELOW_K", "0")),
        max_unicity=float(_env("PHONE_PIPELINE_MAX_UNICITY", "0.05")),
        unicity_sample_size=int(_env("PHONE_PIPELINE_UNICITY_SAMPLE_SIZE", "10000")),
        max_calls_24h=int(_env("PHONE_PIPELINE_MAX_CALLS_24H", "3")),
        max_calls_7d=int(_env("PHONE_PIPELINE_MAX_CALLS_7D", "7")),
        permitted_window=_env("PHONE_PIPELINE_PERMITTED_CALL_WINDOW", "08:00-21:00"),
        max_abandonment_rate=float(_env("PHONE_PIPELINE_MAX_ABANDONMENT_RATE", "0.03")),
        fairness_ratio=float(_env("PHONE_PIPELINE_FAIRNESS_RATIO", "2.0")),
        fairness_min_group_rows=int(_env("PHONE_PIPELINE_FAIRNESS_MIN_GROUP_ROWS", "50")),
        dp_outputs=_env("PHONE_PIPELINE_DP_OUTPUTS", ""),
        dp_epsilon=float(_env("PHONE_PIPELINE_DP_EPSILON", "1.0")),
        dp_budget_per_day=float(_env("PHONE_PIPELINE_DP_BUDGET_PER_DAY", "4.0")),
        dp_max_calls_per_cell=int(_env("PHONE_PIPELINE_DP_MAX_CALLS_PER_CELL", "3")),
        dp_max_cells_per_subscriber=int(_env("PHONE_PIPELINE_DP_MAX_CELLS_PER_SUBSCRIBER", "4")),
        dp_max_duration_seconds=int(_env("PHONE_PIPELINE_DP_MAX_DURATION_SECONDS", "600")),
    )
