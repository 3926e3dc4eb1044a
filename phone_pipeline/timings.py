"""Seconds a stage spends parsing numbers, for the stage to report in its metadata.

Numbers are parsed (phonenumbers, in this process and its parse workers) deep inside the stages'
helpers: the number cache, the erasure register. `parse_numbers` runs under `timed(PARSE)`; a
stage opens `recording()` around its call of such a helper and reports the total as
`parse_seconds`, which the UI shows and `phone-pipeline bench` reads from the run's event log.

A `recording()` block must not contain a `yield` of the asset's generator: a context variable set
before a yield is not guaranteed to be the one seen after it. Plain Python, no Dagster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

PARSE = "parse_seconds"

_totals: ContextVar[dict[str, float] | None] = ContextVar("phone_pipeline_timings", default=None)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Add the block's wall time to `kind` of the enclosing `recording()`, if there is one."""
    totals = _totals.get()
    started = time.perf_counter()
    try:
        yield
    finally:
        if totals is not None:
            totals[kind] = totals.get(kind, 0.0) + time.perf_counter() - started


class Recording:
    """The seconds of each kind timed while the recording was open."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def seconds(self, kind: str) -> float:
        """Total seconds of `kind`, to the millisecond (0.0 when nothing of it ran)."""
        return round(self.totals.get(kind, 0.0), 3)


@contextmanager
def recording() -> Iterator[Recording]:
    """Collect the `timed` blocks run inside; nested recordings each see only their own."""
    result = Recording()
    token = _totals.set(result.totals)
    try:
        yield result
    finally:
        _totals.reset(token)
