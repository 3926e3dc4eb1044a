"""Unit tests for phone_pipeline.domain.numbers.

Only fictional numbers: NANP NXX-555-01xx, UK drama blocks (020 7946 0xxx, 0121/0161 496 0xxx),
Australia 02 5550 xxxx / 0491 570 156, Sweden 070-174 06 05..99, plus ranges phonenumbers rejects
(UK 07700 900xxx, 01632 960xxx).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pandas as pd
import phonenumbers
import pytest
from phonenumbers import geocoder, timezone

from phone_pipeline.domain import numbers
from phone_pipeline.domain.numbers import (
    INVALID_REASONS,
    NUMBER_COLUMNS,
    NumberInfo,
    normalize_number,
    normalize_numbers,
    parse_slices,
)

NY_E164 = "+12125550123"
LONDON_E164 = "+442079460123"


def _rows(df: pd.DataFrame) -> dict[str, dict]:
    """raw_number -> row dict, asserting raw_number is a unique key."""
    assert df["raw_number"].is_unique
    return {row["raw_number"]: row for row in df.to_dict(orient="records")}


# --- valid numbers, messy formats, several default regions ---------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "(212) 555-0123",
        "212.555.0123",
        "212-555-0123",
        "2125550123",
        "+1 212 555 0123",
        "1-212-555-0123",
        "  +1 (212) 555-0123  ",
        "tel:+1-212-555-0123",
        "tel:212-555-0123",
        "212-555-0123 ext. 12",  # extension accepted, dropped by E.164
        "212 555 0123 x12",
    ],
)
def test_us_formats_from_us(raw: str) -> None:
    info = normalize_number(raw, "US")
    assert info.reason is None
    assert info.e164 == NY_E164
    assert info.country == "US"
    # NANP numbers cannot be told apart: phonenumbers says fixed_line_or_mobile.
    assert info.number_type == "fixed_line_or_mobile"
    assert info.time_zones == ("America/New_York",)
    assert info.geo_region == "New York, NY"
    assert info.raw_number == raw  # never modified


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("020 7946 0123", "GB"),
        ("02079460123", "GB"),
        ("+44 (0)20 7946 0123", "GB"),
        ("+44 (0)20 7946 0123", "US"),
        ("+44 20 7946 0123", "SE"),
        ("011 44 20 7946 0123", "US"),  # US international prefix, handled by phonenumbers
        ("0044 20 7946 0123", "US"),  # "00" is not an IDD from the US: our rule reads it as "+"
        ("00 44 (20) 7946-0123", "US"),
        ("(0044) 20.7946.0123", "US"),
        ("tel:0044-20-7946-0123", "US"),
        ("0044 20 7946 0123", "GB"),
        ("0044 20 7946 0123", "AU"),  # AU dials 0011, so "0044" would be national without us
        ("0011 44 20 7946 0123", "AU"),  # the region's own IDD keeps working
    ],
)
def test_london_number_from_several_regions(raw: str, region: str) -> None:
    info = normalize_number(raw, region)
    assert info.reason is None
    assert info.e164 == LONDON_E164
    assert info.country == "GB"
    assert info.number_type == "fixed_line"
    assert info.time_zones == ("Europe/London",)
    assert info.geo_region == "London"


def test_double_zero_without_rule_would_be_misread() -> None:
    # Guards the reason for the "00" rule: phonenumbers alone reads it as a US national number.
    plain = phonenumbers.parse("0044 20 7946 0123", "US")
    assert not phonenumbers.is_valid_number(plain)
    assert normalize_number("0044 20 7946 0123", "US").e164 == LONDON_E164


def test_double_zero_to_us_from_gb() -> None:
    info = normalize_number("00 1 212 555 0123", "GB")
    assert (info.e164, info.country) == (NY_E164, "US")


@pytest.mark.parametrize(
    ("raw", "region", "e164", "geo"),
    [
        ("0121 496 0123", "GB", "+441214960123", "Birmingham"),
        ("0161 496 0123", "GB", "+441614960123", "Manchester"),
        ("+44 161 496 0123", "US", "+441614960123", "Manchester"),
    ],
)
def test_other_uk_drama_blocks(raw: str, region: str, e164: str, geo: str) -> None:
    info = normalize_number(raw, region)
    assert (info.e164, info.country, info.number_type, info.geo_region) == (
        e164,
        "GB",
        "fixed_line",
        geo,
    )


def test_australian_mobile_has_several_sorted_zones() -> None:
    info = normalize_number("0491 570 156", "AU")
    assert info.reason is None
    assert info.e164 == "+61491570156"
    assert info.country == "AU"
    assert info.number_type == "mobile"
    # Mobiles are not geographical: phonenumbers returns every zone of the country.
    assert "Australia/Sydney" in info.time_zones
    assert "Australia/Perth" in info.time_zones
    assert len(info.time_zones) > 1
    assert list(info.time_zones) == sorted(info.time_zones)


def test_australian_fixed_line() -> None:
    info = normalize_number("(02) 5550 1234", "AU")
    assert (info.e164, info.country, info.number_type, info.time_zones) == (
        "+61255501234",
        "AU",
        "fixed_line",
        ("Australia/Sydney",),
    )


@pytest.mark.parametrize(
    ("raw", "region"),
    [("070-174 06 05", "SE"), ("070 174 06 05", "SE"), ("+46 70 174 06 05", "US")],
)
def test_swedish_mobile(raw: str, region: str) -> None:
    info = normalize_number(raw, region)
    assert (info.e164, info.country, info.number_type, info.time_zones) == (
        "+46701740605",
        "SE",
        "mobile",
        ("Europe/Stockholm",),
    )


def test_toll_free_gets_country_level_zones_without_unknown() -> None:
    info = normalize_number("800-555-0123", "US")
    assert info.number_type == "toll_free"
    assert info.country == "US"
    assert "America/New_York" in info.time_zones
    assert "America/Los_Angeles" in info.time_zones
    assert "Etc/Unknown" not in info.time_zones
    assert list(info.time_zones) == sorted(info.time_zones)


def test_unknown_time_zone_becomes_empty_list() -> None:
    # International freephone (+800) is valid but phonenumbers knows no zone for it.
    number = phonenumbers.parse("+800 1234 5678")
    assert timezone.time_zones_for_number(number) == ("Etc/Unknown",)
    df = normalize_numbers(["+800 1234 5678"], "US")
    row = df.iloc[0]
    assert row["reason"] is None
    assert row["number_type"] == "toll_free"
    assert row["time_zones"] == []
    # Non-geographic entities have phonenumbers' pseudo-region "001", not an ISO code.
    assert row["country"] == "001"


def test_digits_only_strings_keep_leading_zeros() -> None:
    raws = ["02079460123", "0491570156", "0701740605"]
    df = normalize_numbers(raws, "GB")
    rows = _rows(df)
    assert set(rows) == set(raws)  # keys untouched, leading zeros kept
    assert rows["02079460123"]["e164"] == LONDON_E164
    # Read in GB, the AU/SE national strings are not valid UK numbers.
    assert rows["0491570156"]["reason"] is not None
    au = _rows(normalize_numbers(["0491570156"], "AU"))["0491570156"]
    assert au["e164"] == "+61491570156"


# --- invalid numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        (None, "US", "empty"),
        ("", "US", "empty"),
        ("   ", "US", "empty"),
        ("\t\n", "GB", "empty"),
        ("N/A", "US", "not_a_number"),
        ("abc", "GB", "not_a_number"),
        ("+", "US", "not_a_number"),
        ("12", "US", "too_short"),
        ("011", "US", "too_short"),  # TOO_SHORT_AFTER_IDD
        ("+44 20", "US", "too_short"),
        ("+44 1234", "US", "invalid_number"),  # possible locally only
        ("+999 123", "US", "invalid_country_code"),
        ("+999 1234 5678", "GB", "invalid_country_code"),
        ("+44 20 7946 01234567", "US", "too_long"),
        ("123456789012345678901", "US", "too_long"),  # TOO_LONG parse error
        ("+46 70 174 06 05 12", "US", "impossible_number"),  # INVALID_LENGTH
        ("07700 900123", "GB", "invalid_number"),
        ("+44 7700 900123", "US", "invalid_number"),
        ("01632 960123", "GB", "invalid_number"),
        ("555-0123", "US", "invalid_number"),  # possible locally only
        ("+1 123 456 7890", "US", "invalid_number"),
    ],
)
def test_invalid_reasons(raw: str | None, region: str, reason: str) -> None:
    info = normalize_number(raw, region)
    assert info == NumberInfo(raw, reason=reason)  # every other field None
    assert reason in INVALID_REASONS


def test_invalid_rows_in_frame_have_only_reason() -> None:
    raws = ["", "N/A", "12", "+999 123", "07700 900123", "020 7946 0123"]
    rows = _rows(normalize_numbers(raws, "GB"))
    for raw in raws[:-1]:
        row = rows[raw]
        assert row["reason"] in INVALID_REASONS
        assert all(row[c] is None for c in ("e164", "country", "number_type", "time_zones"))
        assert row["geo_region"] is None
    assert rows["020 7946 0123"]["reason"] is None


def test_invalid_reasons_constant() -> None:
    assert INVALID_REASONS == (
        "empty",
        "not_a_number",
        "invalid_country_code",
        "too_short",
        "too_long",
        "impossible_number",
        "invalid_number",
        "too_long_for_e164",
    )


def test_unknown_default_region_is_refused() -> None:
    with pytest.raises(ValueError):
        normalize_numbers(["212 555 0123"], "XX")


def test_lower_case_default_region_is_accepted() -> None:
    assert normalize_number("212 555 0123", "us").e164 == NY_E164


def test_zz_region_reads_only_international_numbers() -> None:
    rows = _rows(normalize_numbers(["+1 212 555 0123", "212 555 0123"], "ZZ"))
    assert rows["+1 212 555 0123"]["e164"] == NY_E164
    assert rows["212 555 0123"]["reason"] == "invalid_country_code"


def test_non_string_input_is_refused() -> None:
    # An int has already lost "+" and leading zeros: refuse rather than guess.
    with pytest.raises(TypeError):
        normalize_numbers([2125550123], "US")  # type: ignore[list-item]


def test_nan_counts_as_empty() -> None:
    df = normalize_numbers(pd.Series(["212 555 0123", float("nan")]), "US")
    assert sorted(df["reason"].fillna("ok")) == ["empty", "ok"]


# --- DataFrame shape, dedup, performance contract ------------------------------------------


def test_columns_and_one_row_per_distinct_string() -> None:
    raws = [
        "(212) 555-0123",
        "(212) 555-0123",
        "+1 212 555 0123",  # same number, other string: its own row
        "020 7946 0123",
        "N/A",
        "N/A",
        "",
        "",
        "+44 20 7946 0123",
        "(212) 555-0123",
    ]
    df = normalize_numbers(raws, "US")
    assert list(df.columns) == NUMBER_COLUMNS
    assert len(df) == len(set(raws)) == 6
    rows = _rows(df)
    assert set(rows) == set(raws)
    assert rows["(212) 555-0123"]["e164"] == rows["+1 212 555 0123"]["e164"] == NY_E164
    assert rows["+44 20 7946 0123"]["e164"] == LONDON_E164
    # 020 7946 0123 read in the US is not valid.
    assert rows["020 7946 0123"]["reason"] is not None
    assert isinstance(rows["(212) 555-0123"]["time_zones"], list)


def test_empty_input_gives_empty_frame_with_columns() -> None:
    df = normalize_numbers([], "US")
    assert list(df.columns) == NUMBER_COLUMNS
    assert df.empty


def test_accepts_any_iterable() -> None:
    df = normalize_numbers((r for r in ["212 555 0123", "212 555 0123"]), "US")
    assert len(df) == 1


def test_frame_matches_single_value_function() -> None:
    raws = ["0491 570 156", "+44 161 496 0123", "12", "+46 70 174 06 05", "800-555-0123"]
    rows = _rows(normalize_numbers(raws, "AU"))
    for raw in raws:
        info = normalize_number(raw, "AU")
        expected = {
            "raw_number": info.raw_number,
            "e164": info.e164,
            "country": info.country,
            "number_type": info.number_type,
            "time_zones": None if info.time_zones is None else list(info.time_zones),
            "geo_region": info.geo_region,
            "reason": info.reason,
        }
        assert rows[raw] == expected


def test_without_geo_region() -> None:
    raws = ["020 7946 0123", "0161 496 0123", "N/A"]
    df = normalize_numbers(raws, "GB", with_geo_region=False)
    assert df["geo_region"].isna().all()
    assert df["e164"].notna().sum() == 2
    with_geo = _rows(normalize_numbers(raws, "GB"))
    assert with_geo["020 7946 0123"]["geo_region"] == "London"
    assert normalize_number("020 7946 0123", "GB", with_geo_region=False).geo_region is None


def test_geocoder_not_imported_without_geo_region() -> None:
    # A fresh interpreter: the geocoder import costs ~270 ms and ~100 MB, keep it lazy.
    code = (
        "import sys\n"
        "from phone_pipeline.domain.numbers import normalize_numbers\n"
        "normalize_numbers(['020 7946 0123'], 'GB', with_geo_region=False)\n"
        "assert 'phonenumbers.geocoder' not in sys.modules, 'eager geocoder'\n"
        "assert 'dagster' not in sys.modules, 'domain code must not import dagster'\n"
        "normalize_numbers(['020 7946 0123'], 'GB')\n"
        "assert 'phonenumbers.geocoder' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


SEPARATORS = re.compile(r"[\s().\-]+")


@pytest.fixture
def parse_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every text handed to phonenumbers.parse (the real parse still runs)."""
    calls: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(number: str, region: str | None = None, *args, **kwargs):
        calls.append(number)
        return real_parse(number, region, *args, **kwargs)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    return calls


