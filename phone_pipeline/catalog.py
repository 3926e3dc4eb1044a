"""Every table of every zone, once: its schema and column descriptions, partition column, what it
holds about people, retention class, whether it is shared, and which asset writes it.

Erasure, retention, rotation, sharing, the leak scans, the record of processing, the
`dagster/column_schema` metadata and the README's tables are derived from this module, so that a
table added here is covered everywhere (and a test names what is missing). Plain Python: no
Dagster, no DuckDB connection.

`python -m phone_pipeline.catalog` prints the catalog; `--markdown` prints the README's tables.
"""

from __future__ import annotations

import argparse
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

# The zones: one DuckDB file each. The restricted file is the connection's own (`main`); the
# others are attached to it under these names (warehouse.attach_zone).
RESTRICTED = "restricted"
ANALYTICS = "analytics"
COMPLIANCE = "compliance"
SHAREABLE = "shareable"
ZONES = (RESTRICTED, ANALYTICS, COMPLIANCE, SHAREABLE)

PARTITION_COLUMN = "call_date"

AssetPath = tuple[str, ...]


class People(enum.Flag):
    """What a column (or a table, the union of its columns) holds about people."""

    NONE = 0
    NUMBERS = enum.auto()  # raw or E.164 phone numbers: direct identifiers
    CALLER_PSEUDONYMS = enum.auto()  # the caller of a call, by keyed pseudonym
    CALLEE_PSEUDONYMS = enum.auto()  # the callee of a call, by keyed pseudonym
    ERASED_PSEUDONYMS = enum.auto()  # the subject of an erasure request, by keyed pseudonym

    @property
    def label(self) -> str:
        return ", ".join(flag.name.lower() for flag in People if flag and flag in self) or "none"


PSEUDONYMS = People.CALLER_PSEUDONYMS | People.CALLEE_PSEUDONYMS | People.ERASED_PSEUDONYMS


class Retention(enum.Enum):
    """How long a table's rows are kept (domain/retention.py holds the days and the sweep)."""

    RESTRICTED = "restricted"  # day partitions swept after the restricted retention
    PSEUDONYMIZED = "pseudonymized"  # day partitions swept after the pseudonymised retention
    AGGREGATES = "aggregates"  # day partitions swept after the aggregates' retention
    REFERENCED = "referenced"  # entries swept when no kept row refers to them (the number cache)
    REGISTRY = "registry"  # rebuilt in full from its landing files or inputs at every run
    KEPT = "kept"  # kept on purpose: the table's `kept_because` says why


# The retention classes the sweep deletes day partitions of (domain/retention.RETENTION_TABLES).
SWEPT = (Retention.RESTRICTED, Retention.PSEUDONYMIZED, Retention.AGGREGATES)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as DuckDB declares and DESCRIBEs it
    description: str
    not_null: bool = False
    primary_key: bool = False  # a single-column primary key
    people: People = People.NONE

    @property
    def described_type(self) -> str:
        """The type as DuckDB's DESCRIBE spells it (TIMESTAMPTZ is an alias)."""
        return self.type.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")

    def ddl(self) -> str:
        constraint = " PRIMARY KEY" if self.primary_key else " NOT NULL" if self.not_null else ""
        return f"{self.name} {self.type}{constraint}"


@dataclass(frozen=True)
class Table:
    zone: str
    name: str
    description: str
    columns: tuple[Column, ...]
    retention: Retention
    writers: tuple[AssetPath, ...]  # the asset(s) that write it, the main one first
    primary_key: tuple[str, ...] = ()  # a composite primary key (table constraint)
    kept_because: str = ""  # why a KEPT or REGISTRY table is not swept by day
    erasure_exempt: str = ""  # why an erased subject's data stays here (a legal reason)
    copy_of: str | None = None  # shareable: the analytics table this is a risk-gated copy of
    # A published aggregate: the columns that key its cells within a day. The aggregate stage,
    # row accounting (each published row in one cell) and the DP outputs derive from these.
    cell_keys: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        """`zone.table` for an attached zone, the bare name for the restricted file: how a
        restricted connection with the other zones attached names it."""
        return self.name if self.zone == RESTRICTED else f"{self.zone}.{self.name}"

    @property
    def partition(self) -> str | None:
        return PARTITION_COLUMN if PARTITION_COLUMN in self.column_names else None

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def people(self) -> People:
        held = People.NONE
        for column in self.columns:
            held |= column.people
        return held

    @property
    def shareable(self) -> bool:
        return self.zone == SHAREABLE

    @property
    def writer(self) -> AssetPath:
        return self.writers[0]

    def ddl(self) -> str:
        """The column list of its CREATE TABLE."""
        parts = [column.ddl() for column in self.columns]
        if self.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return ", ".join(parts)

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


# --- columns that recur, described once -----------------------------------------------------------

