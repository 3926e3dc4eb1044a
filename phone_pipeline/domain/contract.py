"""The data contract of the landing zone: the files' columns, as users write them."""

from __future__ import annotations

CALL_REQUIRED_COLUMNS: tuple[str, ...] = (
    "call_id",
    "caller_number",
    "callee_number",
    "started_at",
    "duration_seconds",
    "disposition",
)
CALL_OPTIONAL_COLUMNS: tuple[str, ...] = ("cell_id",)
CALL_COLUMNS = CALL_REQUIRED_COLUMNS + CALL_OPTIONAL_COLUMNS

CONSENT_REQUIRED_COLUMNS: tuple[str, ...] = ("phone_number", "purpose", "status", "recorded_at")
CONSENT_OPTIONAL_COLUMNS: tuple[str, ...] = ("source",)
CONSENT_COLUMNS = CONSENT_REQUIRED_COLUMNS + CONSENT_OPTIONAL_COLUMNS

CELL_REQUIRED_COLUMNS: tuple[str, ...] = ("cell_id", "region")
CELL_OPTIONAL_COLUMNS: tuple[str, ...] = ("latitude", "longitude")
CELL_COLUMNS = CELL_REQUIRED_COLUMNS + CELL_OPTIONAL_COLUMNS
