"""The key a run is configured with against the key the warehouse was written with.

The restricted zone records a fingerprint per key version (`pseudonym_key_fingerprints`); a run
checks its keyring against them before it writes anything (domain/pseudonyms.py
`check_fingerprints`), at the start of `phone-pipeline run` and when the pipeline's key resource
starts (every run, from the CLI, the UI or a sensor), and records the versions it brings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from phone_pipeline.domain.pseudonyms import Keyring, check_fingerprints
from phone_pipeline.warehouse import RESTRICTED_TABLES, ensure_tables, transaction

TABLE = "pseudonym_key_fingerprints"
# Another run's step may hold the zone file (one writer per file): wait for it, as long as a
# DuckDB pool slot can take, rather than fail a run for a busy file.
WAIT_SECONDS = 900.0


def _connect(path: Path, wait_seconds: float, on_wait: Callable[[str], None] | None):
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() >= deadline:
                raise
            if not told and on_wait is not None:
                on_wait(f"{path.name} is in use by another run: waiting to check the key")
                told = True
            time.sleep(0.5)


def verify_warehouse_key(
    restricted_db: Path,
    keyring: Keyring,
    wait_seconds: float = WAIT_SECONDS,
    on_wait: Callable[[str], None] | None = None,
) -> dict[int, str]:
    """Refuse a keyring that is not the one the warehouse was written with (KeyMismatchError);
    record the fingerprints of versions the warehouse does not know yet, and return them."""
    restricted_db.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(restricted_db, wait_seconds, on_wait)
    try:
        ensure_tables(con, None, {TABLE: RESTRICTED_TABLES[TABLE]})
        with transaction(con):
            recorded = dict(
                con.execute(f"SELECT key_version, key_fingerprint FROM {TABLE}").fetchall()
            )
            new = check_fingerprints(recorded, keyring)
            if new:
                con.executemany(
                    f"INSERT INTO {TABLE} VALUES (?, ?, now())", [[v, f] for v, f in new.items()]
                )
    finally:
        con.close()
    return new
