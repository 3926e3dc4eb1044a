"""The key a run is configured with against the key the warehouse was written with.

Beside the zone files, `pseudonym_key_fingerprints.json` records per key version a fingerprint of
the key (domain/pseudonyms.py `key_fingerprint`: a short HMAC of a fixed label), never the key. A
run checks its keyring against it before it writes anything (`check_fingerprints`), at the start of
`phone-pipeline run` and when the pipeline's key resource starts (every run, from the CLI, the UI or
a sensor), and records the versions it brings.

A small file under a file lock rather than a table of restricted.duckdb: the check runs at every
run start, before the run queues for the DuckDB pool, and must never wait for another run's write
lock on that file (a run stuck there could neither say whom it waits for nor stop on a signal).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
from pathlib import Path

from phone_pipeline.domain.pseudonyms import Keyring, check_fingerprints

FILE_NAME = "pseudonym_key_fingerprints.json"


def fingerprints_path(restricted_db: Path) -> Path:
    return restricted_db.parent / FILE_NAME


def recorded_fingerprints(restricted_db: Path) -> dict[int, str]:
    """Key version -> fingerprint, as recorded for this warehouse ({} before its first run)."""
    path = fingerprints_path(restricted_db)
    if not path.exists():
        return {}
    versions = json.loads(path.read_text())["versions"]
    return {int(version): entry["fingerprint"] for version, entry in versions.items()}


def verify_warehouse_key(restricted_db: Path, keyring: Keyring) -> dict[int, str]:
    """Refuse a keyring that is not the one the warehouse was written with (KeyMismatchError);
    record the fingerprints of versions the warehouse does not know yet, and return them."""
    path = fingerprints_path(restricted_db)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{FILE_NAME}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs starting together record a version once
        versions = json.loads(path.read_text())["versions"] if path.exists() else {}
        recorded = {int(version): entry["fingerprint"] for version, entry in versions.items()}
        new = check_fingerprints(recorded, keyring)
        if new:
            now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            for version, fingerprint in new.items():
                versions[str(version)] = {"fingerprint": fingerprint, "recorded_at": now}
            part = path.with_name(f".{FILE_NAME}.part")
            part.write_text(json.dumps({"versions": versions}, indent=2, sort_keys=True) + "\n")
            part.replace(path)  # atomic: a reader sees the old record or the new one
    return new
