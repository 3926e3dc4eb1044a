"""End to end under the real `dagster dev`: webserver, daemon, sensor, run queue and pools.

One `dagster dev` serves the module: a file dropped in landing/calls must be picked up by the
`landing_calls_sensor` and processed by a run the daemon starts, and a run launched through GraphQL
(what the UI's launchpad does) must succeed for another day. Every wait is bounded; the server's
whole process group is stopped at teardown and checked to be gone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from phone_pipeline.instance import ensure_dagster_home
from phone_pipeline_synthetic import generate
from phone_pipeline_tests.conftest import TEST_KEY
from phone_pipeline_tests.pipeline_support import wait_for

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCATION = "phone_pipeline"
REPOSITORY = "__repository__"
JOB = "call_pipeline"
SENSOR = "landing_calls_sensor"
START_DATE = "2026-10-01"
SEED = 11  # both days share it, so their calls come from the same subscribers (and consent file)
SENSOR_DAY = dt.date(2026, 10, 5)
UI_DAY = dt.date(2026, 10, 6)
ROWS = 1_500

STARTUP_TIMEOUT = 90.0
SENSOR_RUN_TIMEOUT = 240.0
UI_RUNS_TIMEOUT = 150.0  # both runs of the second day, one after the other
POLL_SECONDS = 1.0
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 50) {
    __typename
    ... on Runs { results { runId status jobName tags { key value } } }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      eventConnection(limit: 1000) {
        events {
          __typename
          ... on MessageEvent { message level stepKey eventType }
          ... on ExecutionStepFailureEvent {
            error { message causes { className message stack } }
          }
          ... on RunFailureEvent { error { message } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""

STEP_STATS_QUERY = """
query StepStats($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { stepStats { stepKey status startTime endTime } }
    ... on PythonError { message }
  }
}
"""

SENSOR_TICKS_QUERY = """
query SensorTicks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: 10) { status timestamp skipReason runIds error { message } }
      }
    }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

SCHEDULES_QUERY = """
query Schedules($selector: RepositorySelector!) {
  schedulesOrError(repositorySelector: $selector) {
    __typename
    ... on Schedules { results { name scheduleState { id status } } }
    ... on PythonError { message }
  }
}
"""

STOP_SCHEDULE_MUTATION = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}
"""


@dataclass
class DevServer:
    port: int
    home: Path
    dagster_home: Path
    log_path: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.loads(response.read())
        assert not payload.get("errors"), f"GraphQL errors: {payload['errors']}"
        return payload["data"]

    def runs(self, tags: dict[str, str]) -> list[dict[str, Any]]:
        run_filter = {"tags": [{"key": key, "value": value} for key, value in tags.items()]}
        result = self.graphql(RUNS_QUERY, {"filter": run_filter})["runsOrError"]
        assert result["__typename"] == "Runs", f"runsOrError failed: {result}"
        return result["results"]

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def run_diagnosis(self, run_id: str) -> str:
        """The run's warnings, errors and step failures, for an assertion message."""
        try:
            result = self.graphql(RUN_EVENTS_QUERY, {"runId": run_id})["runOrError"]
        except (OSError, AssertionError) as error:
            return f"(could not read the event log of {run_id}: {error})"
        if result["__typename"] != "Run":
            return f"(run {run_id}: {result})"
        lines = [f"run {run_id} status {result['status']}:"]
        for event in result["eventConnection"]["events"]:
            error = event.get("error") or {}
            if event.get("level") in ("WARNING", "ERROR", "CRITICAL") or error:
                lines.append(
                    f"  [{event.get('level')}] {event.get('stepKey') or '-'} "
                    f"{event.get('eventType')}: {event.get('message')}"
                )
                for cause in error.get("causes") or []:  # the exception raised in our code
                    stack = "".join(cause.get("stack") or [])[-1500:]
                    lines.append(f"    caused by {cause['className']}: {cause['message']}\n{stack}")
        return "\n".join(lines)

    def sensor_diagnosis(self) -> str:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "sensorName": SENSOR,
        }
        try:
            result = self.graphql(SENSOR_TICKS_QUERY, {"selector": selector})["sensorOrError"]
        except (OSError, AssertionError) as error:
            return f"(could not read the sensor's ticks: {error})"
        return json.dumps(result, indent=1)[:4000]

    def explain(self, run_ids: Sequence[str] = ()) -> str:
        parts = [self.run_diagnosis(run_id) for run_id in run_ids]
        parts += [
            f"sensor ticks: {self.sensor_diagnosis()}",
            f"dagster dev log:\n{self.log_tail()}",
        ]
        return "\n\n".join(parts)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dagster_executable() -> str:
    candidate = Path(sys.executable).with_name("dagster")
    return str(candidate) if candidate.exists() else "/tmp/venv/bin/dagster"


