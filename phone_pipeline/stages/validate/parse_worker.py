"""Parsing numbers on every core.

phonenumbers is pure Python (13-24 us a number), so a cold day of hundreds of thousands of new
strings is parsed in slices (`parse_slices`: strings that share a parse, and a country's strings,
stay together): one in this process, the others each in a worker process started as
`python -m phone_pipeline.stages.validate.parse_worker`. The rows are those of one process
(phone_pipeline_tests/test_parse_worker.py).

Explicit workers, not `multiprocessing`: its spawn and forkserver methods re-import the caller's
`__main__` in every child (a script without an `if __name__ == "__main__"` guard then runs again
in each), and fork is unsafe in a process that runs DuckDB's and Dagster's threads. Numbers travel
over the workers' pipes only: never in a file, an argument, an error message or a log line.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence

import pandas as pd

from phone_pipeline.domain.numbers import normalize_numbers, parse_slices

# Below this many strings per process, starting a worker (about 0.5 s: Python, pandas,
# phonenumbers) costs more than it saves.
MIN_NUMBERS_PER_PROCESS = 25_000
WORKER_COMMAND = (sys.executable, "-m", "phone_pipeline.stages.validate.parse_worker")

log = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_numbers(
    raw_numbers: Sequence[str], default_region: str, processes: int | None = None
) -> pd.DataFrame:
    """`normalize_numbers` of the distinct strings, in up to `processes` processes (default:
    one per available core). Rows in no particular order; join back on `raw_number`."""
    distinct = list(dict.fromkeys(raw_numbers))
    slices = min(processes or available_cores(), len(distinct) // MIN_NUMBERS_PER_PROCESS)
    if slices <= 1:
        return normalize_numbers(distinct, default_region)
    parts = parse_slices(distinct, default_region, slices)
    workers = [_Worker(part, default_region) for part in parts[1:]]
    try:
        frames = [normalize_numbers(parts[0], default_region)]
        frames += [worker.result() for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    return pd.concat(frames, ignore_index=True)


class _Worker:
    """One slice parsed in a child process; `result()` parses it here if the child fails."""

    def __init__(self, numbers: list[str], default_region: str) -> None:
        self.numbers, self.default_region = numbers, default_region
        self.process: subprocess.Popen[bytes] | None = None
        self.feeder: threading.Thread | None = None
        try:
            self.process = subprocess.Popen(
                WORKER_COMMAND,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # A traceback could quote a number: the exit code is all that is reported.
                stderr=subprocess.DEVNULL,
            )
        except OSError as error:
            log.warning("Number parse worker not started (%s); parsing here instead", error.errno)
            return
        # Fed from a thread: the pipe takes the slice only as fast as the child reads it, and
        # this process has its own slice to parse meanwhile.
        self.feeder = threading.Thread(target=self._feed, daemon=True)
        self.feeder.start()

    def _feed(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        try:
            pickle.dump(
                (self.numbers, self.default_region),
                self.process.stdin,
                protocol=pickle.HIGHEST_PROTOCOL,
            )
            self.process.stdin.close()
        except OSError:
            pass  # the child died: result() sees its exit code

    def result(self) -> pd.DataFrame:
        if self.process is not None and self.process.stdout is not None:
            output = self.process.stdout.read()
            code = self.process.wait()
            if code == 0:
                try:
                    frame = pickle.loads(output)
                except (pickle.UnpicklingError, EOFError, ValueError):
                    frame = None
                if isinstance(frame, pd.DataFrame):
                    return frame
            log.warning("Number parse worker failed (exit code %s); parsing here instead", code)
        return normalize_numbers(self.numbers, self.default_region)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.feeder is not None:
            self.feeder.join()


def main() -> int:
    """Worker: a pickled (numbers, default region) on stdin, the pickled frame on stdout."""
    numbers, default_region = pickle.load(sys.stdin.buffer)
    frame = normalize_numbers(numbers, default_region)
    pickle.dump(frame, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
