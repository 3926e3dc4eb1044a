"""Tests for the synthetic call-record generator (plain Python, no Dagster)."""

from __future__ import annotations

import datetime
from collections import Counter
from functools import cache
from pathlib import Path

import pandas as pd
import phonenumbers
import pytest

from phone_pipeline.disk_cache import read_kept
from phone_pipeline.domain.contract import CALL_COLUMNS, CELL_COLUMNS, CONSENT_COLUMNS
from phone_pipeline_synthetic import generator as synthetic
from phone_pipeline_synthetic.generator import (
    DISPOSITIONS,
    JUNK_DISPOSITIONS,
    JUNK_NUMBERS,
    MAX_DURATION_SECONDS,
    GenerationSummary,
    fictional_pool,
    generate,
    is_fictional,
)

START = datetime.date(2026, 11, 1)


def _read(path: Path) -> pd.DataFrame:
    # As the pipeline must: otherwise "N/A" becomes NaN and digit-only numbers lose zeros.
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _calls(summary: GenerationSummary) -> pd.DataFrame:
    frames = []
    for path in summary.call_files:
        frame = _read(path)
        frame["file_date"] = path.stem.removeprefix("calls_")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@cache
def _e164(raw: str, region: str) -> str | None:
    """E.164 of a valid number, else None (parsed once per distinct string)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _utc(series: pd.Series) -> pd.Series:
    """UTC instants; unparseable stamps become NaT (junk).

    Naive stamps mean UTC and are parsed apart: pandas 2.3, given naive and offset stamps in one
    call, applied a neighbour's offset to the naive ones.
    """
    aware = series.str.contains(r"(?:Z|[+-]\d\d:\d\d)$")
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns, UTC]")
    for mask in (aware, ~aware):
        out[mask] = pd.to_datetime(series[mask], format="ISO8601", utc=True, errors="coerce")
    return out


def _defects(calls: pd.DataFrame, region: str, duplicates: bool = True) -> pd.Series:
    """One boolean per row: does the row carry any of the known junk defects?"""
    caller_ok = calls["caller_number"].map(lambda v: _e164(v, region) is not None)
    callee_ok = calls["callee_number"].map(lambda v: _e164(v, region) is not None)
    duration = calls["duration_seconds"].astype(int)
    return (
        ~caller_ok
        | ~callee_ok
        | _utc(calls["started_at"]).isna()
        | (duration < 0)
        | (duration > MAX_DURATION_SECONDS)
        | ~calls["disposition"].isin(DISPOSITIONS)
        | (duplicates & calls.duplicated(["file_date", "call_id"], keep="first"))
    )


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    home = tmp_path_factory.mktemp("synthetic")
    return generate(home, rows=20_000, days=3, seed=42, start_date=START)


@pytest.fixture(scope="module")
def calls(summary: GenerationSummary) -> pd.DataFrame:
    return _calls(summary)


def test_fictional_pool_is_valid_and_fictional() -> None:
    pool = fictional_pool()
    assert pool, "pool must not be empty"
    sizes = {region: len(numbers) for region, numbers in pool.items()}
    assert sizes["US"] > 30_000 and sizes["CA"] > 1_000
    assert sizes["GB"] == 4_000 and sizes["AU"] == 80_005 and sizes["SE"] == 95
    for region, numbers in pool.items():
        assert all(is_fictional(n) for n in numbers), region
        for n in numbers[:: max(1, len(numbers) // 50)]:  # a sample through phonenumbers again
            parsed = phonenumbers.parse(n)
            assert phonenumbers.is_valid_number(parsed)
            assert phonenumbers.region_code_for_number(parsed) == region


def test_junk_numbers_invalid_in_every_supported_region() -> None:
    for region in synthetic.SUPPORTED_REGIONS:
        for raw in JUNK_NUMBERS:
            assert _e164(raw, region) is None, (region, raw)


@pytest.mark.parametrize(
    "number",
    [
        "+12125551234",  # 555 but outside 0100..0199
        "+12125550200",
        "+12124560123",
        "+442079461234",  # London, outside the drama block
        "+441154960123",  # Nottingham block: not in our list
        "+447700900123",  # drama but invalid
        "+61255511234",
        "+61491570111",
        "+46701740604",
        "+33123456789",
        "",
    ],
)
def test_is_fictional_rejects_other_numbers(number: str) -> None:
    assert not is_fictional(number)


def test_files_columns_and_counts(summary: GenerationSummary, calls: pd.DataFrame) -> None:
    assert [p.name for p in summary.call_files] == [
        f"calls_{START + datetime.timedelta(days=i)}.csv" for i in range(3)
    ]
    assert all(p.exists() for p in summary.call_files)
    for path in summary.call_files:
        assert list(_read(path).columns) == list(CALL_COLUMNS)
    assert list(_read(summary.consent_file).columns) == list(CONSENT_COLUMNS)
    assert list(_read(summary.cells_file).columns) == list(CELL_COLUMNS)
    assert len(calls) == summary.rows == 20_000
    assert summary.days == 3 and summary.start_date == START
    landing = summary.consent_file.parents[1]
    assert not list(landing.rglob("*.part"))


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    def files(home: Path) -> dict[str, bytes]:
        return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}

    generate(tmp_path / "a", rows=3_000, days=2, seed=7, start_date=START)
    generate(tmp_path / "b", rows=3_000, days=2, seed=7, start_date=START)
    generate(tmp_path / "c", rows=3_000, days=2, seed=8, start_date=START)
    a, b, c = files(tmp_path / "a"), files(tmp_path / "b"), files(tmp_path / "c")
    assert len(a) == 4 and a == b
    assert a.keys() == c.keys() and a != c


def test_numbers_valid_and_fictional_except_junk(
    summary: GenerationSummary, calls: pd.DataFrame
) -> None:
    for column in ("caller_number", "callee_number"):
        for raw in calls[column].unique():
            e164 = _e164(raw, "US")
            if e164 is None:
                assert raw in JUNK_NUMBERS, raw
            else:
                assert is_fictional(e164), raw


def test_junk_rows_are_counted(summary: GenerationSummary, calls: pd.DataFrame) -> None:
    defects = _defects(calls, "US")
    assert int(defects.sum()) == summary.junk_rows
    assert 0.025 * summary.rows <= summary.junk_rows <= 0.035 * summary.rows
    # Every kind shows up.
    assert set(JUNK_NUMBERS) & (set(calls["caller_number"]) | set(calls["callee_number"]))
    assert _utc(calls["started_at"]).isna().any()
    duration = calls["duration_seconds"].astype(int)
    assert (duration < 0).any() and (duration > MAX_DURATION_SECONDS).any()
    assert set(calls["disposition"]) == set(DISPOSITIONS) | set(JUNK_DISPOSITIONS)
    assert calls.duplicated(["file_date", "call_id"]).any()
    # Apart from junk copies, ids are unique across all files.
    assert not calls.loc[~defects, "call_id"].duplicated().any()


def test_duplicate_ids_copy_clean_rows(calls: pd.DataFrame) -> None:
    # A copy of a junk row would be the first valid row with that id, not a duplicate, so the
    # pipeline would rightly admit it and quarantine one row fewer than `junk_rows` says.
    copied = calls.duplicated(["file_date", "call_id"], keep=False) & ~calls.duplicated(
        ["file_date", "call_id"], keep="first"
    )
    assert copied.any()
    assert not _defects(calls, "US", duplicates=False)[copied].any()


def test_every_file_keeps_a_valid_timestamp(tmp_path: Path) -> None:
    summary = generate(tmp_path, rows=6, days=3, junk_share=0.9, start_date=START)
    for path in summary.call_files:
        assert _utc(_read(path)["started_at"]).notna().any()
    assert summary.junk_rows == 3


def test_timestamps_formats_and_dates(calls: pd.DataFrame) -> None:
    stamps = calls["started_at"]
    utc = _utc(stamps)
    ok = utc.notna()
    assert (utc[ok].dt.strftime("%Y-%m-%d") == calls.loc[ok, "file_date"]).all()
    assert stamps.str.endswith("Z").mean() > 0.75
    assert stamps.str.contains(r"[+-]\d\d:\d\d$").any()
    assert stamps.str.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").any()
    # An offset stamp names the same instant as its UTC date: some local dates differ.
    offset = stamps.str.contains(r"[+-]\d\d:\d\d$") & ok
    local_dates = stamps[offset].str[:10]
    assert (local_dates != calls.loc[offset, "file_date"]).any()


def test_daily_rhythm(calls: pd.DataFrame) -> None:
    hours = _utc(calls["started_at"]).dropna().dt.hour.value_counts()
    assert hours.get(11, 0) > 3 * hours.get(3, 0)
    assert hours.get(18, 0) > 3 * hours.get(2, 0)


def test_countries_and_formats(summary: GenerationSummary, calls: pd.DataFrame) -> None:
    e164 = calls["caller_number"].map(lambda v: _e164(v, "US")).dropna()
    regions = Counter(phonenumbers.region_code_for_number(phonenumbers.parse(n)) for n in e164)
    assert {"US", "GB", "AU", "SE", "CA"} <= set(regions)
    assert regions["US"] / sum(regions.values()) > 0.5
    raw = pd.Series(pd.concat([calls["caller_number"], calls["callee_number"]]).unique())
    assert raw.str.match(r"^\+\d+$").any()  # E.164
    assert raw.str.match(r"^\(\d{3}\) \d{3}-\d{4}$").any()  # national
    assert raw.str.match(r"^\d{3}-\d{3}-\d{4}$").any()
    assert raw.str.match(r"^\d{3}\.\d{3}\.\d{4}$").any()
    assert raw.str.match(r"^\d{10}$").any()  # digits only, still text
    assert raw.str.match(r"^\+1 \d{3} \d{3} \d{4}$").any()
    assert raw.str.startswith("+44 ").any() and raw.str.startswith("011 44 ").any()
    assert raw.str.startswith("+61 ").any()
    # Each subscriber appears under several spellings.
    assert e164.nunique() < calls["caller_number"].nunique()
    assert e164.nunique() <= summary.subscribers


def test_dispositions_and_durations(calls: pd.DataFrame) -> None:
    clean = calls[calls["disposition"].isin(DISPOSITIONS)]
    duration = clean["duration_seconds"].astype(int)
    share = clean["disposition"].value_counts(normalize=True)
    assert 0.60 < share["answered"] < 0.70
    assert 0.12 < share["no_answer"] < 0.18
    answered = duration[(clean["disposition"] == "answered") & (duration >= 0)]
    answered = answered[answered <= MAX_DURATION_SECONDS]
    assert 100 < answered.median() < 200
    for kind in ("busy", "no_answer", "failed"):
        d = duration[clean["disposition"] == kind]
        assert ((d == 0) | (d < 0) | (d > MAX_DURATION_SECONDS)).all()  # 0 unless junk
    vm = duration[(clean["disposition"] == "voicemail") & (duration >= 0) & (duration < 1000)]
    assert vm.max() < 60


def test_cells(summary: GenerationSummary, calls: pd.DataFrame) -> None:
    cells = _read(summary.cells_file)
    assert 20 <= len(cells) <= 60 and cells["cell_id"].is_unique
    assert cells["region"].nunique() >= 5
    assert cells["latitude"].astype(float).between(-90, 90).all()
    used = set(calls["cell_id"])
    assert "" in used
    assert used - {""} <= set(cells["cell_id"])
    assert 0.02 < (calls["cell_id"] == "").mean() < 0.10


def test_consent_events(summary: GenerationSummary, calls: pd.DataFrame) -> None:
    consent = _read(summary.consent_file)
    assert set(consent["purpose"]) == {"analytics", "marketing"}
    assert set(consent["status"]) == {"granted", "withdrawn"}
    assert set(consent["source"]) == {"web-form", "call-centre", "app"}
    assert consent["recorded_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
    recorded = pd.to_datetime(consent["recorded_at"], utc=True)
    assert recorded.is_monotonic_increasing
    consent["e164"] = consent["phone_number"].map(lambda v: _e164(v, "US"))
    assert consent["e164"].notna().all() and consent["e164"].map(is_fictional).all()
    assert (consent["phone_number"] != consent["e164"]).mean() > 0.1  # normalisation matters

    analytics = consent[consent["purpose"] == "analytics"]
    history = analytics.groupby("e164")["status"].agg(lambda s: ",".join(s))
    assert (history == "granted,withdrawn,granted").any()
    assert (history == "granted,withdrawn").any()
    # Grants of the steady majority predate the period; withdrawals fall inside it.
    period_start = pd.Timestamp(START, tz="UTC")
    period_end = period_start + pd.Timedelta(days=3)
    withdrawn = recorded[consent["status"] == "withdrawn"]
    assert ((withdrawn >= period_start) & (withdrawn < period_end)).all()

    callers = set(calls["caller_number"].map(lambda v: _e164(v, "US")).dropna())
    granted = set(analytics.loc[analytics["status"] == "granted", "e164"])
    assert 0.78 < len(callers & granted) / len(callers) < 0.92
    callees = calls["callee_number"].map(lambda v: _e164(v, "US")).dropna()
    assert 0.65 < callees.isin(granted).mean() < 0.82
    marketing = set(consent.loc[consent["purpose"] == "marketing", "e164"])
    assert 0.30 < len(callers & marketing) / len(callers) < 0.50


@pytest.mark.parametrize("region", ["GB", "AU", "SE", "CA"])
def test_other_default_regions(tmp_path: Path, region: str) -> None:
    summary = generate(tmp_path, rows=4_000, days=1, default_region=region, start_date=START)
    calls = _calls(summary)
    assert int(_defects(calls, region).sum()) == summary.junk_rows
    e164 = pd.concat([calls["caller_number"], calls["callee_number"]]).map(
        lambda v: _e164(v, region)
    )
    assert e164.dropna().map(is_fictional).all()
    regions = Counter(
        phonenumbers.region_code_for_number(phonenumbers.parse(n)) for n in e164.dropna()
    )
    assert regions.most_common(1)[0][0] == region
    consent = _read(summary.consent_file)
    assert consent["phone_number"].map(lambda v: _e164(v, region)).notna().all()


def test_subscribers_argument_and_cap(tmp_path: Path) -> None:
    small = generate(tmp_path / "s", rows=2_000, days=1, subscribers=60, start_date=START)
    assert small.subscribers == 60
    callers = _calls(small)["caller_number"].map(lambda v: _e164(v, "US")).dropna()
    assert callers.nunique() <= 60
    # SE has 95 fictional numbers: the default region keeps ~70% of subscribers.
    capped = generate(tmp_path / "c", rows=500, days=1, subscribers=10_000, default_region="SE")
    assert capped.subscribers == int(95 / 0.70)


def test_default_start_date_ends_yesterday(tmp_path: Path) -> None:
    summary = generate(tmp_path, rows=200, days=2)
    yesterday = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=1)
    assert summary.call_files[-1].name == f"calls_{yesterday}.csv"
    assert summary.start_date == yesterday - datetime.timedelta(days=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_region": "DE"},
        {"rows": 2, "days": 3},
        {"junk_share": 1.0},
        {"subscribers": 1},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)


def test_no_dagster_import() -> None:
    source = Path(synthetic.__file__).read_text()
    assert "import dagster" not in source and "from dagster" not in source


def test_the_fictional_pool_is_checked_once_and_kept_for_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking 164,000 candidates with phonenumbers takes 4 s of every generating process: the
    result is kept in the cache directory, under phonenumbers' version and the candidates."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    synthetic.fictional_pool.cache_clear()
    checked = synthetic.fictional_pool()
    [kept] = (tmp_path / "phone_pipeline" / "fictional_numbers").iterdir()

    def must_not_check(*args: object) -> bool:
        raise AssertionError("checked again")

    synthetic.fictional_pool.cache_clear()  # as in a new process
    with monkeypatch.context() as patch:
        patch.setattr(phonenumbers, "is_valid_number_for_region", must_not_check)
        assert synthetic.fictional_pool() == checked
    synthetic.fictional_pool.cache_clear()
    # An unreadable entry reads as none kept, so the pool is checked again (not repeated here:
    # 4 s; test_lineage.py shows a derivation made again from a half-written entry).
    kept.write_text("[1, 2")
    assert read_kept(synthetic.CACHE_KIND, kept.stem) is None