_SHARED: dict[str, str] = {
    "call_date": "The call's day (UTC): the partition.",
    "content_hash": "SHA-256 of the landing file's content: identifies the file.",
    "source_file": "Name of the landing file the row came from.",
    "source_row": "Row number in its landing file (1 = first data row).",
    "call_id": "The call's identifier from the source.",
    "reason": "Why the row was quarantined or excluded (a fixed reason code).",
    "detail": "What was wrong, without the value itself where it could be a number.",
    "started_at_utc": "When the call started, in UTC.",
    "duration_seconds": "The call's duration in seconds.",
    "disposition": "The call's outcome (answered, no_answer, busy, voicemail, failed, abandoned).",
    "cell_id": "The antenna (cell) the call was placed through.",
    "campaign_id": "The dialer campaign the call belongs to, if any.",
    "caller_country": "ISO country of the caller's number.",
    "caller_number_type": "Type of the caller's number (mobile, fixed_line, ...).",
    "callee_country": "ISO country of the callee's number.",
    "callee_number_type": "Type of the callee's number (mobile, fixed_line, ...).",
    "caller_e164": "The caller's number in E.164.",
    "callee_e164": "The callee's number in E.164 (NULL when the callee was erased).",
    "caller_number": "The caller's number as received (raw text).",
    "callee_number": "The callee's number as received (raw text).",
    "callee_erased": "True when the callee's number was removed by an erasure request.",
    "e164": "A phone number in E.164.",
    "phone_number": "The phone number as received (raw text).",
    "recorded_at": "When the pipeline wrote the row.",
    "rows": "Number of rows counted.",
    "region": "Region of the cell the call was placed through.",
    "call_hour": "The hour the call started (UTC), truncated.",
    "caller_pseudonym": "Keyed HMAC-SHA256 pseudonym of the caller's number (v<version>:<hex>).",
    "callee_pseudonym": "Keyed HMAC-SHA256 pseudonym of the callee's number (v<version>:<hex>).",
    "calls": "Number of calls.",
    "answered_calls": "Calls answered.",
    "answered_rate": "Answered calls / calls.",
    "total_duration_seconds": "Sum of the calls' durations in seconds.",
    "median_duration_seconds": "Median call duration in seconds (NULL under differential privacy).",
    "distinct_subscribers": "Distinct callers (pseudonyms) of the cell.",
    "suppressed": "True when the cell has too few subscribers: its figures are withheld.",
    "dp_epsilon": "Privacy budget the cell's noisy figures spent (NULL without differential privacy).",
    "dataset": "The candidate dataset of the shareable zone.",
    "run_id": "The Dagster run that wrote the row.",
    "key_version": "Version of the pseudonym key.",
    "table_name": "The table concerned.",
    "zone": "The zone of the table concerned.",
    "swept_at": "When the retention sweep ran.",
    "requested_at": "When the erasure was requested.",
    "request_id": "The erasure request's identifier.",
    "listed_at": "When the number was put on the do-not-call registry.",
}

_NUMBER_COLUMNS = {"caller_e164", "callee_e164", "caller_number", "callee_number", "e164",
                   "phone_number", "raw_number"}  # fmt: skip
_PEOPLE_BY_COLUMN = {
    **dict.fromkeys(_NUMBER_COLUMNS, People.NUMBERS),
    "caller_pseudonym": People.CALLER_PSEUDONYMS,
    "callee_pseudonym": People.CALLEE_PSEUDONYMS,
}


def _col(spec: str, description: str | None = None, people: People | None = None) -> Column:
    """A column from `"name TYPE [NOT NULL | PRIMARY KEY]"`; a recurring column's description
    and what it holds about people come from the tables above unless given."""
    name, rest = spec.split(" ", 1)
    primary_key = rest.endswith(" PRIMARY KEY")
    not_null = rest.endswith(" NOT NULL")
    kind = rest.removesuffix(" PRIMARY KEY").removesuffix(" NOT NULL")
    return Column(
        name=name,
        type=kind,
        description=description if description is not None else _SHARED[name],
        not_null=not_null or primary_key,
        primary_key=primary_key,
        people=people if people is not None else _PEOPLE_BY_COLUMN.get(name, People.NONE),
    )


def _cols(*specs: str | tuple[str, str] | tuple[str, str, People]) -> tuple[Column, ...]:
    return tuple(_col(spec) if isinstance(spec, str) else _col(*spec) for spec in specs)


def _w(*path: str) -> AssetPath:
    return tuple(path)


_INGEST = _w(RESTRICTED, "raw_calls")
_VALIDATED = _w(RESTRICTED, "calls_validated")
_CONSENT_EVENTS = _w(RESTRICTED, "consent_events")
_DNC = _w(RESTRICTED, "dnc_registry")
_ERASURE = _w(RESTRICTED, "erasure_register")
_SWEEP = _w(RESTRICTED, "retention_sweep")
_PARTITION_SWEEP = _w(RESTRICTED, "partition_retention")
_PSEUDONYMIZE = _w(ANALYTICS, "calls_pseudonymized")

_REGISTRY_REFRESH = "refreshed in full from its landing folder at every run"
_EVIDENCE = "evidence of what the pipeline did: counts and decisions, no person"

# --- the restricted zone: raw and E.164 numbers --------------------------------------------------

