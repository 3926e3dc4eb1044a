"""Synthetic telephone call records, consent events and cells for development and benchmarks.

Every phone number comes from ranges reserved for drama and fiction (NANP 555-01xx, Ofcom drama
blocks, ACMA fiction ranges, PTS fiction range) and is checked with phonenumbers, so the
generator can never emit a number that may belong to a real person. Output is byte-identical for
the same arguments and seed, and the per-row work is vectorised (numpy indexes into small tables
of pre-formatted strings) so that 10M rows stay within a minute.

Plain Python: no Dagster import, so the CLI, tests and benchmarks can use it directly. Not part
of the product package: the pipeline never imports it (the CLI's `generate` and `demo` do, lazily).
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from phonenumbers import PhoneNumber, PhoneNumberFormat

from phone_pipeline.disk_cache import cache_key, keep, read_kept

# The first five are drawn with _DISPOSITION_WEIGHTS; `abandoned` is made from answered campaign
# calls by a separate random stream (see _add_campaigns), so the original draws are unchanged.
DISPOSITIONS: tuple[str, ...] = (
    "answered", "no_answer", "busy", "voicemail", "failed", "abandoned",
)  # fmt: skip
_DISPOSITION_WEIGHTS = (0.65, 0.15, 0.08, 0.08, 0.04)
_ABANDONED = DISPOSITIONS.index("abandoned")
_JUNK_DISPOSITION = len(DISPOSITIONS)  # index of JUNK_DISPOSITIONS[0] in _DISPOSITION_DICT

# Outbound campaigns: about half the calls belong to one, and 0.5% of their answered calls are
# abandoned (well below the 3% limit, so generated days pass; tests craft the breaches).
CAMPAIGNS: tuple[str, ...] = ("cmp-renewals", "cmp-survey")
_CAMPAIGN_SHARE = 0.5
_ABANDONED_SHARE = 0.005
# Longest plausible answered call; anything above is junk by construction.
MAX_DURATION_SECONDS = 4 * 3600

# Junk values, exported so tests and data-quality checks can recognise each kind.
JUNK_NUMBERS: tuple[str, ...] = (
    "N/A",
    "",
    "12345",
    "555-CALL",  # vanity; "555-CALL-NOW" is a valid +44 55 number when read in GB
    "anonymous",
    "+44 7700 900123",  # UK drama mobile range: possible, but phonenumbers says invalid
    "01632 960123",  # UK drama geographic range: possible, but invalid
)
JUNK_DISPOSITIONS: tuple[str, ...] = ("hung_up",)
JUNK_NEGATIVE_DURATIONS: tuple[int, ...] = (-5, -1, -30)
JUNK_ABSURD_DURATIONS: tuple[int, ...] = (999_999,)
JUNK_KINDS: tuple[str, ...] = (
    "invalid_number",
    "bad_timestamp",
    "negative_duration",
    "absurd_duration",
    "unknown_disposition",
    "duplicate_call_id",
)
_JUNK_KIND_WEIGHTS = (0.35, 0.15, 0.10, 0.10, 0.15, 0.15)

CONSENT_PURPOSES: tuple[str, ...] = ("analytics", "marketing")
CONSENT_STATUSES: tuple[str, ...] = ("granted", "withdrawn")
CONSENT_SOURCES: tuple[str, ...] = ("web-form", "call-centre", "app")
_CONSENT_SOURCE_WEIGHTS = (0.45, 0.20, 0.35)

# Countries whose fictional ranges are large enough to host subscribers, in the order used to
# give foreign countries their shares.
SUPPORTED_REGIONS: tuple[str, ...] = ("US", "GB", "AU", "CA", "SE")
_DEFAULT_SHARE = 0.70
_FOREIGN_SHARES = (0.13, 0.09, 0.04, 0.04)

# A few cities per country; each gets _CELLS_PER_CITY cells jittered around its centre.
_CITIES: dict[str, tuple[tuple[str, str, float, float], ...]] = {
    "US": (
        ("NYC", "New York", 40.7128, -74.0060),
        ("CHI", "Chicago", 41.8781, -87.6298),
        ("LAX", "Los Angeles", 34.0522, -118.2437),
    ),
    "CA": (("TOR", "Toronto", 43.6532, -79.3832),),
    "GB": (
        ("LON", "London", 51.5074, -0.1278),
        ("MAN", "Manchester", 53.4808, -2.2426),
        ("EDI", "Edinburgh", 55.9533, -3.1883),
    ),
    "AU": (
        ("SYD", "Sydney", -33.8688, 151.2093),
        ("MEL", "Melbourne", -37.8136, 144.9631),
    ),
    "SE": (("STO", "Stockholm", 59.3293, 18.0686),),
}
_CELLS_PER_CITY = 4

# Hour-of-day weights: quiet nights, a late-morning peak and an early-evening peak.
_HOUR_WEIGHTS = np.array(
    [0.6, 0.35, 0.25, 0.2, 0.25, 0.5, 1.2, 2.5, 4.0, 5.5, 6.5, 7.0,
     6.0, 5.5, 5.5, 5.5, 6.0, 6.8, 7.0, 6.0, 4.5, 3.0, 2.0, 1.2]
)  # fmt: skip
_HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()

# started_at styles: UTC with Z, naive (means UTC), or local time with an offset (same instant).
_TS_OFFSETS_MINUTES = (60, 120, -300, 600, 330, -480)
_TS_STYLE_P = np.array([0.85, 0.07] + [0.08 / len(_TS_OFFSETS_MINUTES)] * len(_TS_OFFSETS_MINUTES))

# Number spellings. Slot order matters: both tables have _N_FORMATS slots.
# Domestic: E.164, national, dashed, dotted, national digits, international with spaces.
_DOMESTIC_FORMAT_P = np.array([0.40, 0.18, 0.14, 0.05, 0.13, 0.10])
# Foreign: E.164, international with spaces, dialled from default region (IDD), IDD digits only,
# phonenumbers' international format, E.164 again (unused slot keeps the table rectangular).
_FOREIGN_FORMAT_P = np.array([0.35, 0.25, 0.20, 0.10, 0.10, 0.0])
# Consent systems mostly store E.164; web forms and call centres keep what was typed.
_CONSENT_DOMESTIC_FORMAT_P = np.array([0.70, 0.15, 0.05, 0.0, 0.0, 0.10])
_CONSENT_FOREIGN_FORMAT_P = np.array([0.75, 0.25, 0.0, 0.0, 0.0, 0.0])
_N_FORMATS = 6

_WRITE_CHUNK_ROWS = 1_000_000  # bounds memory of materialised strings per write

_FICTIONAL_RE = re.compile(
    r"^\+(?:"
    r"1[2-9]\d{2}55501\d{2}"  # NANP NXX-555-0100..0199
    r"|44(?:2079460|1214960|1314960|1614960)\d{3}"  # Ofcom drama: London, Birmingham, ...
    r"|61[2378](?:5550|7010)\d{4}"  # ACMA fiction, geographic
    r"|61491570(?:15[6-9]|110)"  # ACMA fiction, mobile
    r"|467017406(?:0[5-9]|[1-9]\d)"  # PTS fiction, 070-174 06 05..99
    r")$"
)


@dataclass(frozen=True)
class GenerationSummary:
    call_files: list[Path]
    consent_file: Path
    cells_file: Path
    rows: int
    days: int
    start_date: datetime.date
    subscribers: int
    junk_rows: int
    dnc_file: Path | None = None


def is_fictional(e164: str) -> bool:
    """True when an E.164 number lies in a range reserved for fiction (no real subscriber)."""
    return bool(_FICTIONAL_RE.match(e164))


@lru_cache(maxsize=1)
def fictional_pool() -> dict[str, tuple[str, ...]]:
    """Fictional numbers that phonenumbers accepts as valid, as E.164, grouped by region.

    Every candidate is checked, since a range being reserved does not guarantee that
    phonenumbers' metadata accepts it: 164,000 numbers, 4 s. Built once per process and kept in
    the user's cache directory for the next (`phone_pipeline.disk_cache`), under the candidates,
    this module's code and phonenumbers' version.
    """
    candidates: list[tuple[int, int]] = []
    for npa in range(200, 1000):
        candidates += [(1, npa * 10**7 + 5_550_000 + line) for line in range(100, 200)]
    for area in ("20 7946", "121 496", "131 496", "161 496"):
        prefix = int(area.replace(" ", "")) * 10**4  # ... 0xxx
        candidates += [(44, prefix + line) for line in range(1000)]
    for area in (2, 3, 7, 8):
        for block in (5550, 7010):
            prefix = (area * 10**4 + block) * 10**4
            candidates += [(61, prefix + line) for line in range(10_000)]
    candidates += [(61, 491_570_000 + line) for line in (110, 156, 157, 158, 159)]
    candidates += [(46, 701_740_600 + line) for line in range(5, 100)]

    key = cache_key(candidates, Path(__file__).read_bytes(), phonenumbers.__version__)
    kept = read_kept(CACHE_KIND, key)
    if isinstance(kept, dict) and kept:
        return {region: tuple(numbers) for region, numbers in kept.items()}

    by_region: dict[str, list[str]] = {}
    for country_code, national in candidates:
        number = PhoneNumber(country_code=country_code, national_number=national)
        # Same test as is_valid_number, keeping the region it finds.
        region = phonenumbers.region_code_for_number(number)
        if region and phonenumbers.is_valid_number_for_region(number, region):
            by_region.setdefault(region, []).append(f"+{country_code}{national}")
    pool = {region: tuple(numbers) for region, numbers in sorted(by_region.items())}
    assert pool and all(pool.values()), "no fictional number passed phonenumbers validation"
    keep(CACHE_KIND, key, pool)
    return pool


CACHE_KIND = "fictional_numbers"


def generate(
    data_home: Path,
    *,
    rows: int = 20_000,
    days: int = 3,
    seed: int = 42,
    start_date: datetime.date | None = None,
    default_region: str = "US",
    junk_share: float = 0.03,
    subscribers: int | None = None,
    dnc_share: float = 0.0,
) -> GenerationSummary:
    """Write call files (one per day), consent events and cells under ``data_home/landing``.

    With `dnc_share` > 0, also a do-not-call registry file listing about that share of the
    subscribers (some before the period, some during it) in ``landing/dnc``.
    """
    if default_region not in SUPPORTED_REGIONS:
        raise ValueError(f"default_region must be one of {SUPPORTED_REGIONS}, not {default_region}")
    if days < 1 or rows < days:
        raise ValueError("need days >= 1 and rows >= days (every day file gets rows)")
    if not 0.0 <= junk_share < 1.0:
        raise ValueError("junk_share must be in [0, 1)")
    if subscribers is not None and subscribers < 2:
        raise ValueError("subscribers must be at least 2 (a call needs two parties)")
    if start_date is None:
        start_date = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=days)

    data_home = Path(data_home)
    calls_dir = data_home / "landing" / "calls"
    consent_dir = data_home / "landing" / "consent"
    calls_dir.mkdir(parents=True, exist_ok=True)
    consent_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    # Campaigns, abandonment and the do-not-call registry draw from their own stream, so that
    # adding them left every earlier draw (and every figure tests assert) as it was.
    contact_rng = np.random.default_rng([seed, 5])
    parties = _choose_parties(rng, default_region, rows, days, subscribers)
    cells = _build_cells(rng)
    cells_file = data_home / "landing" / "cells.csv"
    _write_atomic(cells["table"], cells_file)

    n_sub = parties.n_subscribers
    # Skewed activity: lognormal for most, and 1% heavy callers (small businesses, chatty people).
    activity = rng.lognormal(0.0, 1.0, n_sub)
    activity[rng.random(n_sub) < 0.01] *= 15.0
    activity_p = activity / activity.sum()
    home_region = _home_regions(rng, parties.region_index[:n_sub], parties.regions, cells)
    home_cell = cells["region_start"][home_region] + rng.integers(0, _CELLS_PER_CITY, n_sub)

    per_day = np.full(days, rows // days, dtype=np.int64)
    per_day[: rows % days] += 1
    call_files: list[Path] = []
    junk_rows = 0
    for offset, n_day in enumerate(per_day.tolist()):
        day = start_date + datetime.timedelta(days=offset)
        path = calls_dir / f"calls_{day.isoformat()}.csv"
        junk_rows += _write_day(
            rng, path, day, n_day, junk_share, parties, activity_p, home_region, home_cell, cells,
            contact_rng,
        )  # fmt: skip
        call_files.append(path)

    consent_file = consent_dir / "consent_events.csv"
    _write_atomic(_consent_table(rng, parties, start_date, days), consent_file)
    dnc_file = None
    if dnc_share > 0:
        dnc_file = data_home / "landing" / "dnc" / "dnc_registry.csv"
        dnc_file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(_dnc_table(contact_rng, parties, start_date, days, dnc_share), dnc_file)

    return GenerationSummary(
        call_files=call_files,
        consent_file=consent_file,
        cells_file=cells_file,
        rows=rows,
        days=days,
        start_date=start_date,
        subscribers=n_sub,
        junk_rows=junk_rows,
        dnc_file=dnc_file,
    )


# --- parties and their spellings ----------------------------------------------------------------


@dataclass(frozen=True)
class _Parties:
    """Subscribers (first n_subscribers, grouped by country) then external callees."""

    n_subscribers: int
    region_index: np.ndarray  # index into regions, per party
    regions: tuple[str, ...]  # default region first
    block_start: np.ndarray  # first subscriber of each region
    block_count: np.ndarray  # subscribers per region
    domestic: np.ndarray  # bool per party: dialled without an international prefix
    formats: pa.Array  # n_parties * _N_FORMATS spellings, then JUNK_NUMBERS


def _region_shares(default_region: str) -> dict[str, float]:
    foreign = [r for r in SUPPORTED_REGIONS if r != default_region]
    return {default_region: _DEFAULT_SHARE, **dict(zip(foreign, _FOREIGN_SHARES, strict=True))}


def _allocate(n: int, shares: dict[str, float], capacity: dict[str, int]) -> dict[str, int]:
    """Split n across regions by share; a region out of numbers passes its rest to the others."""
    counts = dict.fromkeys(shares, 0)
    remaining = min(n, sum(capacity.values()))
    while remaining > 0:
        open_regions = [r for r in shares if counts[r] < capacity[r]]
        total = sum(shares[r] for r in open_regions)
        raw = {r: remaining * shares[r] / total for r in open_regions}
        alloc = {r: int(raw[r]) for r in open_regions}
        left = remaining - sum(alloc.values())
        for r in sorted(open_regions, key=lambda r: raw[r] - alloc[r], reverse=True)[:left]:
            alloc[r] += 1
        for r in open_regions:
            take = min(alloc[r], capacity[r] - counts[r])
            counts[r] += take
            remaining -= take
    return counts


def _choose_parties(
    rng: np.random.Generator, default_region: str, rows: int, days: int, subscribers: int | None
) -> _Parties:
    pool = fictional_pool()
    shares = _region_shares(default_region)
    regions = tuple(shares)
    capacity = {r: len(pool.get(r, ())) for r in regions}
    wanted = subscribers if subscribers is not None else max(50, rows // (days * 4))
    # The fictional pool is finite: cap so the default region still holds its share.
    wanted = min(wanted, int(capacity[default_region] / _DEFAULT_SHARE))
    sub_counts = _allocate(wanted, shares, capacity)
    # External callees (other networks) are the fictional numbers left over, about 10% as many.
    n_sub = sum(sub_counts.values())
    left = {r: capacity[r] - sub_counts[r] for r in regions}
    ext_counts = _allocate(max(10, n_sub // 10), shares, left)

    sub_numbers: list[str] = []
    ext_numbers: list[str] = []
    sub_region: list[int] = []
    ext_region: list[int] = []
    for i, region in enumerate(regions):
        numbers = pool.get(region, ())
        picked = rng.choice(
            len(numbers), size=sub_counts[region] + ext_counts[region], replace=False
        )
        sub_numbers += [numbers[j] for j in picked[: sub_counts[region]]]
        ext_numbers += [numbers[j] for j in picked[sub_counts[region] :]]
        sub_region += [i] * sub_counts[region]
        ext_region += [i] * ext_counts[region]
    counts = np.array([sub_counts[r] for r in regions], dtype=np.int64)
    region_index = np.array(sub_region + ext_region, dtype=np.int64)
    numbers = sub_numbers + ext_numbers

    home_cc = phonenumbers.country_code_for_region(default_region)
    domestic = np.array([n.startswith(f"+{home_cc}") for n in numbers], dtype=bool)
    spellings = _spellings(numbers, default_region)
    return _Parties(
        n_subscribers=n_sub,
        region_index=region_index,
        regions=regions,
        block_start=np.concatenate([[0], np.cumsum(counts)[:-1]]),
        block_count=counts,
        domestic=domestic,
        formats=pa.array(spellings + list(JUNK_NUMBERS), type=pa.string()),
    )


def _idd(region: str) -> str:
    """International dialling prefix as dialled from region: 011 (NANP), 00, 0011 (AU)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    preferred = metadata.preferred_international_prefix
    return preferred if preferred else metadata.international_prefix


