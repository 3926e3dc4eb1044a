"""Call-log formats other systems write, mapped onto our call data contract by declarative profiles.

A profile is plain data (no code per format): which source column feeds each contract column,
whether the file has a header row, how its times are written and in which time zone, how its
outcomes map onto our dispositions, what an internal extension looks like, and where a call id
comes from when the source has none (a stable hash of the row's fields and the file's name).
Built-in profiles: `asterisk` (cdr_csv's Master.csv), `freeswitch` (mod_cdr_csv's default
`example` template) and `twilio` (the console's call-log CSV export). `sources.yaml` in the data
home sets their time zones, overrides their keys and adds custom profiles.

Local times that a time zone skips or repeats (daylight saving changes) follow one rule, counted
per file: a time that does not exist (in the gap of a spring-forward change) is read with the
offset in force before the change, i.e. shifted forward by the gap (02:30 in Berlin on
2026-03-29 is 03:30 CEST, 01:30 UTC); a time that occurs twice (a fall-back change) is read as
its first occurrence, the earlier instant (02:30 in Berlin on 2026-10-25 is 02:30 CEST, 00:30 UTC).
Both are what Python's `fold=0` gives.
"""

from __future__ import annotations

import csv
import datetime as dt
import email.utils
import gzip
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phone_pipeline.domain.contract import CALL_OPTIONAL_COLUMNS, CALL_REQUIRED_COLUMNS
from phone_pipeline.domain.redaction import redact
from phone_pipeline.domain.timestamps import MAX_UTC_OFFSET_HOURS
from phone_pipeline.domain.validation import DISPOSITIONS

SOURCES_FILE = "sources.yaml"
# Time formats with a name; anything else is a strptime pattern.
ISO8601 = "iso8601"
RFC2822 = "rfc2822"
_PBX_FORMAT = "%Y-%m-%d %H:%M:%S"  # Asterisk's and FreeSWITCH's
# The contract columns a profile may fill; call_id may come from the hash rule instead.
MAPPED_COLUMNS = CALL_REQUIRED_COLUMNS + CALL_OPTIONAL_COLUMNS
NEEDED_COLUMNS = tuple(name for name in CALL_REQUIRED_COLUMNS if name != "call_id")
# Which end of a call is an internal extension (raw_calls.internal_extension).
CALLER, CALLEE, BOTH = "caller", "callee", "both"
# How a time was read: as written, or by the daylight-saving rule above.
NONEXISTENT, AMBIGUOUS = "nonexistent", "ambiguous"
_PROFILE_KEYS = frozenset(
    {"base", "header", "fields", "min_fields", "columns", "time_format", "time_zone",
     "dispositions", "when_empty", "internal_extension"}
)  # fmt: skip


