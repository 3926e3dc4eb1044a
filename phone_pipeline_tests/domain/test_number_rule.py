"""One definition of a valid number: what the validator vouches for is exactly what the gates
accept, for every example number phonenumbers ships, in every rendering."""

from __future__ import annotations

import re

import duckdb
import phonenumbers
import pytest

from phone_pipeline.domain.numbers import (
    E164_MAX_DIGITS,
    E164_REGEX,
    E164_SQL_PATTERN,
    INVALID_REASONS,
    e164_problem,
    is_e164,
    normalize_number,
    normalize_numbers,
)
from phone_pipeline.stages.consent import checks as consent_checks
from phone_pipeline.stages.validate import checks as validate_checks
from phone_pipeline_tests.example_numbers import example_numbers, example_renderings

REGION = "US"  # the renderings all carry their country code: any default region reads them


def _gate_accepts(e164: str | None) -> bool:
    """What the Great Expectations gates do with the stored value: a null fails the not-null
    expectation of the callers, a value must match the gates' regex (pandas `str.match`)."""
    return e164 is not None and re.match(E164_REGEX, e164) is not None


def test_the_gates_use_the_domain_rule() -> None:
    regexes = {
        expectation.regex
        for expectation in [
            *validate_checks.validated_expectations(3600),
            *consent_checks.consent_events_expectations(),
            *consent_checks.consented_expectations(),
        ]
        if hasattr(expectation, "regex")
    }
    assert regexes == {E164_REGEX}


def test_there_are_example_numbers_of_every_kind() -> None:
    numbers = example_numbers()
    assert len(numbers) > 1000
    assert any(phonenumbers.region_code_for_number(n) == "001" for n in numbers)  # non-geographic
    assert "+989601" in {phonenumbers.format_number(n, 0) for n in numbers}  # the case of issue 13


def test_validator_and_gate_agree_on_every_example_number() -> None:
    # One test over the 3,000-odd renderings rather than a test each: the same verdicts, without
    # thousands of test items in every run of the suite.
    disagreements = []
    for rendering, text in example_renderings():
        info = normalize_number(text, REGION, with_geo_region=False)
        vouched = info.reason is None
        agrees = vouched == _gate_accepts(info.e164) == is_e164(info.e164) and (
            info.country is not None  # the callers' gate requires a country too
            if vouched
            else info.e164 is None and info.reason in INVALID_REASONS
        )
        if not agrees:
            disagreements.append((rendering, text, info.reason))
    assert not disagreements, disagreements[:20]


def test_batch_parsing_gives_the_same_verdicts() -> None:
    texts = [text for _, text in example_renderings()]
    frame = normalize_numbers(texts, REGION, with_geo_region=False)
    assert len(frame) == len(set(texts))
    for e164, reason in zip(frame["e164"], frame["reason"], strict=True):
        assert (reason is None) == _gate_accepts(e164) == is_e164(e164)


def test_duckdb_pattern_agrees_with_python() -> None:
    samples = [phonenumbers.format_number(n, 0) for n in example_numbers()]
    samples += [
        "+49800123456789012",
        "+0123456",
        "+1",
        "12025550123",
        "+1 202",
        "+1234567890123456",
    ]
    with duckdb.connect() as con:
        matched = dict(
            con.execute(
                "SELECT value, regexp_full_match(value, ?) FROM unnest(?) AS t(value)",
                [E164_SQL_PATTERN, samples],
            ).fetchall()
        )
    assert matched == {value: is_e164(value) for value in samples}


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+49 800 123456789012", "DE"),  # German toll-free, 15-digit national number
        ("+49 30 1234567890123", "DE"),  # Berlin with a long extension
        ("+81 0037123456789012", "JP"),  # Japanese 17-digit toll-free
    ],
)
def test_valid_for_phonenumbers_but_longer_than_e164_is_refused(raw: str, region: str) -> None:
    assert phonenumbers.is_valid_number(phonenumbers.parse(raw, region))
    info = normalize_number(raw, region)
    assert info.reason == "too_long_for_e164"
    assert info.e164 is None and info.country is None


def test_short_valid_numbers_are_admitted() -> None:
    info = normalize_number("+98 9601", "IR")
    assert (info.e164, info.country, info.number_type, info.reason) == (
        "+989601",
        "IR",
        "uan",
        None,
    )


@pytest.mark.parametrize(
    ("e164", "problem"),
    [
        ("+989601", None),
        ("+" + "4" * E164_MAX_DIGITS, None),
        ("+" + "4" * (E164_MAX_DIGITS + 1), "too_long_for_e164"),
        ("+0123456", "invalid_country_code"),
        ("+1", "invalid_country_code"),
        ("+1 202 555", "not_a_number"),
        ("+١٢٣٤٥٦٧", "not_a_number"),  # Arabic-Indic digits are digits to str.isdigit, not to E.164
        (None, "empty"),
    ],
)
def test_e164_problem(e164: str | None, problem: str | None) -> None:
    assert e164_problem(e164) == problem
    assert is_e164(e164) == (problem is None)
    assert problem is None or problem in INVALID_REASONS