def _spellings(numbers: Sequence[str], default_region: str) -> list[str]:
    """_N_FORMATS spellings per number, as a log in default_region would record them.

    Formatting rules depend on a number's leading digits and length, never on its last three
    digits, so phonenumbers formats one number per prefix (a few hundred) and the others fill
    that template: formatting 100k+ numbers one by one would take seconds.
    """
    templates: dict[str, list[str]] = {}
    out: list[str] = []
    for e164 in numbers:
        prefix, tail = e164[:-3], e164[-3:]
        slots = templates.get(prefix)
        if slots is None:
            slots = templates[prefix] = [
                _template(spelling) for spelling in _format_one(e164, default_region)
            ]
        out += [slot.format(*tail) for slot in slots]
    return out


def _format_one(e164: str, default_region: str) -> list[str]:
    number = phonenumbers.parse(e164)
    intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    intl_spaced = intl.replace("-", " ")
    if number.country_code == phonenumbers.country_code_for_region(default_region):
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        dashed = national.replace("(", "").replace(")", "").replace(" ", "-")
        digits = "".join(ch for ch in national if ch.isdigit())
        return [e164, national, dashed, dashed.replace("-", "."), digits, intl_spaced]
    idd = _idd(default_region)
    dialled = f"{idd} {intl_spaced[1:]}"
    return [e164, intl_spaced, dialled, f"{idd}{e164[1:]}", intl, e164]