class ProfileError(ValueError):
    """A profile or `sources.yaml` that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class CallProfile:
    """How one source's CSV maps onto the call contract (see the module's docstring)."""

    name: str
    header: bool
    columns: Mapping[str, str]  # contract column -> source column (header name or field name)
    time_formats: tuple[str, ...]
    time_zone: str | None  # an IANA name; None: not set (a profile of local times needs one)
    fields: tuple[str, ...] = ()  # headerless files: the source's columns by position
    min_fields: int = 0  # headerless files: rows may omit trailing fields down to this many
    dispositions: Mapping[str, str] = field(default_factory=dict)  # source value -> ours
    when_empty: Mapping[str, str] = field(default_factory=dict)  # contract column -> value
    internal_extension: str | None = None  # a regex a whole number value matches

    def describe(self) -> dict[str, Any]:
        """The mapping as shown in the ingest asset's metadata: configuration, no row values
        (redacted all the same: users write custom profiles)."""
        return _redacted(
            {
                "header": self.header,
                "columns": dict(self.columns),
                "call_id": (
                    f"column {self.columns['call_id']}; where a file has no such column, "
                    + _HASH_RULE
                    if "call_id" in self.columns
                    else _HASH_RULE
                ),
                "time_formats": list(self.time_formats),
                "time_zone": self.time_zone,
                "dispositions": dict(self.dispositions),
                "when_empty": dict(self.when_empty),
                "internal_extension": self.internal_extension,
            }
        )


_HASH_RULE = "row- and sha256 of the file's name and the row's fields"


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


# --- the built-in profiles, as plain data ---------------------------------------------------------

_ASTERISK_FIELDS = [
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    # written with loguniqueid, loguserfield, newcdrcolumns (cdr.conf [csv]), in this order
    "uniqueid", "userfield", "peeraccount", "linkedid", "sequence",
]  # fmt: skip
# Extensions of a PBX's dial plan: short digit strings, never a valid E.164 number.
_EXTENSION = "[0-9]{2,5}"

BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    # cdr_csv (Asterisk): no header; strings quoted, duration and billsec bare integers, an
    # unset time (answer of an unanswered call) an empty field; times in the PBX's local zone
    # (UTC with usegmtime=yes). billsec is the talk time: our duration_seconds.
    "asterisk": {
        "header": False,
        "fields": _ASTERISK_FIELDS,
        "min_fields": 16,
        "columns": {
            "call_id": "uniqueid",  # only with loguniqueid=yes; without it, the hash rule
            "caller_number": "src",
            "callee_number": "dst",
            "started_at": "start",
            "duration_seconds": "billsec",
            "disposition": "disposition",
        },
        "time_format": _PBX_FORMAT,
        "dispositions": {
            "ANSWERED": "answered",
            "NO ANSWER": "no_answer",
            "BUSY": "busy",
            "FAILED": "failed",
            "CONGESTION": "failed",
        },
        "internal_extension": _EXTENSION,
    },
    # mod_cdr_csv (FreeSWITCH), template "example" of conf/vanilla/autoload_configs/
    # cdr_csv.conf.xml: no header, every field quoted, stamps in the switch's local zone.
    "freeswitch": {
        "header": False,
        "fields": [
            "caller_id_name",
            "caller_id_number",
            "destination_number",
            "context",
            "start_stamp",
            "answer_stamp",
            "end_stamp",
            "duration",
            "billsec",
            "hangup_cause",
            "uuid",
            "bleg_uuid",
            "accountcode",
            "read_codec",
            "write_codec",
        ],  # fmt: skip
        "min_fields": 15,
        "columns": {
            "call_id": "uuid",
            "caller_number": "caller_id_number",
            "callee_number": "destination_number",
            "started_at": "start_stamp",
            "duration_seconds": "billsec",
            "disposition": "hangup_cause",
        },
        "time_format": _PBX_FORMAT,
        # Q.850 hangup causes; others stay as written and are quarantined as unknown_disposition.
        "dispositions": {
            "NORMAL_CLEARING": "answered",
            "USER_BUSY": "busy",
            "NO_ANSWER": "no_answer",
            "NO_USER_RESPONSE": "no_answer",
            "ORIGINATOR_CANCEL": "no_answer",
            "CALL_REJECTED": "failed",
            "UNALLOCATED_NUMBER": "failed",
            "NORMAL_TEMPORARY_FAILURE": "failed",
            "NO_ROUTE_DESTINATION": "failed",
            "RECOVERY_ON_TIMER_EXPIRE": "failed",
        },
        "internal_extension": _EXTENSION,
    },
    # Twilio's call-log CSV (console export; the Call resource's properties as columns: Sid,
    # DateCreated, DateUpdated, ParentCallSid, AccountSid, To, ToFormatted, From, FromFormatted,
    # PhoneNumberSid, Status, StartTime, EndTime, Duration, Price, PriceUnit, Direction,
    # AnsweredBy, ...). Times in UTC (RFC 2822 "+0000" or ISO 8601); Duration is empty for busy,
    # failed and unanswered calls: 0.
    "twilio": {
        "header": True,
        "columns": {
            "call_id": "Sid",
            "caller_number": "From",
            "callee_number": "To",
            "started_at": "StartTime",
            "duration_seconds": "Duration",
            "disposition": "Status",
        },
        "time_format": [RFC2822, ISO8601],
        "time_zone": "UTC",
        "dispositions": {
            "completed": "answered",
            "busy": "busy",
            "no-answer": "no_answer",
            "canceled": "no_answer",
            "failed": "failed",
        },
        "when_empty": {"duration_seconds": "0"},
    },
}


# --- reading profiles from plain data (built-ins and sources.yaml) -------------------------------


def _where(source: str, name: str, key: str | None = None) -> str:
    return f"{source}: profiles.{name}" + (f".{key}" if key else "")


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str | int) and isinstance(v, str | int) for k, v in value.items()
    ):
        raise ProfileError(f"{where}: expected a mapping of text to text")
    return {str(k): str(v) for k, v in value.items()}


def build_profile(name: str, spec: Mapping[str, Any], source: str = "built-in") -> CallProfile:
    """A profile from its plain-data form; raises ProfileError naming `source` and the field."""
    unknown = sorted(set(spec) - _PROFILE_KEYS)
    if unknown:
        raise ProfileError(
            f"{_where(source, name, unknown[0])}: unknown key; known keys are "
            + ", ".join(sorted(_PROFILE_KEYS))
        )
    header = spec.get("header", True)
    if not isinstance(header, bool):
        raise ProfileError(f"{_where(source, name, 'header')}: expected true or false")
    fields = spec.get("fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
        raise ProfileError(f"{_where(source, name, 'fields')}: expected a list of column names")
    if not header and not fields:
        raise ProfileError(
            f"{_where(source, name, 'fields')}: a file without a header row needs its columns "
            "named by position (fields: [...])"
        )
    min_fields = spec.get("min_fields", len(fields))
    if fields and (not isinstance(min_fields, int) or not 0 < min_fields <= len(fields)):
        raise ProfileError(
            f"{_where(source, name, 'min_fields')}: expected a number from 1 to {len(fields)}"
        )
    columns = _string_map(spec.get("columns", {}), _where(source, name, "columns"))
    for column in columns:
        if column not in MAPPED_COLUMNS:
            raise ProfileError(
                f"{_where(source, name, f'columns.{column}')}: not a column of the call "
                f"contract ({', '.join(MAPPED_COLUMNS)})"
            )
    for column in NEEDED_COLUMNS:
        if column not in columns:
            raise ProfileError(
                f"{_where(source, name, f'columns.{column}')}: missing; say which source "
                f"column holds {column}"
            )
    if not header:
        for column, source_column in columns.items():
            if source_column not in fields:
                raise ProfileError(
                    f"{_where(source, name, f'columns.{column}')}: {source_column!r} is not "
                    "one of the profile's fields"
                )
    formats = spec.get("time_format", ISO8601)
    formats = [formats] if isinstance(formats, str) else formats
    if (
        not isinstance(formats, list)
        or not formats
        or not all(isinstance(f, str) and (f in (ISO8601, RFC2822) or "%" in f) for f in formats)
    ):
        raise ProfileError(
            f"{_where(source, name, 'time_format')}: expected {ISO8601}, {RFC2822} or a strptime "
            "pattern such as '%Y-%m-%d %H:%M:%S' (or a list of them, tried in order)"
        )
    zone = spec.get("time_zone")
    if zone is not None:
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ProfileError(
                f"{_where(source, name, 'time_zone')}: {zone!r} is no IANA time zone name "
                "(such as Europe/Berlin or UTC)"
            ) from None
    dispositions = _string_map(spec.get("dispositions", {}), _where(source, name, "dispositions"))
    for value, ours in dispositions.items():
        if ours not in DISPOSITIONS:
            raise ProfileError(
                f"{_where(source, name, f'dispositions.{value}')}: {ours!r} is not one of "
                f"{', '.join(DISPOSITIONS)}"
            )
    when_empty = _string_map(spec.get("when_empty", {}), _where(source, name, "when_empty"))
    for column in when_empty:
        if column not in MAPPED_COLUMNS:
            raise ProfileError(
                f"{_where(source, name, f'when_empty.{column}')}: not a column of the call contract"
            )
    extension = spec.get("internal_extension")
    if extension is not None:
        try:
            re.compile(str(extension))
        except re.error as error:
            raise ProfileError(
                f"{_where(source, name, 'internal_extension')}: not a regular expression: {error}"
            ) from None
    return CallProfile(
        name=name,
        header=header,
        columns=columns,
        time_formats=tuple(formats),
        time_zone=None if zone is None else str(zone),
        fields=tuple(fields),
        min_fields=min_fields,
        dispositions={key.strip().upper(): value for key, value in dispositions.items()},
        when_empty=when_empty,
        internal_extension=None if extension is None else str(extension),
    )


def load_profiles(sources_file: Path | None = None) -> dict[str, CallProfile]:
    """The built-in profiles, with what `sources_file` (sources.yaml) sets over them and its
    custom profiles. A missing file leaves the built-ins as they are."""
    import yaml  # only where a profile is read: a module import would cost every process

    specs: dict[str, tuple[dict[str, Any], str]] = {
        name: (dict(spec), "built-in") for name, spec in BUILTIN_PROFILES.items()
    }
    if sources_file is not None and sources_file.is_file():
        label = sources_file.name
        try:
            document = yaml.safe_load(sources_file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            where = getattr(error, "problem_mark", None)
            line = f" (line {where.line + 1})" if where is not None else ""
            raise ProfileError(f"{label}: not valid YAML{line}") from None
        document = {} if document is None else document
        if not isinstance(document, dict) or set(document) - {"profiles"}:
            raise ProfileError(f"{label}: expected one key, profiles: (a mapping of profiles)")
        profiles = document.get("profiles") or {}
        if not isinstance(profiles, dict):
            raise ProfileError(f"{label}: profiles: expected a mapping of profile names")
        for name, spec in profiles.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise ProfileError(
                    f"{label}: profiles.{name}: a profile name is a folder name under "
                    "landing/calls: letters, digits, _ and -"
                )
            spec = spec or {}
            if not isinstance(spec, dict):
                raise ProfileError(f"{label}: profiles.{name}: expected a mapping")
            base = spec.get("base", name if name in BUILTIN_PROFILES else None)
            if base is not None and base not in BUILTIN_PROFILES:
                raise ProfileError(
                    f"{label}: profiles.{name}.base: {base!r} is no built-in profile "
                    f"({', '.join(BUILTIN_PROFILES)})"
                )
            merged = dict(BUILTIN_PROFILES[base]) if base else {}
            for key, value in spec.items():
                # Mappings (columns, dispositions, when_empty) are merged key by key.
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                elif key != "base":
                    merged[key] = value
            specs[name] = (merged, label)
    return {name: build_profile(name, spec, source) for name, (spec, source) in specs.items()}


# --- reading a file with a profile ----------------------------------------------------------------


@dataclass
class MappedFile:
    """A file's rows in contract columns (text), each with its UTC start, plus what was counted."""

    rows: dict[
        str, list[Any]
    ]  # column -> values, MAPPED_COLUMNS + started_at_utc, internal_extension
    nonexistent_times: int = 0
    ambiguous_times: int = 0

    @property
    def row_count(self) -> int:
        return len(self.rows["started_at"])


