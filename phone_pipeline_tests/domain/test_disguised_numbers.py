"""Issue 13, numbers in disguise: keypad letters, invisible characters, other scripts' digits.

One rule (domain.redaction) decides what reads as a phone number for redaction, the no-numbers
gates and the leak scans; it normalises the text first. Fictional numbers only (NANP 555-01xx).
"""

from __future__ import annotations

import duckdb
import pytest

from phone_pipeline.domain.redaction import (
    REDACTED,
    contains_phone_number,
    normalize_for_matching,
    redact,
)
from phone_pipeline.stages.pseudonymize.checks import phone_numbers_found
from phone_pipeline.warehouse import prepare_restricted

FULLWIDTH = str.maketrans("+0123456789-", "＋０１２３４５６７８９－")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
EXTENDED_ARABIC_INDIC = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

DISGUISED = {
    "vanity letters": "+1-415-JKL-0122",
    "vanity letters, lower case": "+1-415-jkl-0122",
    "vanity word, national": "1-800-FLOWERS",
    "zero-width space": "+1 415 555\u200b0122",
    "zero-width space between every digit": "\u200b".join("+14155550122"),
    "zero-width joiner": "+1415\u200d555\u200d0122",
    "zero-width non-joiner": "+1415\u200c555\u200c0122",
    "byte order mark": "\ufeff+1415\ufeff5550122",
    "soft hyphen": "+1\u00ad415\u00ad555\u00ad0122",
    "word joiner": "+1\u2060415\u20605550122",
    "combining grapheme joiner": "+1415\u034f555\u034f0122",
    "fullwidth digits": "+1-415-555-0122".translate(FULLWIDTH),
    "arabic-indic digits": "+14155550122".translate(ARABIC_INDIC),
    "extended arabic-indic digits": "+14155550122".translate(EXTENDED_ARABIC_INDIC),
    "no-break spaces": "+1\u00a0415\u00a0555\u00a00122",
    "narrow no-break spaces": "+1\u202f415\u202f555\u202f0122",
    "inside words": "promo-call-+1-415-JKL-0122-now",
    "zero-width inside words": "winter2026 \u200b+1 415\u200b555 0122\u200b sale",
}
WORDS = [
    "spring-sale",
    "2026 spring sale",
    "Black Friday 2026",
    "summer_sale_2026",
    "retention-q4",
    "WINTER-DEALS",
    "Sale 2026-11-01",
    "CALLS_2026-11-01.CSV",
    "café crème",  # combining marks in words are not digits
    "a\u200bb",
    "",
]


@pytest.mark.parametrize("text", DISGUISED.values(), ids=DISGUISED.keys())
def test_disguised_numbers_are_found_and_redacted(text: str) -> None:
    assert contains_phone_number(text)
    redacted = redact(text)
    assert REDACTED in redacted
    assert not contains_phone_number(redacted)
    assert "0122" not in normalize_for_matching(redacted)


@pytest.mark.parametrize("text", WORDS)
def test_words_are_not_numbers(text: str) -> None:
    assert not contains_phone_number(text)
    assert redact(text) == text


def test_redaction_keeps_the_text_around_a_disguised_number() -> None:
    assert redact("campaign +1-415-JKL-0122, call now") == f"campaign {REDACTED}, call now"
    assert redact("id=\u200b+1 415 555\u200b0122;") == f"id=\u200b{REDACTED};"


def test_normalisation() -> None:
    assert normalize_for_matching("＋１\u00a0٤١٥\u200b\u00ad5550122") == "+1 4155550122"
    assert normalize_for_matching("JKL") == "JKL"  # letters are mapped only where they fit


@pytest.mark.parametrize("text", DISGUISED.values(), ids=DISGUISED.keys())
def test_the_no_numbers_gate_flags_a_disguised_campaign_id(text: str) -> None:
    with duckdb.connect() as con:
        prepare_restricted(con)  # the gate also probes the number cache
        con.execute(
            "CREATE TABLE staged AS SELECT * FROM (VALUES "
            "('v1:0123456789abcdef0123456789abcdef', 'spring-sale'), "
            "('v1:00000000000000000000000000000000', ?)) AS t(callee_pseudonym, campaign_id)",
            [text],
        )
        assert phone_numbers_found(con, "staged", ["callee_pseudonym", "campaign_id"]) == (0, 1)


def test_the_gate_passes_words_and_pseudonyms_but_not_a_number_in_a_pseudonym_column() -> None:
    with duckdb.connect() as con:
        prepare_restricted(con)
        con.execute(
            "CREATE TABLE staged (callee_pseudonym VARCHAR, campaign_id VARCHAR, scope VARCHAR)"
        )
        con.execute(
            "INSERT INTO staged VALUES (?, ?, 'all'), (?, ?, 'campaign')",
            ["v1:1234567890abcdef0123456789abcdef", WORDS[0], "v2:" + "9" * 32, WORDS[1]],
        )
        columns = ["callee_pseudonym", "campaign_id", "scope"]
        assert phone_numbers_found(con, "staged", columns) == (0, 0)
        # A campaign id shaped like a pseudonym is still scanned: only pseudonym columns trust it.
        con.execute(
            "INSERT INTO staged VALUES (NULL, 'v1:' || '4155550122' || repeat('a', 22), 'x')"
        )
        con.execute("INSERT INTO staged VALUES ('+1-415-JKL-0122', NULL, 'x')")
        assert phone_numbers_found(con, "staged", columns) == (0, 2)
