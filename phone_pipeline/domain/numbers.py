"""Phone number normalisation: raw strings -> E.164, country, type, time zones, reason.

Plain Python on top of `phonenumbers` (no Dagster), so it can be unit tested and reused.
Never log or print the numbers themselves: they are personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers.timezone import time_zones_for_geographical_number, time_zones_for_number

NUMBER_COLUMNS: list[str] = [
    "raw_number",
    "e164",
    "country",
    "number_type",
    "time_zones",
    "geo_region",
    "reason",
]
# What each column of a parsed-number map (number_cache, and the day's copy of it) is computed
# from (column lineage): phonenumbers reads the raw string with the default region; a number's
# time zones follow from the number alone.
PARSED_NUMBER_INPUTS: dict[str, tuple[str, ...]] = {
    "raw_number": (),
    "default_region": (),
    **{
        column: ("raw_number", "default_region")
        for column in NUMBER_COLUMNS
        if column not in ("raw_number", "time_zones")
    },
    "time_zones": ("e164",),
}

INVALID_REASONS: tuple[str, ...] = (
    "empty",
    "not_a_number",
    "invalid_country_code",
    "too_short",
    "too_long",
    "impossible_number",
    "invalid_number",
    # Valid for phonenumbers, but longer than E.164 allows (German extensions, 17-digit
    # Indonesian and Japanese toll-free numbers): no E.164 form exists to store, match or dial.
    "too_long_for_e164",
)

# THE rule of what the pipeline calls a number, in one place: phonenumbers finds it valid AND its
# E.164 rendering is within ITU-T E.164's structure ("+", a country code not starting with 0, at
# most 15 digits in all). E.164 sets no minimum; phonenumbers' validity does (Iran's 4-digit UANs
# make 6 digits, +989601). The validator applies it (`e164_problem`), and the gates check stored
# numbers against the same pattern (`E164_REGEX` for Great Expectations, `E164_SQL_PATTERN` for
# DuckDB): a number the validator vouches for always passes its gate.
E164_MAX_DIGITS = 15
E164_SQL_PATTERN = rf"\+[1-9][0-9]{{1,{E164_MAX_DIGITS - 1}}}"  # RE2, for regexp_full_match
E164_REGEX = rf"^{E164_SQL_PATTERN}$"  # Python re, for GX's regex expectations
_E164 = re.compile(E164_SQL_PATTERN)


def e164_problem(e164: str | None) -> str | None:
    """None when `e164` is a number the pipeline's rule admits, else the reason it is not."""
    if e164 is None:
        return "empty"
    if _E164.fullmatch(e164):
        return None
    if e164.startswith("+") and e164[1:].isascii() and e164[1:].isdigit():
        return "too_long_for_e164" if len(e164) - 1 > E164_MAX_DIGITS else "invalid_country_code"
    return "not_a_number"


def is_e164(value: str | None) -> bool:
    """What the gates require of every stored number (the same rule as `e164_problem`)."""
    return value is not None and _E164.fullmatch(value) is not None