def _template(spelling: str) -> str:
    """Replace the last three digits of a spelling with {0}{1}{2} (they are the number's last)."""
    chars = list(spelling)
    slot = 3
    for i in range(len(chars) - 1, -1, -1):
        if chars[i].isdigit():
            slot -= 1
            chars[i] = "{" + str(slot) + "}"
            if slot == 0:
                break
    return "".join(chars)


def _pick_formats(
    rng: np.random.Generator, domestic: np.ndarray, dom_p: np.ndarray, for_p: np.ndarray
) -> np.ndarray:
    """A format slot per row, from the domestic or foreign weights of that row's number."""
    u = rng.random(domestic.shape[0])
    dom = np.minimum(np.searchsorted(np.cumsum(dom_p), u, side="right"), _N_FORMATS - 1)
    fore = np.minimum(np.searchsorted(np.cumsum(for_p), u, side="right"), _N_FORMATS - 1)
    return np.where(domestic, dom, fore)


# --- cells ----------------------------------------------------------------------------------------


def _build_cells(rng: np.random.Generator) -> dict:
    ids: list[str] = []
    names: list[str] = []
    centres: list[tuple[float, float]] = []
    region_country: list[str] = []
    for country, cities in _CITIES.items():
        for code, name, lat, lon in cities:
            region_country.append(country)
            for k in range(1, _CELLS_PER_CITY + 1):
                ids.append(f"{code}-{k:02d}")
                names.append(name)
                centres.append((lat, lon))
    centre = np.array(centres)
    jitter = rng.uniform(-0.05, 0.05, centre.shape)
    lat_lon = np.round(centre + jitter, 5)
    table = pa.table(
        {
            "cell_id": pa.array(ids, pa.string()),
            "region": pa.array(names, pa.string()),
            "latitude": pa.array(lat_lon[:, 0]),
            "longitude": pa.array(lat_lon[:, 1]),
        }
    )
    return {
        "table": table,
        "ids": pa.array(ids, pa.string()),
        "region_country": region_country,
        "region_start": np.arange(len(region_country)) * _CELLS_PER_CITY,
    }