_RESTRICTED_TABLES = (
    Table(
        RESTRICTED,
        "landing_files",
        "Each call landing file loaded, once, by content hash.",
        _cols(
            "content_hash VARCHAR PRIMARY KEY",
            ("file_name VARCHAR NOT NULL", "Name of the landing file."),
            ("file_size BIGINT NOT NULL", "Size of the file in bytes."),
            ("rows BIGINT NOT NULL", "Data rows of the file."),
            ("anchor_date DATE NOT NULL", "Date the file's local times were read against."),
            ("load_order BIGINT NOT NULL", "Order in which files were loaded."),
            ("registered_at TIMESTAMPTZ NOT NULL", "When the file was registered."),
            (
                "profile VARCHAR",
                "The call-log profile the file was read with (its folder under landing/calls); "
                "NULL: the pipeline's own contract.",
            ),
            (
                "local_times_nonexistent BIGINT",
                "Rows whose local start time falls in a daylight-saving gap (shifted forward).",
            ),
            (
                "local_times_ambiguous BIGINT",
                "Rows whose local start time occurs twice (read as the first occurrence).",
            ),
        ),
        Retention.KEPT,
        (_INGEST,),
        kept_because="file bookkeeping of names, sizes and row counts, no row content: the "
        "accounting of every loaded row needs it",
    ),
    Table(
        RESTRICTED,
        "landing_file_signatures",
        "Name, size and mtime of landing files already hashed, so that a run hashes only new or "
        "changed files.",
        _cols(
            ("file_name VARCHAR NOT NULL", "Name of the landing file."),
            ("file_size BIGINT NOT NULL", "Size of the file in bytes."),
            ("mtime_ns BIGINT NOT NULL", "Modification time of the file, in nanoseconds."),
            ("content_hash VARCHAR NOT NULL", "SHA-256 of the file's content."),
        ),
        Retention.KEPT,
        (_INGEST,),
        primary_key=("file_name", "file_size", "mtime_ns"),
        kept_because="file bookkeeping, no row content",
    ),
    Table(
        RESTRICTED,
        "raw_calls",
        "Every row of the call landing files, as received.",
        _cols(
            "call_date DATE NOT NULL",
            "content_hash VARCHAR NOT NULL",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
            ("call_id VARCHAR", "The call's identifier as received."),
            "caller_number VARCHAR",
            "callee_number VARCHAR",
            ("started_at VARCHAR", "The call's start time as received (text)."),
            ("duration_seconds VARCHAR", "The duration as received (text)."),
            ("disposition VARCHAR", "The outcome as received (text)."),
            "cell_id VARCHAR",
            ("started_at_utc TIMESTAMPTZ", "The start time read as UTC (NULL if unreadable)."),
            (
                "timestamp_status VARCHAR NOT NULL",
                "Whether the start time was readable and in range.",
            ),
            "campaign_id VARCHAR",
            "callee_erased BOOLEAN",
            (
                "internal_extension VARCHAR",
                "Which end of the call (caller, callee, both) is an internal extension, as the "
                "file's profile judged it; NULL otherwise.",
            ),
        ),
        Retention.RESTRICTED,
        (_INGEST,),
    ),
    Table(
        RESTRICTED,
        "number_cache",
        "Each raw number string ever parsed, per default region, with its E.164 and attributes.",
        _cols(
            ("raw_number VARCHAR NOT NULL", "The number string as received."),
            ("default_region VARCHAR NOT NULL", "Region a number without `+` was read in."),
            "e164 VARCHAR",
            ("country VARCHAR", "ISO country of the number."),
            ("number_type VARCHAR", "Type of the number (mobile, fixed_line, ...)."),
            ("time_zones VARCHAR[]", "Time zones phonenumbers gives for the number."),
            ("geo_region VARCHAR", "Geographic description of the number."),
            ("reason VARCHAR", "Why the string is not a valid number (NULL when valid)."),
        ),
        Retention.REFERENCED,
        (_VALIDATED, _CONSENT_EVENTS, _DNC, _ERASURE, _INGEST),
        primary_key=("raw_number", "default_region"),
    ),
    Table(
        RESTRICTED,
        "calls_validated",
        "Calls whose numbers and fields passed validation.",
        _cols(
            "call_date DATE NOT NULL",
            "call_id VARCHAR NOT NULL",
            "started_at_utc TIMESTAMPTZ NOT NULL",
            "duration_seconds INTEGER NOT NULL",
            "disposition VARCHAR NOT NULL",
            "cell_id VARCHAR",
            "caller_e164 VARCHAR NOT NULL",
            "caller_country VARCHAR",
            "caller_number_type VARCHAR",
            ("caller_geo_region VARCHAR", "Geographic description of the caller's number."),
            "callee_e164 VARCHAR",
            "callee_country VARCHAR",
            "callee_number_type VARCHAR",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
            "campaign_id VARCHAR",
            "callee_erased BOOLEAN",
        ),
        Retention.RESTRICTED,
        (_VALIDATED,),
    ),
    Table(
        RESTRICTED,
        "known_numbers",
        "Per day, each number of the validated calls, first and last seen that day.",
        _cols(
            "call_date DATE NOT NULL",
            ("e164 VARCHAR NOT NULL", "A number of the day's validated calls, in E.164."),
            ("first_seen TIMESTAMPTZ NOT NULL", "Its first call that day."),
            ("last_seen TIMESTAMPTZ NOT NULL", "Its last call that day."),
        ),
        Retention.RESTRICTED,
        (_VALIDATED,),
    ),
    Table(
        RESTRICTED,
        "calls_quarantine",
        "Call rows that failed validation, with the reason.",
        _cols(
            "call_date DATE NOT NULL",
            "reason VARCHAR NOT NULL",
            "detail VARCHAR",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
            ("call_id VARCHAR", "The call's identifier as received."),
            "caller_number VARCHAR",
            "callee_number VARCHAR",
            ("started_at VARCHAR", "The call's start time as received (text)."),
            ("duration_seconds VARCHAR", "The duration as received (text)."),
            ("disposition VARCHAR", "The outcome as received (text)."),
            "cell_id VARCHAR",
            "campaign_id VARCHAR",
        ),
        Retention.RESTRICTED,
        (_w(RESTRICTED, "calls_quarantine"),),
    ),
    Table(
        RESTRICTED,
        "consent_events",
        "The consent registry: each consent event per number.",
        _cols(
            ("e164 VARCHAR NOT NULL", "The consenting person's number in E.164."),
            ("purpose VARCHAR NOT NULL", "The purpose consented to (analytics, marketing)."),
            ("status VARCHAR NOT NULL", "granted or withdrawn."),
            ("recorded_at TIMESTAMPTZ NOT NULL", "When the consent event happened."),
            ("source VARCHAR", "Where the consent was collected."),
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
        ),
        Retention.REGISTRY,
        (_CONSENT_EVENTS,),
        kept_because=_REGISTRY_REFRESH,
    ),
    Table(
        RESTRICTED,
        "consent_quarantine",
        "Consent rows that could not be used, with the reason.",
        _cols(
            "reason VARCHAR NOT NULL",
            "detail VARCHAR",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
            "phone_number VARCHAR",
            ("purpose VARCHAR", "The purpose as received."),
            ("status VARCHAR", "The status as received."),
            ("recorded_at VARCHAR", "The event time as received (text)."),
            ("source VARCHAR", "The source as received."),
        ),
        Retention.REGISTRY,
        (_CONSENT_EVENTS,),
        kept_because=_REGISTRY_REFRESH,
    ),
    Table(
        RESTRICTED,
        "cell_reference",
        "Cells (antennas) and the region each belongs to.",
        _cols(
            ("cell_id VARCHAR PRIMARY KEY", "The cell's identifier."),
            ("region VARCHAR NOT NULL", "The region the cell belongs to."),
            ("latitude DOUBLE", "The cell's latitude."),
            ("longitude DOUBLE", "The cell's longitude."),
        ),
        Retention.REGISTRY,
        (_w(RESTRICTED, "cell_reference"),),
        kept_because="reference data, refreshed from its file at every run, no person",
    ),
    Table(
        RESTRICTED,
        "consented_calls",
        "Validated calls whose caller consented to analytics.",
        _cols(
            "call_date DATE NOT NULL",
            "call_id VARCHAR NOT NULL",
            "started_at_utc TIMESTAMPTZ NOT NULL",
            "duration_seconds INTEGER NOT NULL",
            "disposition VARCHAR NOT NULL",
            "cell_id VARCHAR",
            "caller_e164 VARCHAR NOT NULL",
            "caller_country VARCHAR",
            "caller_number_type VARCHAR",
            ("caller_geo_region VARCHAR", "Geographic description of the caller's number."),
            ("callee_e164 VARCHAR", "The callee's number in E.164 (NULL unless identifiable)."),
            (
                "callee_identifiable BOOLEAN NOT NULL",
                "True when the callee consented too and may appear by pseudonym.",
            ),
            "callee_country VARCHAR",
            "callee_number_type VARCHAR",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
            "campaign_id VARCHAR",
        ),
        Retention.RESTRICTED,
        (_w(RESTRICTED, "consented_calls"),),
    ),
    Table(
        RESTRICTED,
        "consent_exclusions",
        "Validated calls left out for lack of consent.",
        _cols(
            "call_date DATE NOT NULL",
            "reason VARCHAR NOT NULL",
            "call_id VARCHAR NOT NULL",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
        ),
        Retention.RESTRICTED,
        (_w(RESTRICTED, "consent_exclusions"),),
    ),
    Table(
        RESTRICTED,
        "dnc_registry",
        "The national do-not-call registry.",
        _cols(
            ("e164 VARCHAR NOT NULL", "The listed number in E.164."),
            ("listed_at TIMESTAMPTZ NOT NULL", "When the number was listed."),
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
        ),
        Retention.REGISTRY,
        (_DNC,),
        kept_because=_REGISTRY_REFRESH,
        erasure_exempt="GDPR Art. 17(3)(b): keeping a number on a suppression list is needed to "
        "honour the legal obligation not to call it",
    ),
    Table(
        RESTRICTED,
        "dnc_quarantine",
        "Do-not-call rows that could not be used, with the reason.",
        _cols(
            "reason VARCHAR NOT NULL",
            "detail VARCHAR",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
            "phone_number VARCHAR",
            ("listed_at VARCHAR", "The listing time as received (text)."),
        ),
        Retention.REGISTRY,
        (_DNC,),
        kept_because=_REGISTRY_REFRESH,
        erasure_exempt="GDPR Art. 17(3)(b): part of the do-not-call registry as received",
    ),
    Table(
        RESTRICTED,
        "dnc_scrub_list",
        "What a dialer scrubs against before marketing calls: one row per number and reason.",
        _cols(
            ("e164 VARCHAR NOT NULL", "A number that must not be called for marketing, in E.164."),
            (
                "reason VARCHAR NOT NULL",
                "Why: marketing consent withdrawn or never granted, DNC listed, a contact cap reached.",
            ),
            ("since TIMESTAMPTZ NOT NULL", "Since when the number must not be called."),
            ("recorded_at TIMESTAMPTZ NOT NULL", "When the list was rebuilt."),
        ),
        Retention.REGISTRY,
        (_w(RESTRICTED, "dnc_scrub_list"),),
        kept_because="rebuilt in full at every run",
        erasure_exempt="GDPR Art. 17(3)(b): erasing a number from the suppression list would "
        "make the person callable again",
    ),
    Table(
        RESTRICTED,
        "erasure_requests",
        "Each erasure request (GDPR Art. 17) and its completion.",
        _cols(
            ("request_id VARCHAR PRIMARY KEY", "The erasure request's identifier."),
            "requested_at TIMESTAMPTZ NOT NULL",
            "source_file VARCHAR NOT NULL",
            ("received_at TIMESTAMPTZ NOT NULL", "When the pipeline first read the request."),
            ("completed_at TIMESTAMPTZ", "When the request was applied (NULL: pending)."),
            ("affected_partitions DATE[]", "The call dates the request changed."),
        ),
        Retention.KEPT,
        (_ERASURE,),
        kept_because="evidence that each erasure was applied, GDPR Art. 5(2), no number",
    ),
    Table(
        RESTRICTED,
        "erasure_register",
        "The register of erased subjects: one keyed pseudonym per request and key version.",
        _cols(
            ("request_id VARCHAR NOT NULL", "The erasure request's identifier."),
            ("key_version INTEGER NOT NULL", "The pseudonym key version of the entry."),
            (
                "pseudonym VARCHAR NOT NULL",
                "Keyed pseudonym of the erased number (never the number).",
                People.ERASED_PSEUDONYMS,
            ),
        ),
        Retention.KEPT,
        (_ERASURE,),
        primary_key=("request_id", "key_version"),
        kept_because="keeps every erasure applied to files landed later, pseudonyms only",
        erasure_exempt="it is the erasure: without it a re-landed file would bring the subject back",
    ),
    Table(
        RESTRICTED,
        "erasure_removals",
        "What each erasure request removed, per zone and table.",
        _cols(
            ("request_id VARCHAR NOT NULL", "The erasure request's identifier."),
            "zone VARCHAR NOT NULL",
            "table_name VARCHAR NOT NULL",
            ("action VARCHAR NOT NULL", "deleted (the row) or callee_removed (the callee's data)."),
            ("rows BIGINT NOT NULL", "Rows changed."),
            "recorded_at TIMESTAMPTZ NOT NULL",
        ),
        Retention.KEPT,
        (_ERASURE,),
        kept_because=_EVIDENCE,
    ),
    Table(
        RESTRICTED,
        "erasure_quarantine",
        "Erasure request rows that could not be used.",
        _cols(
            "reason VARCHAR NOT NULL",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
            "phone_number VARCHAR",
            ("requested_at VARCHAR", "The request time as received (text)."),
            ("request_id VARCHAR", "The request id as received."),
            "detail VARCHAR",
        ),
        Retention.KEPT,
        (_ERASURE,),
        kept_because="the unusable requests themselves, kept with their text for follow-up",
        erasure_exempt="the unusable request rows themselves, kept with their text for follow-up",
    ),
    Table(
        RESTRICTED,
        "erasure_exclusions",
        "Raw call rows left out because their caller is erased (accounted for, no content).",
        _cols(
            "call_date DATE NOT NULL",
            "reason VARCHAR NOT NULL",
            "content_hash VARCHAR NOT NULL",
            "source_file VARCHAR NOT NULL",
            "source_row BIGINT NOT NULL",
        ),
        Retention.RESTRICTED,
        (_INGEST, _ERASURE),
        primary_key=("content_hash", "source_row"),
    ),
    Table(
        RESTRICTED,
        "retention_swept_rows",
        "Rows of each landing file the retention sweep deleted (counts only).",
        _cols(
            "content_hash VARCHAR NOT NULL",
            "call_date DATE NOT NULL",
            "table_name VARCHAR NOT NULL",
            ("rows BIGINT NOT NULL", "Rows of the file and day deleted."),
            "swept_at TIMESTAMPTZ NOT NULL",
        ),
        Retention.KEPT,
        (_SWEEP, _PARTITION_SWEEP),
        kept_because="counts that keep ingest's accounting of every loaded row exact",
    ),
)