def _reset_signals() -> None:
    # A server started from a background shell inherits ignored SIGINT/SIGTERM: restore them so
    # that the teardown's signals reach Dagster's own shutdown handling.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of a process group, as 'pid command'."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # Fields after the command name "(...)": state, ppid, pgrp, ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(f"{entry.name} {cmdline.strip()[:120]}")
    return members


def _stop_group(process: subprocess.Popen) -> list[str]:
    """SIGINT (Dagster's graceful stop), then SIGTERM, then SIGKILL to the whole process group;
    returns whatever is still alive afterwards (should be nothing)."""
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    for sig, grace in ((signal.SIGINT, 15.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if not _group_members(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if process.poll() is not None and not _group_members(pgid):
                break
            time.sleep(0.2)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    return _group_members(pgid)


def _server_answers(server: DevServer) -> bool:
    assert server.process.poll() is None, (
        f"dagster dev exited with code {server.process.returncode}:\n{server.log_tail()}"
    )
    try:
        with urllib.request.urlopen(f"{server.url}/server_info", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    root = tmp_path_factory.mktemp("dagster_dev")
    home = root / "data"
    log_path = root / "dagster_dev.log"
    with pytest.MonkeyPatch.context() as patch:
        # ensure_dagster_home exports DAGSTER_HOME; keep that out of the other tests.
        patch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        dagster_home = ensure_dagster_home(root / "dagster_home")
    (home / "landing" / "calls").mkdir(parents=True)
    (home / "landing" / "consent").mkdir(parents=True)

    env = {key: value for key, value in os.environ.items() if not key.startswith("PHONE_PIPELINE_")}
    env.update(
        PHONE_PIPELINE_HOME=str(home),
        DAGSTER_HOME=str(dagster_home),
        PHONE_PIPELINE_PSEUDONYM_KEY=TEST_KEY,
        PHONE_PIPELINE_SENSOR_INTERVAL_SECONDS="5",
        PHONE_PIPELINE_SETTLE_SECONDS="1",
        PHONE_PIPELINE_START_DATE=START_DATE,
        # The fixed test days would age out of a retention period: keep every partition.
        PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS="0",
        PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS="0",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [_dagster_executable(), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p",
             str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_reset_signals,
        )  # fmt: skip
    server = DevServer(port, home, dagster_home, log_path, process)
    passed = False
    try:
        wait_for(
            f"{server.url}/server_info",
            lambda: _server_answers(server),
            STARTUP_TIMEOUT,
            lambda: f"dagster dev log:\n{server.log_tail()}",
            poll_seconds=POLL_SECONDS,
        )
        _stop_schedules(server)
        yield server
        passed = True
    finally:
        left = _stop_group(process)
        if not passed:
            print(f"--- dagster dev log tail ({log_path}) ---\n{server.log_tail(150)}")
        assert not left, f"processes of dagster dev still alive after SIGKILL: {left}"


def _stop_schedules(server: DevServer) -> None:
    """Stop the daily schedules, as a user would in the UI: one that came due while the tests ran
    (02:30 and 04:00 UTC) started a run of its own, which the tests then found still queued."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    result = server.graphql(SCHEDULES_QUERY, {"selector": selector})["schedulesOrError"]
    assert result["__typename"] == "Schedules", f"schedulesOrError failed: {result}"
    assert result["results"], "no schedules found"
    for schedule in result["results"]:
        stopped = server.graphql(STOP_SCHEDULE_MUTATION, {"id": schedule["scheduleState"]["id"]})
        outcome = stopped["stopRunningSchedule"]
        assert outcome["__typename"] == "ScheduleStateResult", f"{schedule['name']}: {outcome}"
        assert outcome["scheduleState"]["status"] == "STOPPED", schedule["name"]


def _wait_for_success(server: DevServer, run_id: str, timeout: float) -> None:
    def finished() -> str | None:
        runs = server.graphql(RUNS_QUERY, {"filter": {"runIds": [run_id]}})["runsOrError"]
        status = runs["results"][0]["status"] if runs.get("results") else None
        return status if status in FINISHED else None

    status = wait_for(
        f"run {run_id} to finish",
        finished,
        timeout,
        lambda: server.explain([run_id]),
        poll_seconds=POLL_SECONDS,
    )
    assert status == "SUCCESS", f"run {run_id} ended {status}.\n\n{server.explain([run_id])}"


def _assert_steps_took_turns(server: DevServer, run_ids: list[str]) -> None:
    """Every step of these runs is in the pool "duckdb" (limit 1): no two steps overlapped."""
    steps = []
    for run_id in run_ids:
        result = server.graphql(STEP_STATS_QUERY, {"runId": run_id})["runOrError"]
        assert result["__typename"] == "Run", result
        steps += [(step["startTime"], step["endTime"], run_id[:8], step["stepKey"])
                  for step in result["stepStats"]]  # fmt: skip
    assert all(start and end for start, end, _, _ in steps), f"unfinished steps: {steps}"
    steps.sort()
    overlaps = [
        (earlier, later)
        for earlier, later in zip(steps, steps[1:], strict=False)
        if later[0] < earlier[1]
    ]
    assert not overlaps, f"steps of the pool 'duckdb' ran at the same time: {overlaps}"


def _analytics_counts(home: Path, day: dt.date) -> dict[str, int]:
    database = home / "warehouse" / "analytics.duckdb"
    assert database.exists(), f"{database} was not written"
    with duckdb.connect(str(database), read_only=True) as con:
        return {
            table: con.execute(
                f"SELECT count(*) FROM {table} WHERE call_date = ?", [day]
            ).fetchone()[0]
            for table in ("calls_pseudonymized", "call_volume_hourly", "row_accounting")
        }


def _assert_published(server: DevServer, day: dt.date) -> None:
    counts = _analytics_counts(server.home, day)
    assert all(counts.values()), f"analytics tables without rows for {day}: {counts}"
    # Most of the day's calls are valid and consented: far more than a handful get published.
    assert counts["calls_pseudonymized"] > ROWS // 3, counts


def test_sensor_starts_a_run_for_a_new_landing_file(dev_server: DevServer) -> None:
    summary = generate(dev_server.home, rows=ROWS, days=1, seed=SEED, start_date=SENSOR_DAY)
    assert [path.name for path in summary.call_files] == [f"calls_{SENSOR_DAY}.csv"]
    tags = {"dagster/partition": SENSOR_DAY.isoformat(), "dagster/sensor_name": SENSOR}
    deadline = time.monotonic() + SENSOR_RUN_TIMEOUT

    runs = wait_for(
        f"the sensor to request a run for {SENSOR_DAY}",
        lambda: dev_server.runs(tags),
        SENSOR_RUN_TIMEOUT,
        dev_server.explain,
        poll_seconds=POLL_SECONDS,
    )
    assert len(runs) == 1, f"one file, one partition: expected one run, got {runs}"
    run = runs[0]
    assert run["jobName"] == JOB
    assert {"key": "phone_pipeline/trigger", "value": "landing_file"} in run["tags"]
    _wait_for_success(dev_server, run["runId"], max(deadline - time.monotonic(), 30.0))
    _assert_published(dev_server, SENSOR_DAY)


def test_run_launched_from_the_ui_for_another_day(dev_server: DevServer, tmp_path: Path) -> None:
    # A second day's file, generated elsewhere and moved into landing/calls in one rename.
    generated = generate(tmp_path / "elsewhere", rows=ROWS, days=1, seed=SEED, start_date=UI_DAY)
    landed = dev_server.home / "landing" / "calls" / generated.call_files[0].name
    part = landed.with_name(landed.name + ".part")
    shutil.copyfile(generated.call_files[0], part)
    os.replace(part, landed)

    # What the launchpad sends for a partitioned job: the job selector and the partition tag.
    execution_params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": JOB,
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": UI_DAY.isoformat()}]},
    }
    # Two runs of one partition in flight together (a user launching the day twice; the landing
    # sensor may add a third if it ticks before a run ingests the file, and none once one has:
    # files some run already ingested start no run): the DuckDB pool (limit 1) must make them
    # take turns instead of failing on the file lock.
    run_ids = []
    for _ in range(2):
        launched = dev_server.graphql(LAUNCH_RUN_MUTATION, {"executionParams": execution_params})
        result = launched["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", f"launchRun failed: {result}"
        run_ids.append(result["run"]["runId"])
    deadline = time.monotonic() + UI_RUNS_TIMEOUT
    for each in run_ids:
        _wait_for_success(dev_server, each, max(deadline - time.monotonic(), 10.0))
    _assert_steps_took_turns(dev_server, run_ids)
    _assert_published(dev_server, UI_DAY)  # only now: no run holds the DuckDB files any more

    # Every run of the module ended well: none failed on a lock or a gate. A run the sensors
    # started meanwhile (the landing sensor may tick before a run ingests the file) may still be
    # in flight: wait for it to end first.
    def finished_runs() -> list[dict] | None:
        runs = dev_server.graphql(RUNS_QUERY, {})["runsOrError"]["results"]
        return runs if all(run["status"] in FINISHED for run in runs) else None

    all_runs = wait_for(
        "every run to end",
        finished_runs,
        UI_RUNS_TIMEOUT,
        lambda: dev_server.explain([]),
        poll_seconds=POLL_SECONDS,
    )
    failed = [run["runId"] for run in all_runs if run["status"] != "SUCCESS"]
    assert not failed, dev_server.explain(failed)


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",  # let the UI's GraphQL queries finish before the DOM is read
]


def _rendered_page(server: DevServer, path: str, tmp_path: Path) -> str:
    """The UI page as Debian's Chromium renders it (headless), as HTML."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the UI test (scripts/test.sh installs it)"
    completed = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom",
         f"{server.url}{path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_the_ui_shows_the_published_asset_its_schema_and_its_gates(
    dev_server: DevServer, tmp_path: Path
) -> None:
    # Runs after the tests above in this module, so the asset has been materialised by then.
    overview = _rendered_page(dev_server, "/assets/analytics/calls_pseudonymized", tmp_path)
    # "2 sensors": landing_calls_sensor and privacy_rerun_sensor start the job that writes it.
    for expected in ("analytics_zone", "privacy-engineering", "call_pipeline", "caller_pseudonym",
                     "callee_pseudonym", "2 sensors"):  # fmt: skip
        assert expected in overview, f"{expected!r} not on the asset page"
    assert "caller_e164" not in overview  # the shareable asset has no number column
    checks = _rendered_page(
        dev_server, "/assets/analytics/calls_pseudonymized?view=checks", tmp_path
    )
    for gate in ("calls_pseudonymized_suite", "no_phone_numbers_in_analytics",
                 "pseudonymized_rows_reconcile"):  # fmt: skip
        assert gate in checks, f"gate {gate!r} not on the checks tab"
