"""Scrub phone-number-like text out of messages that leave the restricted zone.

Parser errors (DuckDB's CSV reader, for one) quote the offending line, which may hold a phone number;
such messages go to Dagster's event log, so they are redacted first.
"""

from __future__ import annotations

import re

# Seven or more digits, possibly split by the separators people write numbers with.
_NUMBER_LIKE = re.compile(r"\+?\d[\d\s().\-/]{5,}\d")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    return _NUMBER_LIKE.sub(REDACTED, text)