# --- the analytics zone: pseudonymised rows, aggregates, evidence ---------------------------------


def _cell_figures() -> tuple[Column, ...]:
    return _cols(
        "calls BIGINT",
        "answered_calls BIGINT",
        "answered_rate DOUBLE",
        "total_duration_seconds BIGINT",
        "median_duration_seconds DOUBLE",
        "distinct_subscribers BIGINT",
        "suppressed BOOLEAN NOT NULL",
        "dp_epsilon DOUBLE",
    )


# The published aggregates (cells of people, suppressed below the minimum size).
_AGGREGATE_TABLES: tuple[Table, ...] = (
    Table(
        ANALYTICS,
        "call_volume_hourly",
        "Call figures per day x hour x region; small cells suppressed.",
        _cols(
            "call_date DATE NOT NULL", "call_hour TIMESTAMPTZ NOT NULL", "region VARCHAR NOT NULL"
        )
        + _cell_figures(),
        Retention.AGGREGATES,
        (_w(ANALYTICS, "call_volume_hourly"),),
        cell_keys=("call_hour", "region"),
    ),
    Table(
        ANALYTICS,
        "call_volume_by_country",
        "Call figures per day x caller country x number type; small cells suppressed.",
        _cols(
            "call_date DATE NOT NULL",
            ("caller_country VARCHAR NOT NULL", "ISO country of the caller's number, or unknown."),
            ("caller_number_type VARCHAR NOT NULL", "Type of the caller's number, or unknown."),
        )
        + _cell_figures(),
        Retention.AGGREGATES,
        (_w(ANALYTICS, "call_volume_by_country"),),
        cell_keys=("caller_country", "caller_number_type"),
    ),
)