def _home_regions(
    rng: np.random.Generator, sub_region_index: np.ndarray, regions: tuple[str, ...], cells: dict
) -> np.ndarray:
    """A home city per subscriber, drawn among the cities of the subscriber's country."""
    region_country: list[str] = cells["region_country"]
    first = np.array([region_country.index(r) for r in regions])
    n_cities = np.array([region_country.count(r) for r in regions])
    r = sub_region_index
    return first[r] + (rng.random(r.shape[0]) * n_cities[r]).astype(np.int64)


# --- calls ----------------------------------------------------------------------------------------


def _write_day(
    rng: np.random.Generator,
    path: Path,
    day: datetime.date,
    n: int,
    junk_share: float,
    parties: _Parties,
    activity_p: np.ndarray,
    home_region: np.ndarray,
    home_cell: np.ndarray,
    cells: dict,
    contact_rng: np.random.Generator,
) -> int:
    """Generate one day's calls, write them atomically, return the number of junk rows."""
    n_sub = parties.n_subscribers
    n_parties = parties.region_index.shape[0]

    # Time of day first, sorted, so the file reads like a switch log.
    seconds = np.sort(rng.choice(24, size=n, p=_HOUR_P) * 3600 + rng.integers(0, 3600, n))
    style = rng.choice(_TS_STYLE_P.shape[0], size=n, p=_TS_STYLE_P)
    ts_code = style * 86_400 + seconds

    caller = rng.choice(n_sub, size=n, p=activity_p)
    # Callees: mostly someone in the caller's country, sometimes anyone; a fifth are
    # off-network numbers (shops, offices), few of them and often called.
    caller_region = parties.region_index[caller]
    u = rng.random(n)
    same_country = rng.random(n) < 0.88
    callee = np.where(
        same_country,
        parties.block_start[caller_region]
        + (u * parties.block_count[caller_region]).astype(np.int64),
        (u * n_sub).astype(np.int64),
    )
    clash = callee == caller
    callee[clash] = (callee[clash] + 1) % n_sub
    if n_parties > n_sub:
        external = rng.random(n) < 0.20
        callee[external] = rng.integers(n_sub, n_parties, int(external.sum()))

    caller_code = caller * _N_FORMATS + _pick_formats(
        rng, parties.domestic[caller], _DOMESTIC_FORMAT_P, _FOREIGN_FORMAT_P
    )
    callee_code = callee * _N_FORMATS + _pick_formats(
        rng, parties.domestic[callee], _DOMESTIC_FORMAT_P, _FOREIGN_FORMAT_P
    )

    disposition = rng.choice(len(_DISPOSITION_WEIGHTS), size=n, p=_DISPOSITION_WEIGHTS).astype(
        np.int8
    )
    answered = np.clip(np.rint(rng.lognormal(np.log(150.0), 0.9, n)), 1, MAX_DURATION_SECONDS)
    voicemail = rng.integers(8, 60, n)
    duration = np.where(disposition == 0, answered, np.where(disposition == 3, voicemail, 0))
    duration = duration.astype(np.int64)

    # Mostly the caller's home cell, else another cell of the same city; some rows have none
    # (failed set-ups more often).
    cell = np.where(
        rng.random(n) < 0.7,
        home_cell[caller],
        cells["region_start"][home_region[caller]] + rng.integers(0, _CELLS_PER_CITY, n),
    )
    no_cell = (rng.random(n) < 0.04) | ((disposition == 4) & (rng.random(n) < 0.5))
    cell[no_cell] = -1

    seq = np.arange(1, n + 1, dtype=np.int64)
    n_junk = _apply_junk(
        rng, n, junk_share, caller_code, callee_code, ts_code, duration, disposition, seq,
        n_parties=n_parties,
    )  # fmt: skip

    campaign = _add_campaigns(contact_rng, disposition, duration)

    ts_lookup = _timestamp_lookup(day)
    call_prefix = f"c-{day:%Y%m%d}-"
    width = max(7, len(str(n)))
    with atomic_csv(path) as write:
        for lo in range(0, n, _WRITE_CHUNK_ROWS):
            hi = min(n, lo + _WRITE_CHUNK_ROWS)
            cell_idx = cell[lo:hi].astype(np.int32)
            table = pa.table(
                {
                    "call_id": pc.binary_join_element_wise(
                        call_prefix,
                        pc.utf8_lpad(pc.cast(pa.array(seq[lo:hi]), pa.string()), width, "0"),
                        "",
                    ),
                    "caller_number": _dict(caller_code[lo:hi], parties.formats),
                    "callee_number": _dict(callee_code[lo:hi], parties.formats),
                    "started_at": _dict(ts_code[lo:hi], ts_lookup),
                    "duration_seconds": pa.array(duration[lo:hi], pa.int64()),
                    "disposition": _dict(disposition[lo:hi], _DISPOSITION_DICT),
                    "cell_id": pa.DictionaryArray.from_arrays(
                        pa.array(cell_idx, mask=cell_idx < 0), cells["ids"]
                    ),
                    "campaign_id": pa.DictionaryArray.from_arrays(
                        pa.array(campaign[lo:hi], mask=campaign[lo:hi] < 0), _CAMPAIGN_DICT
                    ),
                }
            )
            write(table)
    return n_junk


