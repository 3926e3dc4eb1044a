"""Two fixes to the pinned Dagster (1.13.27), applied when this module is imported: by
`definitions.py`, so in every process that loads our definitions (the CLI's runs, the code server,
the runs the daemon launches) before it opens an instance.

Both replace one private method with a version that behaves the same and costs less; the suite
fails if a Dagster upgrade changes what they rely on (`test_dagster_fixes.py`).

1. A run waiting for a pool slot spun a whole core. While a step waits, the executor's loop asks
   `InstanceConcurrencyContext.interval_to_next_pending_claim_check` how long to sleep before the
   next claim, and Dagster's version returns `min(0, ...)`, never more than 0. Two runs of a
   300-call day started together took 28 CPU-s each instead of 12. Here it is the time to the
   earliest pending claim: the claims happen at the same moments as before (Dagster throttles
   them to one a second or less), the run sleeps in between, and a signal still ends the sleep.
2. The SQLite event log built a new SQLAlchemy engine for every connection (`_connect`): a run of
   one partition opens about 1,800, which cost about 1 s of its 12 s of CPU. Here each database
   file keeps one engine (still without a pool: every connection is a new SQLite connection, as
   before), in a bounded cache because the webserver and daemon read many run files.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool


def _seconds_to_next_claim_check(self: InstanceConcurrencyContext) -> float:
    """How long the executor may sleep before its next pool claim is due: 0 when a claim is due
    now or nothing waits."""
    if not self._pending_claims:
        return 0.0
    now = time.time()
    return max(0.0, min((due - now for due in self._pending_timeouts.values()), default=0.0))


@functools.lru_cache(maxsize=64)
def sqlite_engine(conn_string: str) -> Engine:
    """The engine of one SQLite file, as Dagster makes it (no pool, its busy timeout)."""
    return sqlalchemy.create_engine(
        conn_string, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    )


@contextmanager
def _connect_with_kept_engine(self: SqliteEventLogStorage, shard: str) -> Iterator[Connection]:
    """Dagster's `SqliteEventLogStorage._connect`, with the file's engine kept."""
    with self._db_lock:
        engine = sqlite_engine(self.conn_string_for_shard(shard))
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        with engine.connect() as conn, conn.begin():
            yield conn


InstanceConcurrencyContext.interval_to_next_pending_claim_check = _seconds_to_next_claim_check
SqliteEventLogStorage._connect = _connect_with_kept_engine
