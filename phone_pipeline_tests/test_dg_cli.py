"""Dagster's `dg` CLI on this project, for real: `dg check defs` and `dg launch` as subprocesses in
the project root (pyproject.toml's `[tool.dg]`). `dg dev` is started by `phone-pipeline ui`
(test_ui_signals.py).

Every call gets its own data home and DAGSTER_HOME in a temporary folder, the settings of
test_cli.py, and a timeout; every assertion message carries the call's output.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from phone_pipeline.instance import ensure_dagster_home
from phone_pipeline_synthetic import generate
from phone_pipeline_tests.conftest import TEST_KEY
from phone_pipeline_tests.pipeline_support import count, numbers_found, read_text_csv
from phone_pipeline_tests.test_cli import cli_env

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DG = Path(sys.executable).with_name("dg")
DAY = dt.date(2026, 11, 1)
ASSET = "restricted/raw_calls"  # the first stage: cheap, and it reads the landing files
TIMEOUT = 180


def _dg(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert DG.exists(), f"{DG} missing: dagster-dg-cli is a dependency (bash scripts/setup.sh)"
    return subprocess.run(
        [str(DG), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _describe(completed: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{' '.join(completed.args)} exited {completed.returncode}\n"
        f"--- stdout ---\n{completed.stdout[-5000:]}\n--- stderr ---\n{completed.stderr[-5000:]}"
    )


def _env(tmp_path: Path, key: str | None = None) -> tuple[dict[str, str], Path]:
    dagster_home = tmp_path / "dagster_home"
    env = cli_env(tmp_path / "data", key, {"DAGSTER_HOME": str(dagster_home)})
    return env, dagster_home


def test_dg_check_defs_loads_the_project_definitions(tmp_path: Path) -> None:
    env, dagster_home = _env(tmp_path)
    ensure_dagster_home(dagster_home)
    completed = _dg(["check", "defs"], env)
    assert completed.returncode == 0, _describe(completed)
    assert "All definitions loaded successfully" in completed.stdout + completed.stderr, _describe(
        completed
    )


def test_dg_launch_materialises_one_asset_partition(tmp_path: Path) -> None:
    home = tmp_path / "data"
    summary = generate(home, rows=200, days=1, seed=5, start_date=DAY)
    [call_file] = summary.call_files
    env, dagster_home = _env(tmp_path, TEST_KEY)
    ensure_dagster_home(dagster_home)

    completed = _dg(["launch", "--assets", ASSET, "--partition", DAY.isoformat()], env)
    assert completed.returncode == 0, _describe(completed)

    # The run is in the instance, and the asset's partition is materialised from the landing file:
    # one raw row per input row.
    key = dg.AssetKey(ASSET.split("/"))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        event = instance.get_latest_materialization_event(key)
        assert event is not None, _describe(completed)
        assert event.dagster_event.partition == DAY.isoformat()
        run = instance.get_run_by_id(event.run_id)
        assert run is not None and run.is_success, _describe(completed)
    input_rows = len(read_text_csv(call_file))
    with duckdb.connect(str(home / "warehouse" / "restricted.duckdb"), read_only=True) as con:
        rows = count(con, "SELECT count(*) FROM raw_calls WHERE call_date = ?", [DAY])
    assert rows == input_rows, _describe(completed)

    # Dagster's console log of the run names no raw number of the input.
    frame = read_text_csv(call_file)
    numbers = {
        number
        for number in set(frame["caller_number"]) | set(frame["callee_number"])
        if sum(char.isdigit() for char in number) >= 7
    }
    assert numbers
    assert not numbers_found(numbers, [completed.stdout, completed.stderr])