# PhoneNumberType is a plain class of int constants: map each to its lower-case name once.
_TYPE_NAMES: dict[int, str] = {
    value: name.lower()
    for name, value in vars(PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}

_PARSE_ERROR_REASONS: dict[int, str] = {
    NumberParseException.INVALID_COUNTRY_CODE: "invalid_country_code",
    NumberParseException.NOT_A_NUMBER: "not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    NumberParseException.TOO_SHORT_NSN: "too_short",
    NumberParseException.TOO_LONG: "too_long",
}

_VR = phonenumbers.ValidationResult
_POSSIBILITY_REASONS: dict[int, str] = {
    # Possible (even only locally, without an area code) but matching no pattern.
    _VR.IS_POSSIBLE: "invalid_number",
    _VR.IS_POSSIBLE_LOCAL_ONLY: "invalid_number",
    _VR.INVALID_COUNTRY_CODE: "invalid_country_code",
    _VR.TOO_SHORT: "too_short",
    _VR.TOO_LONG: "too_long",
    _VR.INVALID_LENGTH: "impossible_number",
}

# phonenumbers' "no idea" answer; we report it as an empty list instead.
_UNKNOWN_TIME_ZONE = "Etc/Unknown"
_UNKNOWN_REGION = "ZZ"

_SEPARATORS = re.compile(r"[\s().\-]+")
_TEL_PREFIX = re.compile(r"^\s*tel:", re.IGNORECASE)
# A leading "00" (separators allowed around it), to be rewritten as "+".
_LEADING_00 = re.compile(r"^[\s().\-]*0[\s().\-]*0")
_NON_DIGITS = re.compile(r"\D+")


@dataclass(frozen=True)
class NumberInfo:
    """Normalised view of one raw number; `reason` is None exactly when the number is valid."""

    raw_number: Any
    e164: str | None = None
    country: str | None = None
    number_type: str | None = None
    # A tuple keeps the frozen dataclass truly immutable; the DataFrame column holds lists.
    time_zones: tuple[str, ...] | None = None
    geo_region: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _RegionRules:
    """What we need to know about the default region, computed once per call."""

    region: str
    idd: re.Pattern[str] | None  # the region's own international (IDD) prefix


def _region_rules(default_region: str) -> _RegionRules:
    region = (default_region or "").strip().upper()
    if region == _UNKNOWN_REGION:
        # "ZZ": only numbers with an explicit country code can be read.
        return _RegionRules(region, None)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        # Fail loudly: a typo here would silently make every national number invalid.
        raise ValueError(f"unsupported default_region {default_region!r}")
    idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
    return _RegionRules(region, idd)


def _is_empty(raw: Any) -> bool:
    # None / NaN / pd.NA (a column read without keep_default_na=False) count as empty too.
    if raw is None or raw is pd.NA:
        return True
    if isinstance(raw, float) and raw != raw:
        return True
    return isinstance(raw, str) and not raw.strip()


def _prepare(raw: str, rules: _RegionRules) -> str:
    """Text handed to phonenumbers.parse: tel: dropped, a leading "00" read as "+".

    The "00" rewrite is skipped when the region's own IDD pattern already matches (Australia
    dials 0011, Brazil 00+carrier code): phonenumbers handles those correctly itself.
    """
    text = _TEL_PREFIX.sub("", raw, count=1)
    match = _LEADING_00.match(text)
    if match is None:
        return text
    if rules.idd is not None:
        digits = _SEPARATORS.sub("", text)
        if rules.idd.match(digits):
            return text
    return "+" + text[match.end() :]


def _group_key(text: str, rules: _RegionRules) -> str:
    """Cheap key that puts numbers of the same country calling code next to each other.

    phonenumbers compiles region patterns through Python's bounded regex cache; interleaving
    regions thrashes it (python-phonenumbers issue 108), so parse one country at a time.
    The first 3 digits after the international prefix suffice: calling codes are prefix-free.
    """
    stripped = text.lstrip(" \t().-")
    if stripped.startswith("+"):
        return "+" + _NON_DIGITS.sub("", stripped)[:3]
    if rules.idd is not None:
        digits = _NON_DIGITS.sub("", stripped)
        match = rules.idd.match(digits)
        if match:
            return "+" + digits[match.end() : match.end() + 3]
    return ""  # national number: read in the default region


class _Describer:
    """Parses prepared texts for one default region, deriving every field from one parse.

    Calls are arranged to avoid phonenumbers repeating its work: `number_type` doubles as the
    validity test (it is UNKNOWN exactly when `is_valid_number` is False, both go through
    `region_code_for_number`), and the country-level time zones of non-geographical numbers
    (most mobiles, toll-free) depend only on the calling code, so they are cached.
    """

    def __init__(self, region: str, with_geo_region: bool) -> None:
        self.region = region
        self.geocoder: Any = None
        if with_geo_region:
            # Lazy on purpose: the geocoder import costs ~270 ms and ~100 MB per process.
            from phonenumbers import geocoder

            self.geocoder = geocoder
        self._zones_by_type: dict[tuple[int, int], tuple[str, ...]] = {}

    def __call__(self, text: str, raw: Any) -> NumberInfo:
        try:
            number = phonenumbers.parse(text, self.region)
        except NumberParseException as exc:
            return NumberInfo(raw, reason=_PARSE_ERROR_REASONS.get(exc.error_type, "not_a_number"))

        ntype = phonenumbers.number_type(number)
        if ntype == PhoneNumberType.UNKNOWN:  # same answer as is_valid_number, one pass less
            reason = _POSSIBILITY_REASONS.get(
                phonenumbers.is_possible_number_with_reason(number), "impossible_number"
            )
            return NumberInfo(raw, reason=reason)

        geographical = phonenumbers.is_number_type_geographical(ntype, number.country_code)
        if geographical:
            zones = self._sorted_zones(time_zones_for_geographical_number(number))
        else:
            key = (number.country_code, ntype)
            zones = self._zones_by_type.get(key)
            if zones is None:
                zones = self._sorted_zones(time_zones_for_number(number))
                self._zones_by_type[key] = zones

        geo_region = None
        if self.geocoder is not None:
            # What geocoder.description_for_number does, minus its own number_type call.
            if geographical:
                geo_region = self.geocoder.description_for_valid_number(number, "en")
            else:
                geo_region = self.geocoder.country_name_for_number(number, "en")
            geo_region = geo_region or None

        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        problem = e164_problem(e164)
        if problem is not None:
            return NumberInfo(raw, reason=problem)

        return NumberInfo(
            raw,
            e164=e164,
            country=phonenumbers.region_code_for_number(number),
            number_type=_TYPE_NAMES.get(ntype, "unknown"),
            time_zones=zones,
            geo_region=geo_region,
            reason=None,
        )

    @staticmethod
    def _sorted_zones(zones: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(z for z in zones if z != _UNKNOWN_TIME_ZONE))


def normalize_number(
    raw: str | None, default_region: str, *, with_geo_region: bool = True
) -> NumberInfo:
    """Normalise a single raw number; national numbers are read in `default_region`."""
    rules = _region_rules(default_region)
    if _is_empty(raw):
        return NumberInfo(raw, reason="empty")
    if not isinstance(raw, str):
        # Ints/floats have already lost leading zeros and "+": refuse instead of guessing.
        raise TypeError(f"raw numbers must be str, got {type(raw).__name__}")
    return _Describer(rules.region, with_geo_region)(_prepare(raw, rules), raw)


def _parse_groups(
    raw_numbers: Iterable[Any], rules: _RegionRules
) -> tuple[list[Any], dict[str, dict[str, list[str]]]]:
    """The empty inputs, and the others by group key (calling code), then by the text handed to
    phonenumbers, each with the distinct raw strings that read as it.

    Deduplicated first (dict keeps first-seen order): each distinct string is parsed once, and
    strings that differ only in separators ("(212) 555-0123", "212.555.0123") share one parse:
    phonenumbers ignores those separators, and logs hold each number in several formats.
    """
    empty: list[Any] = []
    groups: dict[str, dict[str, list[str]]] = {}
    for raw in dict.fromkeys(raw_numbers):
        if _is_empty(raw):
            empty.append(raw)
            continue
        if not isinstance(raw, str):
            raise TypeError(f"raw numbers must be str, got {type(raw).__name__}")
        text = _SEPARATORS.sub("", _prepare(raw, rules))
        groups.setdefault(_group_key(text, rules), {}).setdefault(text, []).append(raw)
    return empty, groups


def parse_slices(raw_numbers: Iterable[str], default_region: str, slices: int) -> list[list[str]]:
    """The distinct strings cut into at most `slices` lists of about as many parses each, for
    separate processes to `normalize_numbers`: strings that share a parse stay together, and a
    calling code's strings are contiguous, so each list touches few regions' patterns."""
    empty, groups = _parse_groups(raw_numbers, _region_rules(default_region))
    texts = [raws for key in sorted(groups) for raws in groups[key].values()]
    size = max(1, -(-len(texts) // max(1, slices)))
    parts = [
        [raw for raws in texts[start : start + size] for raw in raws]
        for start in range(0, len(texts), size)
    ] or [[]]
    parts[0][:0] = empty
    return parts


def normalize_numbers(
    raw_numbers: Iterable[str], default_region: str, *, with_geo_region: bool = True
) -> pd.DataFrame:
    """One row per DISTINCT input string (duplicates parsed once), columns NUMBER_COLUMNS.

    Row order is unspecified (rows come out grouped by country); join back on `raw_number`.
    """
    rules = _region_rules(default_region)
    describe = _Describer(rules.region, with_geo_region)

    columns: dict[str, list[Any]] = {name: [] for name in NUMBER_COLUMNS}
    raw_col = columns["raw_number"]
    e164_col = columns["e164"]
    country_col = columns["country"]
    type_col = columns["number_type"]
    zones_col = columns["time_zones"]
    geo_col = columns["geo_region"]
    reason_col = columns["reason"]

    def append(info: NumberInfo) -> None:
        raw_col.append(info.raw_number)
        e164_col.append(info.e164)
        country_col.append(info.country)
        type_col.append(info.number_type)
        zones_col.append(None if info.time_zones is None else list(info.time_zones))
        geo_col.append(info.geo_region)
        reason_col.append(info.reason)

    empty, groups = _parse_groups(raw_numbers, rules)
    for raw in empty:
        append(NumberInfo(raw, reason="empty"))
    for key in sorted(groups):
        for text, raws in groups[key].items():
            info = describe(text, raws[0])
            append(info)
            for raw in raws[1:]:
                append(replace(info, raw_number=raw))

    return pd.DataFrame(columns, columns=NUMBER_COLUMNS)