def _open_text(path: Path) -> TextIO:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _is_pbx_time(value: str) -> bool:
    return (
        len(value) == 19
        and value.isascii()
        and value[4] == value[7] == "-"
        and value[10] == " "
        and value[13] == value[16] == ":"
        and value.replace("-", "").replace(":", "").replace(" ", "").isdigit()
    )


def parse_time(
    text: str | None, formats: tuple[str, ...], zone: ZoneInfo | None
) -> tuple[dt.datetime | None, str | None]:
    """The UTC instant of a time as written, and NONEXISTENT / AMBIGUOUS when a local time fell
    on a daylight-saving change (resolved by the module's rule); (None, None) when unreadable.
    A time with an offset keeps it; a naive time is read in `zone` (unreadable without one)."""
    value = (text or "").strip()
    if not value:
        return None, None
    for time_format in formats:
        try:
            if time_format == _PBX_FORMAT and _is_pbx_time(value):
                # fromisoformat reads exactly this shape, 10x faster than strptime.
                parsed = dt.datetime.fromisoformat(value)
            elif time_format == ISO8601:
                parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif time_format == RFC2822:
                parsed = email.utils.parsedate_to_datetime(value)
            else:
                parsed = dt.datetime.strptime(value, time_format)
        except (ValueError, TypeError, IndexError):
            continue
        break
    else:
        return None, None
    if parsed.tzinfo is not None:
        offset = parsed.utcoffset()
        if offset is None or abs(offset) > dt.timedelta(hours=MAX_UTC_OFFSET_HOURS):
            return None, None
        return parsed.astimezone(dt.UTC), None
    if zone is None:
        return None, None
    first = parsed.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(dt.UTC)
    if first.utcoffset() == parsed.replace(tzinfo=zone, fold=1).utcoffset():
        return instant, None  # the usual case: one offset, no change at this time
    if instant.astimezone(zone).replace(tzinfo=None) != parsed:
        return instant, NONEXISTENT  # fold=0: the offset before the change, i.e. shifted forward
    return instant, AMBIGUOUS  # fold=0: the first occurrence


