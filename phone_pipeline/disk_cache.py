"""Results that cost a process seconds to compute and never change for the same inputs, kept
between processes in the user's cache directory (`$XDG_CACHE_HOME/phone_pipeline`, by default
`~/.cache/phone_pipeline`). Only derived facts are kept (column lineage, which fictional numbers
phonenumbers accepts), never data; the directory is safe to delete.

A key must name everything the result depends on (inputs, code, library versions): a changed
input is a new key, so a kept result cannot go stale. An unreadable entry reads as missing, and a
cache that cannot be written is skipped: the caller computes the result again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def cache_directory(kind: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "phone_pipeline" / kind


def cache_key(*parts: object) -> str:
    """A key of everything a result depends on (their `repr`s)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def read_kept(kind: str, key: str) -> Any | None:
    """The JSON value kept under `key`, or None when there is none or it cannot be read."""
    try:
        return json.loads((cache_directory(kind) / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None


def keep(kind: str, key: str, value: Any) -> None:
    """Keep `value` (JSON) under `key`, written whole or not at all (a file renamed into place),
    so that processes computing the same result at once never read half a file."""
    directory = cache_directory(kind)
    temporary: Path | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=directory, prefix=f".{key}.", suffix=".tmp", delete=False
        ) as file:
            temporary = Path(file.name)
            json.dump(value, file)
        os.replace(temporary, directory / f"{key}.json")
    except OSError:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