def test_parse_called_once_per_distinct_string(parse_calls: list[str]) -> None:
    distinct = [
        "(212) 555-0123",
        "+1 212 555 0123",
        "020 7946 0123",
        "+44 20 7946 0123",
        "+61 491 570 156",
        "+46 70 174 06 05",
        "N/A",
    ]
    raws = distinct * 5 + ["", "", None]
    df = normalize_numbers(raws, "US")
    assert len(df) == len(distinct) + 2
    # Empty values never reach phonenumbers; every other distinct string exactly once.
    assert len(parse_calls) == len(distinct)
    assert max(Counter(parse_calls).values()) == 1


def test_numbers_are_parsed_grouped_by_country(parse_calls: list[str]) -> None:
    # Interleaved input; parsing must visit each calling code in one contiguous run
    # (phonenumbers thrashes Python's regex cache otherwise).
    uk = [f"+44 20 7946 0{i:03d}" for i in range(100, 110)]
    au = [f"+61 2 5550 {i:04d}" for i in range(1000, 1010)]
    se = [f"+46 70 174 06 {i:02d}" for i in range(10, 20)]
    us = [f"(212) 555-0{i:03d}" for i in range(100, 110)]
    intl_us = [f"011 44 161 496 0{i:03d}" for i in range(100, 110)]
    raws = [r for group in zip(uk, au, se, us, intl_us, strict=True) for r in group]
    normalize_numbers(raws, "US", with_geo_region=False)
    calls = list(parse_calls)  # snapshot: the classification below parses again
    # phonenumbers sees each string without its separators (see the test below).
    by_text = {SEPARATORS.sub("", raw): raw for raw in raws}
    assert sorted(calls) == sorted(by_text)

    country = {text: normalize_number(raw, "US").country for text, raw in by_text.items()}
    codes = [country[text] for text in calls]
    runs = [code for i, code in enumerate(codes) if i == 0 or codes[i - 1] != code]
    assert len(runs) == len(set(runs)), f"calling codes interleaved: {runs}"