_ANALYTICS_TABLES = (
    Table(
        ANALYTICS,
        "calls_pseudonymized",
        "Consented calls with numbers replaced by keyed pseudonyms, hour and region only.",
        _cols(
            "call_date DATE NOT NULL",
            "call_hour TIMESTAMPTZ NOT NULL",
            "caller_pseudonym VARCHAR NOT NULL",
            (
                "callee_pseudonym VARCHAR",
                "Keyed pseudonym of the callee's number (NULL unless the callee consented).",
            ),
            "caller_country VARCHAR",
            "caller_number_type VARCHAR",
            "callee_country VARCHAR",
            "callee_number_type VARCHAR",
            "region VARCHAR NOT NULL",
            "duration_seconds INTEGER NOT NULL",
            "disposition VARCHAR NOT NULL",
        ),
        Retention.PSEUDONYMIZED,
        (_PSEUDONYMIZE,),
    ),
    *_AGGREGATE_TABLES,
    Table(
        ANALYTICS,
        "row_accounting",
        "Rows received, quarantined, excluded and admitted per stage and day.",
        _cols(
            "call_date DATE NOT NULL",
            ("stage VARCHAR NOT NULL", "The stage counted."),
            (
                "outcome VARCHAR NOT NULL",
                "received, validated, quarantined, admitted, excluded, published, ...",
            ),
            ("reason VARCHAR", "The reason of a quarantine or exclusion."),
            "rows BIGINT NOT NULL",
            "recorded_at TIMESTAMPTZ NOT NULL",
        ),
        Retention.AGGREGATES,
        (_w(ANALYTICS, "row_accounting"),),
    ),
    Table(
        ANALYTICS,
        "retention_log",
        "One row per table per retention sweep: what was deleted (counts only).",
        _cols(
            "swept_at TIMESTAMPTZ NOT NULL",
            "run_id VARCHAR NOT NULL",
            ("as_of DATE NOT NULL", "The date the retention was counted from."),
            ("zone VARCHAR NOT NULL", "The retention zone of the table."),
            ("table_name VARCHAR NOT NULL", "The table swept."),
            ("retention_days INTEGER NOT NULL", "The zone's retention in days (0: forever)."),
            ("cutoff DATE", "The oldest day kept (NULL: kept forever)."),
            ("rows_deleted BIGINT NOT NULL", "Rows deleted."),
        ),
        Retention.KEPT,
        (_SWEEP, _PARTITION_SWEEP),
        kept_because=_EVIDENCE,
    ),
    Table(
        ANALYTICS,
        "reidentification_risk",
        "Re-identification risk per candidate dataset of the shareable zone and day.",
        _cols(
            "call_date DATE NOT NULL",
            "dataset VARCHAR NOT NULL",
            ("measure VARCHAR NOT NULL", "group_size, share_below_k or unicity."),
            ("parameter INTEGER", "k, the group size, or p points, by measure."),
            ("parameter_upper INTEGER", "Upper end of a range of group sizes."),
            ("value DOUBLE", "The measured value."),
            ("subscribers BIGINT", "Subscribers the value is about."),
            ("sampled BIGINT", "Subscribers sampled for unicity."),
            ("margin_95 DOUBLE", "95% sampling error of a unicity estimate."),
            ("applicable BOOLEAN NOT NULL", "False when the measure does not apply."),
            ("dataset_rows BIGINT NOT NULL", "Rows of the dataset measured."),
            "recorded_at TIMESTAMPTZ NOT NULL",
        ),
        Retention.KEPT,
        (_w(ANALYTICS, "reidentification_risk"),),
        kept_because=_EVIDENCE,
    ),
    Table(
        ANALYTICS,
        "shareable_publications",
        "The latest publication decision per partition and dataset.",
        _cols(
            "call_date DATE NOT NULL",
            "dataset VARCHAR NOT NULL",
            ("decision VARCHAR NOT NULL", "published, withheld or withdrawn."),
            ("reasons VARCHAR", "Why a dataset was withheld."),
            ("published_rows BIGINT NOT NULL", "Rows copied to the shareable zone."),
            ("withdrawn_rows BIGINT NOT NULL", "Rows of an earlier copy withdrawn."),
            "recorded_at TIMESTAMPTZ NOT NULL",
        ),
        Retention.KEPT,
        (_w(ANALYTICS, "shareable_publications"),),
        kept_because=_EVIDENCE,
    ),
    Table(
        ANALYTICS,
        "fairness_rates",
        "The pipeline's own fairness: rates per measure and caller group (counts only).",
        _cols(
            "call_date DATE NOT NULL",
            ("measure VARCHAR NOT NULL", "quarantine, consent exclusion or suppression."),
            ("country VARCHAR NOT NULL", "ISO country of the group's numbers."),
            ("number_type VARCHAR NOT NULL", "Number type of the group."),
            ("rows BIGINT NOT NULL", "Rows of the group."),
            ("affected BIGINT NOT NULL", "Rows of the group the measure affected."),
            ("rate DOUBLE", "affected / rows."),
            ("rest_rate DOUBLE", "The rate of all other groups."),
            ("overall_rate DOUBLE", "The rate of all groups."),
            ("ratio_to_rest DOUBLE", "rate / rest_rate."),
            ("flagged BOOLEAN NOT NULL", "True when the group is treated markedly worse."),
        ),
        Retention.KEPT,
        (_w(ANALYTICS, "fairness_rates"),),
        kept_because=_EVIDENCE,
    ),
    Table(
        ANALYTICS,
        "privacy_budget_ledger",
        "One row per differentially private publication: the subscriber-day budget it spent.",
        _cols(
            "call_date DATE NOT NULL",
            ("output VARCHAR NOT NULL", "The published output."),
            ("epsilon DOUBLE NOT NULL", "Epsilon spent."),
            ("delta DOUBLE NOT NULL", "Delta spent."),
            ("budget_per_day DOUBLE NOT NULL", "The day's total budget."),
            ("mechanism VARCHAR NOT NULL", "The noise mechanism."),
            "run_id VARCHAR NOT NULL",
            "recorded_at TIMESTAMPTZ NOT NULL",
        ),
        Retention.KEPT,
        tuple(aggregate.writer for aggregate in _AGGREGATE_TABLES),
        kept_because="the spends of a day's privacy budget must stay accountable",
    ),
    Table(
        ANALYTICS,
        "pseudonym_key_periods",
        "Which key version each published partition's pseudonyms use.",
        _cols(
            "call_date DATE NOT NULL",
            ("key_version INTEGER", "The key version of the partition's pseudonyms."),
            ("rows BIGINT NOT NULL", "Pseudonymised rows of the partition."),
            ("note VARCHAR", "Why a partition still uses an older key after a rotation."),
            "recorded_at TIMESTAMPTZ NOT NULL",
        ),
        Retention.KEPT,
        (_PSEUDONYMIZE,),
        kept_because="which key reads each partition: key versions, no person",
    ),
)