def row_call_id(file_name: str, fields: list[str]) -> str:
    """The call id of a row whose source has none: stable across runs, distinct per file."""
    digest = hashlib.sha256("\x1f".join([file_name, *fields]).encode("utf-8")).hexdigest()
    return f"row-{digest[:32]}"


def _positions(profile: CallProfile, name: str, header: list[str]) -> dict[str, int]:
    """Source column -> position: by the header (case-insensitive) or by the profile's fields;
    raises ProfileError naming the file and column when a mapped column is not there."""
    if not profile.header:
        return {field_name: index for index, field_name in enumerate(profile.fields)}
    found: dict[str, int] = {}
    for index, column in enumerate(header):
        found.setdefault(column.strip().lower(), index)
    positions = {}
    for contract_column, source_column in profile.columns.items():
        if source_column.strip().lower() not in found:
            if contract_column == "call_id":
                continue  # no id column: the hash rule
            raise ProfileError(
                f"{name}: profile {profile.name}: column {source_column!r} (mapped to "
                f"{contract_column}) is not in the file's header row"
            )
        positions[source_column] = found[source_column.strip().lower()]
    return positions


def map_file(path: Path, name: str, profile: CallProfile) -> MappedFile:
    """Read `path` (called `name`, its path under landing/calls) with `profile` into contract
    columns. Raises ProfileError for what makes the whole file unreadable with this profile (a
    mapped column missing from the header, a row of the wrong width, a naive time without a
    zone set), naming the file and column or row; OSError, UnicodeDecodeError, csv.Error as
    Python's readers raise them."""
    if name.lower().endswith(".parquet"):
        raise ProfileError(f"{name}: profile {profile.name} reads CSV files (.csv, .csv.gz)")
    zone = ZoneInfo(profile.time_zone) if profile.time_zone else None
    needs_zone = zone is None and any(f not in (ISO8601, RFC2822) for f in profile.time_formats)
    if needs_zone:
        raise ProfileError(
            f"{name}: profile {profile.name} has no time zone for its local times: set "
            f"profiles.{profile.name}.time_zone in {SOURCES_FILE} in the data home (an IANA name "
            "such as Europe/Berlin, or UTC when the system logs in UTC)"
        )
    extension = re.compile(profile.internal_extension) if profile.internal_extension else None
    out: dict[str, list[Any]] = {
        column: [] for column in (*MAPPED_COLUMNS, "started_at_utc", "internal_extension")
    }
    mapped = MappedFile(out)
    cache: dict[str, tuple[dt.datetime | None, str | None]] = {}
    dispositions = profile.dispositions
    width = (profile.min_fields, len(profile.fields))
    positions: dict[str, int] | None = None
    # Per contract column: (its values, the source's position or None, the value when empty).
    copied: list[tuple[list[Any], int | None, str | None]] = []
    id_position: int | None = None
    disposition_position = 0
    call_ids, started_at_utc, internal = (
        out["call_id"],
        out["started_at_utc"],
        out["internal_extension"],
    )
    callers, callees = out["caller_number"], out["callee_number"]
    started_at, disposition_values = out["started_at"], out["disposition"]
    with _open_text(path) as handle:
        number = 0
        for fields in csv.reader(handle, strict=True):
            if not fields:
                continue  # a blank line is no row
            if positions is None:
                positions = _positions(profile, name, fields)
                if profile.header:
                    width = (max(positions.values()) + 1, len(fields))

                def position(column: str) -> int | None:
                    source = profile.columns.get(column)
                    return positions.get(source) if source else None  # noqa: B023

                copied = [
                    (out[column], position(column), profile.when_empty.get(column))
                    for column in MAPPED_COLUMNS
                    if column not in ("call_id", "disposition")
                ]
                id_position = position("call_id")
                disposition_position = position("disposition")
                if profile.header:
                    continue
            number += 1
            count = len(fields)
            if not width[0] <= count <= width[1]:
                raise ProfileError(
                    f"{name}: row {number} has {count} fields; profile {profile.name} "
                    f"expects {width[0]} to {width[1]}"
                )
            for values, at, when_empty in copied:
                value = fields[at] if at is not None and at < count else None
                values.append(when_empty if not value and when_empty is not None else value)
            # No id column in the profile or in this row (Asterisk without loguniqueid): hashed.
            if id_position is None or id_position >= count:
                call_ids.append(row_call_id(name, fields))
            else:
                call_ids.append(fields[id_position] or profile.when_empty.get("call_id"))
            disposition = fields[disposition_position] if disposition_position < count else None
            if disposition:
                disposition = dispositions.get(disposition.strip().upper(), disposition)
            else:
                disposition = profile.when_empty.get("disposition", disposition)
            disposition_values.append(disposition)
            started = started_at[-1] or ""
            if started not in cache:
                cache[started] = parse_time(started, profile.time_formats, zone)
            instant, resolution = cache[started]
            started_at_utc.append(instant)
            if resolution is not None:
                if resolution == NONEXISTENT:
                    mapped.nonexistent_times += 1
                else:
                    mapped.ambiguous_times += 1
            if extension is None:
                internal.append(None)
                continue
            caller = extension.fullmatch((callers[-1] or "").strip()) is not None
            callee = extension.fullmatch((callees[-1] or "").strip()) is not None
            internal.append(
                BOTH if caller and callee else CALLER if caller else CALLEE if callee else None
            )
    if positions is None and profile.header:
        raise ProfileError(f"{name}: empty file, no header row (profile {profile.name})")
    return mapped


def profile_folder(name: str) -> str | None:
    """The profile a landing file's name (its path under landing/calls) asks for: its folder."""
    parts = name.split("/")
    return parts[0] if len(parts) == 2 else None
