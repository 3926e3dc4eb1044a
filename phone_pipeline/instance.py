"""The Dagster instance of a data home: a persistent DAGSTER_HOME with its dagster.yaml.

Without a persistent home `dagster dev` uses a temporary one and forgets sensor cursors (which
files it has seen) and run history when it stops.
"""

from __future__ import annotations

import os
from pathlib import Path

DAGSTER_YAML = """\
# Written by phone-pipeline for this data home; edit freely, it is not overwritten.
telemetry:
  enabled: false
concurrency:
  # Every asset touching the DuckDB files is in the pool "duckdb": one step at a time across runs,
  # because DuckDB allows one writer per file. Runs started together (sensor, backfill, schedule)
  # queue for the pool instead of failing on the file lock.
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 4
"""


def ensure_dagster_home(path: Path) -> Path:
    """Create the instance folder with our dagster.yaml (kept if present) and export DAGSTER_HOME."""
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(path)
    return path