def test_strings_differing_only_in_separators_share_one_parse(parse_calls: list[str]) -> None:
    formats = ["(212) 555-0123", "212-555-0123", "212.555.0123", "2125550123", " 212 555 0123 "]
    df = normalize_numbers(formats, "US")
    assert len(parse_calls) == 1
    assert sorted(df["raw_number"]) == sorted(formats)  # every input keeps its own row
    assert set(df["e164"]) == {"+12125550123"}


# Messy spellings of valid and invalid numbers: removing separators must not change any field.
SEPARATOR_CORPUS = [
    ("(212) 555-0123", "US"), ("+1 (212) 555-0123", "US"), ("1-212-555-0123", "US"),
    ("011 44 20 7946 0123", "US"), ("0044 (0)20 7946 0123", "US"), ("+44 (0) 161 496 0123", "US"),
    ("020 7946 0123", "GB"), ("(020) 7946-0123", "GB"), ("07700 900 123", "GB"),
    ("+61 (0)2 5550 1234", "AU"), ("0011 44 20 7946 0123", "AU"), ("0491 570 156", "AU"),
    ("070-174 06 05", "SE"), ("+46 (0)70 174 06 05", "SE"), ("212-555-0123 ext. 12", "US"),
    ("212 555 0123 x12", "US"), ("1-800-FLOWERS", "US"), ("+1 800 FLOWERS", "US"),
    ("(12) 34", "US"), ("+999 123 456", "US"), ("555-0123", "US"), ("+44 1234", "US"),
    ("tel:+1-212-555-0123", "US"), ("+1.212.555.0123", "US"), ("212 - 555 - 0123", "US"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "region"), SEPARATOR_CORPUS)
