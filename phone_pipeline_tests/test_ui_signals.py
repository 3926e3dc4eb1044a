"""`phone-pipeline ui` serves the project's code location through `dg dev`, and stops, with every
process it started, on SIGTERM or SIGINT, even when started the way a background shell starts
commands (SIGINT ignored).

Starts the real `dg dev` (webserver, daemon, code server) through the CLI; every wait is bounded,
and whatever is left is killed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from phone_pipeline_tests.conftest import TEST_KEY
from phone_pipeline_tests.pipeline_support import wait_for
from phone_pipeline_tests.test_dagster_dev import _free_port

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("phone-pipeline")
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0  # the CLI waits 20 s for a graceful stop, then kills the group


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def _descendants(root: int) -> set[int]:
    table = _processes()
    found, frontier = set(), {root}
    while frontier:
        children = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def _alive(pids: set[int]) -> list[str]:
    left = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
                command = raw.replace(b"\0", b" ").decode(errors="replace")[:120]
                left.append(f"{pid} {command}")
    return left


WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } }
  ... on PythonError { message } } } } } }
"""


def _locations(port: int) -> dict[str, object] | None:
    """Code location name -> its repositories' names (or its load error), from the UI's GraphQL;
    None while a location is still loading."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": WORKSPACE_QUERY}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        workspace = json.loads(reply.read())["data"]["workspaceOrError"]
    assert workspace["__typename"] == "Workspace", workspace
    if any(entry["loadStatus"] != "LOADED" for entry in workspace["locationEntries"]):
        return None
    found: dict[str, object] = {}
    for entry in workspace["locationEntries"]:
        location = entry["locationOrLoadError"] or {}
        repositories = location.get("repositories")
        found[entry["name"]] = (
            sorted(repo["name"] for repo in repositories) if repositories is not None else location
        )
    return found


def _command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as reply:
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_ui_started_in_the_background_stops_every_process_on_a_signal(
    tmp_path: Path, signum: int
) -> None:
    home = tmp_path / "data"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PHONE_PIPELINE_") and name != "DAGSTER_HOME"
    }
    env.update(PHONE_PIPELINE_HOME=str(home), PHONE_PIPELINE_PSEUDONYM_KEY=TEST_KEY,
               PHONE_PIPELINE_START_DATE="2026-10-01", PYTHONUNBUFFERED="1")  # fmt: skip
    port = _free_port()
    log_path = tmp_path / "ui.log"
    with log_path.open("wb") as log:
        ui = subprocess.Popen(
            [str(CLI), "ui", "--port", str(port)], env=env, cwd=tmp_path,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_ignore_sigint,
        )  # fmt: skip
    started: set[int] = set()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(port):
            assert ui.poll() is None, log_path.read_text(errors="replace")
            if time.monotonic() > deadline:
                pytest.fail(f"the UI did not answer within {STARTUP_TIMEOUT:.0f} s:\n"
                            f"{log_path.read_text(errors='replace')[-3000:]}")  # fmt: skip
            time.sleep(0.5)
        started = _descendants(ui.pid) | {ui.pid}
        assert len(started) >= 3, f"webserver, daemon and code server expected: {_alive(started)}"
        # Through `dg dev` (not the superseded `dagster dev`), serving the project's definitions.
        assert any("/dg dev -h 127.0.0.1" in _command_line(pid) for pid in started), _alive(started)
        locations = wait_for(
            "the code location to load",
            lambda: _locations(port),
            STARTUP_TIMEOUT,
            lambda: log_path.read_text(errors="replace")[-3000:],
        )
        assert locations == {"phone_pipeline": ["__repository__"]}

        ui.send_signal(signum)  # to the CLI's process only, as `kill PID` does
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _alive(started)
        assert not left, f"still alive {STOP_TIMEOUT:.0f} s after {signum.name}: {left}"
        assert ui.wait(timeout=5) is not None
    finally:
        for pid in started | _descendants(ui.pid) | {ui.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            ui.wait(timeout=10)