_DISPOSITION_DICT = pa.array(DISPOSITIONS + JUNK_DISPOSITIONS, pa.string())
_CAMPAIGN_DICT = pa.array(CAMPAIGNS, pa.string())


def _add_campaigns(
    contact_rng: np.random.Generator, disposition: np.ndarray, duration: np.ndarray
) -> np.ndarray:
    """A campaign index per row (-1: none); a few answered campaign calls become `abandoned`
    (in place, with the few seconds before the caller hung up). Uses only `contact_rng`."""
    n = disposition.shape[0]
    campaign = np.where(
        contact_rng.random(n) < _CAMPAIGN_SHARE, contact_rng.integers(0, len(CAMPAIGNS), n), -1
    ).astype(np.int32)
    abandoned = (campaign >= 0) & (disposition == 0) & (contact_rng.random(n) < _ABANDONED_SHARE)
    disposition[abandoned] = _ABANDONED
    duration[abandoned] = contact_rng.integers(1, 6, int(abandoned.sum()))
    return campaign


def _dict(codes: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """Rows as indices into a small table of strings: no per-row string building."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), dictionary)


def _timestamp_lookup(day: datetime.date) -> pa.Array:
    """Every second of the day in every started_at style, then the junk timestamps.

    Index = style * 86400 + second of day (UTC). Styles: Z, naive, then one per offset.
    """
    utc = np.datetime64(day.isoformat(), "s") + np.arange(86_400).astype("timedelta64[s]")
    iso = np.datetime_as_string(utc, unit="s")
    parts = [np.strings.add(iso, "Z"), np.strings.replace(iso, "T", " ")]
    for minutes in _TS_OFFSETS_MINUTES:
        local = np.datetime_as_string(utc + np.timedelta64(minutes * 60, "s"), unit="s")
        sign = "+" if minutes >= 0 else "-"
        suffix = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        parts.append(np.strings.add(local, suffix))
    # Concatenate as Arrow arrays: numpy fixed-width unicode is slow to join and convert.
    arrays = [pa.array(part, pa.string()) for part in parts]
    return pa.concat_arrays(arrays + [pa.array(_junk_timestamps(day), pa.string())])


def _junk_timestamps(day: datetime.date) -> list[str]:
    return ["yesterday", f"{day:%d/%m/%Y} 25:00", "0000-00-00 00:00:00"]


def _apply_junk(
    rng: np.random.Generator,
    n: int,
    junk_share: float,
    caller_code: np.ndarray,
    callee_code: np.ndarray,
    ts_code: np.ndarray,
    duration: np.ndarray,
    disposition: np.ndarray,
    seq: np.ndarray,
    *,
    n_parties: int,
) -> int:
    """Spoil about junk_share of the rows in place, one known defect each; return the count.

    Row 0 stays clean: every file keeps a valid timestamp and an earlier id to duplicate.
    """
    k = min(round(n * junk_share), n - 1)
    if k <= 0:
        return 0
    rows = np.sort(rng.choice(n - 1, size=k, replace=False) + 1)
    kind = rng.choice(len(JUNK_KINDS), size=k, p=_JUNK_KIND_WEIGHTS)

    bad = rows[kind == 0]
    junk_code = n_parties * _N_FORMATS + rng.integers(0, len(JUNK_NUMBERS), bad.shape[0])
    on_caller = rng.random(bad.shape[0]) < 0.5
    caller_code[bad[on_caller]] = junk_code[on_caller]
    callee_code[bad[~on_caller]] = junk_code[~on_caller]

    bad = rows[kind == 1]
    ts_code[bad] = (2 + len(_TS_OFFSETS_MINUTES)) * 86_400 + rng.integers(0, 3, bad.shape[0])

    bad = rows[kind == 2]
    duration[bad] = rng.choice(JUNK_NEGATIVE_DURATIONS, size=bad.shape[0])
    bad = rows[kind == 3]
    duration[bad] = rng.choice(JUNK_ABSURD_DURATIONS, size=bad.shape[0])
    disposition[rows[kind == 4]] = _JUNK_DISPOSITION

    # Duplicate ids copy a clean earlier row (no junk of any kind), so each copy really collides
    # with a row the pipeline admits; copying a junk row would make the copy the first valid one.
    dup = rows[kind == 5]
    if dup.shape[0]:
        keep = np.setdiff1d(np.arange(n), rows, assume_unique=True)
        earlier = np.searchsorted(keep, dup)  # clean rows before each duplicate, >= 1 (row 0)
        source = keep[(rng.random(dup.shape[0]) * earlier).astype(np.int64)]
        seq[dup] = seq[source]
    return int(k)


# --- consent --------------------------------------------------------------------------------------


def _consent_table(
    rng: np.random.Generator, parties: _Parties, start_date: datetime.date, days: int
) -> pa.Table:
    """Consent events for subscribers and external callees, sorted by recorded_at."""
    n_sub = parties.n_subscribers
    n_parties = parties.region_index.shape[0]
    period_start = int(
        datetime.datetime.combine(start_date, datetime.time(), datetime.UTC).timestamp()
    )
    period = days * 86_400
    year = 365 * 86_400

    who: list[np.ndarray] = []
    purpose: list[np.ndarray] = []
    status: list[np.ndarray] = []
    when: list[np.ndarray] = []

    def add(idx: np.ndarray, purpose_i: int, status_i: int, t: np.ndarray) -> None:
        who.append(idx)
        purpose.append(np.full(idx.shape[0], purpose_i, np.int8))
        status.append(np.full(idx.shape[0], status_i, np.int8))
        when.append(t.astype(np.int64))

    def before_period(size: int) -> np.ndarray:
        return period_start - rng.integers(3_600, year, size)

    # Analytics: ~85% of subscribers and ~30% of external callees granted before the period,
    # so about 70-75% of callees (by call) are covered.
    share = np.where(np.arange(n_parties) < n_sub, 0.85, 0.30)
    granted = np.flatnonzero(rng.random(n_parties) < share)
    add(granted, 0, 0, before_period(granted.shape[0]))
    if granted.shape[0]:
        # ~5% withdraw during the period; about a third of them grant again later.
        n_w = max(1, round(0.05 * granted.shape[0]))
        withdrawn = rng.choice(granted, size=n_w, replace=False)
        t_w = period_start + rng.integers(0, int(period * 0.7), n_w)
        add(withdrawn, 0, 1, t_w)
        n_rg = max(1, round(n_w / 3))
        again = rng.choice(n_w, size=n_rg, replace=False)
        t_rg = t_w[again] + 1 + (rng.random(n_rg) * (period_start + period - 1 - t_w[again]))
        add(withdrawn[again], 0, 0, t_rg)

    # Marketing: ~40% of subscribers granted before the period, ~10% of them withdraw in it.
    mkt = np.flatnonzero(rng.random(n_sub) < 0.40)
    add(mkt, 1, 0, before_period(mkt.shape[0]))
    if mkt.shape[0]:
        n_mw = max(1, round(0.10 * mkt.shape[0]))
        add(
            rng.choice(mkt, size=n_mw, replace=False),
            1,
            1,
            period_start + rng.integers(0, period, n_mw),
        )

    idx = np.concatenate(who)
    t = np.concatenate(when)
    order = np.lexsort((idx, t))  # by time, ties by party: deterministic
    idx, t = idx[order], t[order]
    slot = _pick_formats(
        rng, parties.domestic[idx], _CONSENT_DOMESTIC_FORMAT_P, _CONSENT_FOREIGN_FORMAT_P
    )
    source = rng.choice(len(CONSENT_SOURCES), size=idx.shape[0], p=_CONSENT_SOURCE_WEIGHTS)
    recorded = np.strings.add(np.datetime_as_string(t.astype("datetime64[s]"), unit="s"), "Z")
    return pa.table(
        {
            "phone_number": pc.take(parties.formats, pa.array(idx * _N_FORMATS + slot)),
            "purpose": pc.take(
                pa.array(CONSENT_PURPOSES), pa.array(np.concatenate(purpose)[order])
            ),
            "status": pc.take(pa.array(CONSENT_STATUSES), pa.array(np.concatenate(status)[order])),
            "recorded_at": pa.array(recorded.astype(object), pa.string()),
            "source": pc.take(pa.array(CONSENT_SOURCES), pa.array(source)),
        }
    )


def _dnc_table(
    contact_rng: np.random.Generator,
    parties: _Parties,
    start_date: datetime.date,
    days: int,
    share: float,
) -> pa.Table:
    """About `share` of the subscribers listed: two thirds before the period, a third during it
    (so that calls before and after a listing both occur), each in one of its spellings."""
    n_sub = parties.n_subscribers
    listed = np.flatnonzero(contact_rng.random(n_sub) < share)
    period_start = int(
        datetime.datetime.combine(start_date, datetime.time(), datetime.UTC).timestamp()
    )
    during = contact_rng.random(listed.shape[0]) < 1 / 3
    t = np.where(
        during,
        period_start + contact_rng.integers(0, days * 86_400, listed.shape[0]),
        period_start - contact_rng.integers(86_400, 3 * 365 * 86_400, listed.shape[0]),
    )
    slot = _pick_formats(
        contact_rng, parties.domestic[listed], _CONSENT_DOMESTIC_FORMAT_P, _CONSENT_FOREIGN_FORMAT_P
    )
    recorded = np.strings.add(np.datetime_as_string(t.astype("datetime64[s]"), unit="s"), "Z")
    return pa.table(
        {
            "phone_number": pc.take(parties.formats, pa.array(listed * _N_FORMATS + slot)),
            "listed_at": pa.array(recorded.astype(object), pa.string()),
        }
    )


@contextmanager
def atomic_csv(path: Path) -> Iterator[Callable[[pa.Table], None]]:
    """Write tables to <name>.part, renamed to <name> only when complete: a folder sensor never
    sees a half-written file. Yields a function that appends one table (all of one schema)."""
    part = path.with_name(path.name + ".part")
    writer: pacsv.CSVWriter | None = None

    def write(table: pa.Table) -> None:
        nonlocal writer
        if writer is None:
            writer = pacsv.CSVWriter(str(part), table.schema)
        writer.write_table(table)

    try:
        yield write
    finally:
        if writer is not None:
            writer.close()
    os.replace(part, path)


def _write_atomic(table: pa.Table, path: Path) -> None:
    with atomic_csv(path) as write:
        write(table)
