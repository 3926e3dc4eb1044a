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
# `campaign_id` (added later, optional): older files without it keep working.
CALL_OPTIONAL_COLUMNS: tuple[str, ...] = ("cell_id", "campaign_id")
CALL_COLUMNS = CALL_REQUIRED_COLUMNS + CALL_OPTIONAL_COLUMNS

CONSENT_REQUIRED_COLUMNS: tuple[str, ...] = ("phone_number", "purpose", "status", "recorded_at")
CONSENT_OPTIONAL_COLUMNS: tuple[str, ...] = ("source",)
CONSENT_COLUMNS = CONSENT_REQUIRED_COLUMNS + CONSENT_OPTIONAL_COLUMNS

CELL_REQUIRED_COLUMNS: tuple[str, ...] = ("cell_id", "region")
CELL_OPTIONAL_COLUMNS: tuple[str, ...] = ("latitude", "longitude")
CELL_COLUMNS = CELL_REQUIRED_COLUMNS + CELL_OPTIONAL_COLUMNS

# National do-not-call registry files (landing/dnc/*.csv), optional.
DNC_REQUIRED_COLUMNS: tuple[str, ...] = ("phone_number", "listed_at")
DNC_OPTIONAL_COLUMNS: tuple[str, ...] = ()
DNC_COLUMNS = DNC_REQUIRED_COLUMNS + DNC_OPTIONAL_COLUMNS
