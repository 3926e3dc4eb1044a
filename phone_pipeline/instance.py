"""The Dagster instance of a data home: a persistent DAGSTER_HOME with its dagster.yaml.

Without a persistent home `dagster dev` uses a temporary one and forgets sensor cursors (which
files it has seen) and run history when it stops.
"""

from __future__ import annotations

import fcntl
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
# The daemon of `phone-pipeline ui` watches runs: it frees the pool slots a finished run still
# holds (a run marked failed after its process was killed, see README "A crashed or killed run")
# and fails runs stuck starting or canceling. The default run launcher cannot resume a run.
run_monitoring:
  enabled: true
  max_resume_run_attempts: 0
  poll_interval_seconds: 15
  free_slots_after_run_end_seconds: 5
"""

LOCK_FILE = ".instance.lock"


def ensure_dagster_home(path: Path) -> Path:
    """Create the instance folder with our dagster.yaml (kept if present) and its storage, and
    export DAGSTER_HOME.

    The storage (SQLite run, event log and schedule databases) is created here under an exclusive
    file lock: two processes opening a new home at the same moment would otherwise both try to
    create the tables, and the second failed with "table runs already exists".
    """
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        config = path / "dagster.yaml"
        if not config.exists():
            part = config.with_name(f".dagster.yaml.{os.getpid()}.part")
            part.write_text(DAGSTER_YAML)
            part.replace(config)
        _create_storage(path)
    os.environ["DAGSTER_HOME"] = str(path)
    return path


def _create_storage(path: Path) -> None:
    """Open the instance once, which creates (or migrates) its databases."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(path)) as instance:
        # Each storage is built on first use: touch all three.
        instance.get_runs(limit=1)
        instance.event_log_storage.get_concurrency_keys()
        instance.all_instigator_state()