# --- the compliance zone: findings by pseudonym ---------------------------------------------------

_COMPLIANCE_TABLES = (
    Table(
        COMPLIANCE,
        "contact_pressure",
        "Calls per callee and day over the rolling 24 h and 7 d caps, overall and per campaign.",
        _cols(
            "call_date DATE NOT NULL",
            "callee_pseudonym VARCHAR NOT NULL",
            ("scope VARCHAR NOT NULL", "all (every call) or campaign (one campaign's calls)."),
            "campaign_id VARCHAR",
            ("calls BIGINT NOT NULL", "Calls to the callee that day."),
            ("max_calls_24h BIGINT NOT NULL", "Most calls in any 24 hours up to a call."),
            ("max_calls_7d BIGINT NOT NULL", "Most calls in any 7 days up to a call."),
            ("over_24h_cap BOOLEAN NOT NULL", "True when above the 24 h cap."),
            ("over_7d_cap BOOLEAN NOT NULL", "True when above the 7 d cap."),
        ),
        Retention.PSEUDONYMIZED,
        (_w(COMPLIANCE, "contact_pressure"),),
    ),
    Table(
        COMPLIANCE,
        "quiet_hours",
        "Calls per callee and day by whether they fell in the callee's permitted window.",
        _cols(
            "call_date DATE NOT NULL",
            "callee_pseudonym VARCHAR NOT NULL",
            "campaign_id VARCHAR",
            ("window_status VARCHAR NOT NULL", "permitted, outside_window or unknown."),
            ("calls BIGINT NOT NULL", "Calls with that status."),
        ),
        Retention.PSEUDONYMIZED,
        (_w(COMPLIANCE, "quiet_hours"),),
    ),
    Table(
        COMPLIANCE,
        "abandonment_rates",
        "Abandoned / live-answered calls per campaign and day.",
        _cols(
            "call_date DATE NOT NULL",
            "campaign_id VARCHAR",
            ("live_answered_calls BIGINT NOT NULL", "Calls answered or abandoned."),
            ("abandoned_calls BIGINT NOT NULL", "Calls abandoned."),
            ("abandonment_rate DOUBLE", "abandoned / live-answered calls."),
            ("over_limit BOOLEAN NOT NULL", "True when strictly above the limit."),
        ),
        Retention.AGGREGATES,
        (_w(COMPLIANCE, "abandonment_rates"),),
    ),
    Table(
        COMPLIANCE,
        "dnc_call_findings",
        "Calls to a callee at or after their do-not-call listing.",
        _cols(
            "call_date DATE NOT NULL",
            "callee_pseudonym VARCHAR NOT NULL",
            "campaign_id VARCHAR",
            ("calls BIGINT NOT NULL", "Calls after the listing that day."),
            ("first_call_at TIMESTAMPTZ NOT NULL", "The first such call."),
            ("listed_since TIMESTAMPTZ NOT NULL", "When the number was listed."),
        ),
        Retention.PSEUDONYMIZED,
        (_w(COMPLIANCE, "dnc_call_findings"),),
    ),
)