def test_separators_do_not_change_the_result(raw: str, region: str) -> None:
    # The reference: the raw string parsed alone, separators and all, as phonenumbers sees it.
    reference = normalize_number(raw, region)
    batch = normalize_numbers([raw, SEPARATORS.sub("", raw) or raw], region)
    rows = batch.set_index("raw_number").to_dict("index")
    got = rows[raw]
    assert got["e164"] == reference.e164
    assert got["reason"] == reference.reason
    assert got["number_type"] == reference.number_type
    assert got["country"] == reference.country


def test_shortcuts_agree_with_phonenumbers_reference() -> None:
    # The module skips some repeated phonenumbers work (number_type as validity test, cached
    # country-level zones); check it against the plain public functions.
    cases = [
        ("(212) 555-0123", "US"),
        ("800-555-0123", "US"),
        ("415 555 0199", "US"),
        ("020 7946 0123", "GB"),
        ("0121 496 0123", "GB"),
        ("07700 900123", "GB"),
        ("0491 570 156", "AU"),
        ("02 5550 1234", "AU"),
        ("070-174 06 05", "SE"),
        ("+800 1234 5678", "US"),
        ("+1 123 456 7890", "US"),
    ]
    for raw, region in cases:
        number = phonenumbers.parse(raw, region)
        valid = phonenumbers.is_valid_number(number)
        info = normalize_number(raw, region)
        assert (info.reason is None) == valid
        if valid:
            zones = sorted(z for z in timezone.time_zones_for_number(number) if z != "Etc/Unknown")
            assert list(info.time_zones) == zones
            assert info.geo_region == (geocoder.description_for_number(number, "en") or None)
            assert info.country == phonenumbers.region_code_for_number(number)


