"""Run a long-lived command (`dg dev`) as a child in its own process group, and stop the
whole group on SIGINT/SIGTERM.

`phone-pipeline ui` used to os.execv `dagster dev`: started from a background shell it inherited
SIGINT ignored, and its webserver, daemon and code servers outlived both SIGINT and SIGTERM. Here
the child starts with default signal dispositions, our process forwards SIGINT/SIGTERM/SIGHUP to
its group, waits a bounded time for a graceful stop, then kills what is left of the group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _default_signals() -> None:
    # Runs in the child before exec: ignored signals would otherwise be inherited.
    for signum in (*FORWARDED, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_in_process_group(
    argv: Sequence[str], cwd: Path | None = None, stop_timeout: float = 20.0
) -> int:
    """Run `argv` until it exits or we are told to stop; returns its exit code (128 + signal
    when it ended by a signal)."""
    child = subprocess.Popen(
        list(argv), cwd=cwd, start_new_session=True, preexec_fn=_default_signals
    )
    pgid = child.pid  # a new session: the child leads its own process group
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)

    saved = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        deadline: float | None = None
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if received and deadline is None:
                deadline = time.monotonic() + stop_timeout
            if deadline is not None and time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                code = child.wait()
                break
        # The leader may exit before its children (webserver, daemon, code servers, runs).
        if received or code != 0:
            grace = time.monotonic() + (stop_timeout if received else 5.0)
            while _group_alive(pgid) and time.monotonic() < grace:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code