# --- the shareable zone: risk-gated copies of analytics tables ------------------------------------

_SHARED_DATASETS = ("calls_pseudonymized", "call_volume_hourly", "call_volume_by_country")


def _shareable_copy(source: Table) -> Table:
    return replace(
        source,
        zone=SHAREABLE,
        description=f"Risk-gated copy of analytics.{source.name}: the partitions whose measured "
        "re-identification risk passed the gate.",
        writers=(_w(SHAREABLE, source.name),),
        copy_of=source.name,
    )


TABLES: tuple[Table, ...] = (
    _RESTRICTED_TABLES
    + _ANALYTICS_TABLES
    + _COMPLIANCE_TABLES
    + tuple(_shareable_copy(t) for t in _ANALYTICS_TABLES if t.name in _SHARED_DATASETS)
)


# --- lookups --------------------------------------------------------------------------------------


# The published aggregates of the analytics zone (not their shareable copies).
AGGREGATES: tuple[Table, ...] = tuple(t for t in TABLES if t.cell_keys and t.zone == ANALYTICS)


def zone_tables(zone: str) -> tuple[Table, ...]:
    return tuple(table for table in TABLES if table.zone == zone)


def table(zone: str, name: str) -> Table:
    for entry in TABLES:
        if entry.zone == zone and entry.name == name:
            return entry
    raise KeyError(f"no table {name} in the {zone} zone")


def lookup(qualified: str) -> Table:
    """The table named as a restricted connection names it: `zone.table`, `zone.main.table`,
    `main.table` or a bare restricted table."""
    parts = qualified.split(".")
    if len(parts) == 3:
        parts = [parts[0], parts[2]]
    if len(parts) == 2:
        zone, name = parts
        return table(RESTRICTED if zone == "main" else zone, name)
    return table(RESTRICTED, parts[0])


def ddl_by_table(zone: str) -> dict[str, str]:
    """Table -> the column list of its CREATE TABLE, for one zone (what warehouse creates)."""
    return {entry.name: entry.ddl() for entry in zone_tables(zone)}


def column_descriptions(qualified: str) -> dict[str, str]:
    return {column.name: column.description for column in lookup(qualified).columns}