def test_numbers_never_printed_or_logged(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    normalize_numbers(["(212) 555-0123", "N/A", "07700 900123"], "GB")
    out, err = capsys.readouterr()
    assert out == err == ""
    assert "555" not in caplog.text and "7700" not in caplog.text


def test_module_exports() -> None:
    assert numbers.NUMBER_COLUMNS == [
        "raw_number",
        "e164",
        "country",
        "number_type",
        "time_zones",
        "geo_region",
        "reason",
    ]


def test_batch_equals_one_by_one_on_a_generated_log(tmp_path) -> None:
    # Every format the generator writes (and its junk), parsed in a batch with shared parses,
    # must give exactly what each string parsed alone gives.
    import datetime as dt

    from phone_pipeline_synthetic import generate

    summary = generate(tmp_path, rows=6_000, days=1, seed=9, start_date=dt.date(2026, 11, 1))
    calls = pd.read_csv(summary.call_files[0], dtype=str, keep_default_na=False)
    raws = sorted(set(calls["caller_number"]) | set(calls["callee_number"]))
    batch = normalize_numbers(raws, "US", with_geo_region=False).set_index("raw_number")
    assert len(batch) == len(raws)
    for raw in raws:
        alone = normalize_number(raw, "US", with_geo_region=False)
        assert (batch.at[raw, "e164"], batch.at[raw, "reason"]) == (alone.e164, alone.reason), raw


def test_parse_slices_keep_spellings_of_one_parse_together() -> None:
    spellings = [
        [f"(212) 555-{i:04d}", f"212.555.{i:04d}", f"212-555-{i:04d}", f"+1 212 555 {i:04d}"]
        for i in range(100)
    ]
    london = [f"+44 20 7946 {i:04d}" for i in range(100)]
    numbers = [raw for group in spellings for raw in group] + london + ["", "  "]

    slices = parse_slices(numbers, "US", 3)

    assert len(slices) == 3
    flat = [raw for part in slices for raw in part]
    assert sorted(flat) == sorted(set(numbers))
    slice_of = {raw: index for index, part in enumerate(slices) for raw in part}
    # National spellings of one number differ only in separators: one parse, one slice.
    for group in spellings:
        assert len({slice_of[raw] for raw in group[:3]}) == 1
    # As many parses in each: 300 texts (New York national, New York international, London).
    texts = [{re.sub(r"[^0-9+]", "", raw) for raw in part} - {""} for part in slices]
    assert [len(part) for part in texts] == [100, 100, 100]
