"""Scrub phone-number-like text out of messages that leave the restricted zone.

Parser errors (DuckDB's CSV reader, for one) quote the offending line, which may hold a phone number;
such messages go to Dagster's event log, so they are redacted first. The rule errs on the side of
redacting: any run of 7+ characters of digits and the separators people (and phonenumbers) write
numbers with. ISO dates (2026-11-01) are the one exception, so that file names stay readable.
"""

from __future__ import annotations

import re

# Separators phonenumbers accepts between digits: ASCII and Unicode dashes, spaces, dots, slashes.
_SEPARATORS = r"\s().\-/\u00a0\u2010-\u2015\u2212\u3000\u30fc\uff0d"
_NUMBER_LIKE = re.compile(rf"\+?\d[\d{_SEPARATORS}]{{5,}}\d")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
REDACTED = "<redacted>"


def _replace(match: re.Match[str]) -> str:
    return match.group(0) if _ISO_DATE.fullmatch(match.group(0)) else REDACTED


def redact(text: str) -> str:
    return _NUMBER_LIKE.sub(_replace, text)