def column_types(qualified: str) -> dict[str, str]:
    """Column -> DuckDB type, in order, of one table (`zone.table` or a bare restricted name)."""
    return {column.name: column.type for column in lookup(qualified).columns}


def people_tables(held: People = People.NUMBERS | PSEUDONYMS) -> tuple[Table, ...]:
    """The tables holding any of `held` about people."""
    return tuple(entry for entry in TABLES if entry.people & held)


def number_columns(zone: str = RESTRICTED) -> dict[str, tuple[str, ...]]:
    """Table -> its columns holding phone numbers, for the tables of `zone` that have any."""
    found = {
        entry.name: tuple(c.name for c in entry.columns if c.people & People.NUMBERS)
        for entry in zone_tables(zone)
    }
    return {name: columns for name, columns in found.items() if columns}


def retention_tables() -> dict[str, tuple[str, ...]]:
    """The day-partitioned tables each retention zone sweeps, by qualified name."""
    return {
        retention.value: tuple(
            entry.qualified
            for entry in TABLES
            if entry.retention is retention and entry.partition is not None
        )
        for retention in SWEPT
    }


def shareable_tables() -> tuple[Table, ...]:
    return zone_tables(SHAREABLE)


# --- printing -------------------------------------------------------------------------------------


def _writer_text(entry: Table) -> str:
    return ", ".join("/".join(path) for path in entry.writers)


def _retention_text(entry: Table) -> str:
    if entry.retention in SWEPT:
        return f"{entry.retention.value} (swept by day)"
    if entry.retention is Retention.REFERENCED:
        return "kept while a kept row refers to it"
    return f"{entry.retention.value}: {entry.kept_because}"


def render_text(tables: Iterable[Table] = TABLES) -> str:
    """The catalog, readable in a terminal."""
    lines: list[str] = []
    for entry in tables:
        lines += [
            f"{entry.zone}.{entry.name}: {entry.description}",
            f"  partition: {entry.partition or '-'}   people: {entry.people.label}   "
            f"retention: {_retention_text(entry)}",
            f"  shareable: {'yes, copy of analytics.' + entry.copy_of if entry.copy_of else 'no'}"
            f"   written by: {_writer_text(entry)}",
        ]
        if entry.primary_key:
            lines.append(f"  primary key: ({', '.join(entry.primary_key)})")
        if entry.erasure_exempt:
            lines.append(f"  kept on erasure: {entry.erasure_exempt}")
        width = max(len(c.name) for c in entry.columns)
        type_width = max(len(c.ddl()) - len(c.name) - 1 for c in entry.columns)
        for column in entry.columns:
            declared = column.ddl()[len(column.name) + 1 :]
            lines.append(
                f"    {column.name:<{width}}  {declared:<{type_width}}  {column.description}"
            )
        lines.append("")
    return "\n".join(lines)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """The README's tables: every table of every zone, then what retention sweeps."""
    lines = [
        "| zone | table | partition | people | retention | shareable | written by | holds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in TABLES:
        shared = f"copy of `analytics.{entry.copy_of}`" if entry.copy_of else "no"
        lines.append(
            f"| {entry.zone} | `{entry.name}` | {entry.partition or '-'} | "
            f"{entry.people.label} | {_md(_retention_text(entry))} | {shared} | "
            f"`{_writer_text(entry)}` | {_md(entry.description)} |"
        )
    return "\n".join(lines) + "\n"


def render_retention_markdown() -> str:
    """The README's retention table: the tables each retention zone sweeps by day."""
    # Imported here: domain/retention.py derives its tables from this module.
    from phone_pipeline.domain.retention import RETENTION_SETTING_NAMES, RETENTION_SETTINGS
    from phone_pipeline.settings import default

    defaults = {zone: default(name) for zone, name in RETENTION_SETTING_NAMES.items()}
    lines = ["| zone | tables | setting (default) |", "| --- | --- | --- |"]
    for zone, tables in retention_tables().items():
        names = ", ".join(f"`{name}`" for name in tables)
        lines.append(f"| {zone} | {names} | `{RETENTION_SETTINGS[zone]}` ({defaults[zone]}) |")
    return "\n".join(lines) + "\n"


def readme_blocks() -> dict[str, str]:
    """The README's generated blocks, by the name of their markers
    (`<!-- catalog:NAME begin ... -->` ... `<!-- catalog:NAME end -->`)."""
    return {"tables": render_markdown(), "retention": render_retention_markdown()}


def _block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- catalog:{name} begin[^>]*-->\n)(.*?)(<!-- catalog:{name} end -->)", re.S
    )


def readme_block(text: str, name: str) -> str | None:
    """The current content of one generated block of a README text (None: no such block)."""
    match = _block_pattern(name).search(text)
    return match[2] if match else None


def update_readme(text: str) -> str:
    """The README text with every generated block regenerated."""
    for name, block in readme_blocks().items():
        text = _block_pattern(name).sub(lambda m, b=block: m[1] + b + m[3], text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m phone_pipeline.catalog", description="Print the table catalog."
    )
    parser.add_argument("--markdown", action="store_true", help="the README's Markdown tables")
    parser.add_argument("--zone", choices=ZONES, help="only the tables of one zone")
    parser.add_argument(
        "--update-readme", metavar="PATH", type=Path, help="regenerate the README's tables in place"
    )
    args = parser.parse_args(argv)
    if args.update_readme:
        text = args.update_readme.read_text(encoding="utf-8")
        args.update_readme.write_text(update_readme(text), encoding="utf-8")
        return
    if args.markdown:
        print(render_markdown())
        print(render_retention_markdown(), end="")
        return
    print(render_text(zone_tables(args.zone) if args.zone else TABLES), end="")


if __name__ == "__main__":
    main()
