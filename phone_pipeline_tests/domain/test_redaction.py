"""Unit tests for phone_pipeline.domain.redaction.

The rule is deliberately blunt: any run of seven or more characters that starts and ends with a digit
and holds only digits and the separators people write numbers with (space, `( ) . - /`), optionally
after a `+`, is replaced. It cannot tell a phone number from other long digit runs, so it errs on
the side of redacting. Documented consequences, pinned below:

* a run that is exactly an ISO date (`2026-11-01`) is kept, also inside timestamps and file names
  (`calls_2026-11-01.csv`), so that messages still say which file and day; other date forms
  (`01/11/2026`, `20261101`) are redacted;
* times (`10:00:00`, colons are no separator), short counts (up to six digits), thousands written
  with commas (`1,234,567`) and ordinary words and file names are kept;
* a bare seven-digit count (`1234567 rows`) is redacted;
* the seven is counted in characters, not digits (the source comment says "seven or more digits"):
  `12-34-56`, `3.14159` and `10 - 200` are redacted as well.

Only fictional numbers: NANP 212-555-01xx and the UK drama block 020 7946 0xxx.
"""

from __future__ import annotations

import re

import pytest

from phone_pipeline.domain.numbers import normalize_number
from phone_pipeline.domain.redaction import REDACTED, redact


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize(
    "number",
    [
        "2125550123",
        "212-555-0123",
        "212.555.0123",
        "212 555 0123",
        "(212) 555-0123",
        "212/555-0123",
        "+1 212 555 0123",
        "+1-212-555-0123",
        "+1 (212) 555-0123",
        "1-212-555-0123",
        "+12125550123",
        "+44 20 7946 0123",
        "+44 (0)20 7946 0123",
        "0044 20 7946 0123",
        "020 7946 0123",
        "02079460123",
        "555-0123",  # seven digits, local form
    ],
)
def test_phone_numbers_in_several_formats_are_redacted(number: str) -> None:
    text = f"CSV Error on Line: 3, Original Line: C7,{number},answered and more"
    result = redact(text)
    assert REDACTED in result
    assert number not in result
    # No four-digit tail of the number survives anywhere in the message.
    assert digits(number)[-4:] not in digits(result.replace("Line: 3", ""))
    assert result.startswith("CSV Error on Line: 3, Original Line: C7,")
    assert result.endswith(",answered and more")


def test_every_number_in_a_line_is_redacted() -> None:
    line = "C1,212-555-0101,+44 20 7946 0102,2026-11-01T10:00:00Z,60,answered"
    result = redact(line)
    assert "0101" not in result
    assert "0102" not in result
    assert result.count(REDACTED) == 2  # caller and callee; the ISO date is kept
    assert result == (f"C1,{REDACTED},{REDACTED},2026-11-01T10:00:00Z,60,answered")


def test_number_next_to_letters_and_punctuation() -> None:
    assert redact("tel:+12125550123;ext=1") == f"tel:{REDACTED};ext=1"
    assert redact('"212-555-0123"') == f'"{REDACTED}"'
    assert redact("call 212-555-0123.") == f"call {REDACTED}."
    assert redact("212-555-0123 ext. 12") == f"{REDACTED} ext. 12"
    # A leading bracket is not a digit, so it stays; the digits do not.
    assert redact("(212) 555-0123") == f"({REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "not readable: Invalid Input Error: Error when sniffing file",
        "calls_nov.csv: missing required column(s) call_id, started_at",
        "CSV Error on Line: 25002",
        "Expected Number of Columns: 6 Found: 7",
        "rows 12 to 345 of 123456",  # at most six digits in a row
        "3 files, 1,234,567 rows",  # commas break the run
        "started at 10:00:00",
        "version 1.2.3",
        "1-23-4",  # six characters
        "v1:3f2a9c",
        "",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-01",
        "no rows on 2026-11-01 between 00:00",
        "2026-11-01T23:30:00-02:00",
        "calls_2026-11-01.csv",
    ],
)
def test_iso_dates_are_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01 2026-11-02", REDACTED),  # two dates in one run are no longer a date
        ("2026-11-01 212-555-0123", REDACTED),  # a date next to a number protects nothing
        ("01/11/2026", REDACTED),
        ("1234567 rows", f"{REDACTED} rows"),
        ("20261101.csv", f"{REDACTED}.csv"),
        # The threshold counts characters, not digits: two digits around separators suffice.
        ("12-34-56", REDACTED),
        ("pi is 3.14159", f"pi is {REDACTED}"),
        ("lines 10 - 200", f"lines {REDACTED}"),
    ],
)
def test_dates_and_long_counts_are_redacted_too(text: str, expected: str) -> None:
    # Over-redaction is the documented price of a rule that never lets a number through.
    assert redact(text) == expected


def test_seven_characters_is_the_threshold() -> None:
    assert redact("123456") == "123456"
    assert redact("1234567") == REDACTED
    assert redact("12 3456") == REDACTED  # separators count towards the length
    assert redact("123-45") == "123-45"


def test_redaction_is_idempotent_and_leaves_no_digit_run() -> None:
    text = "a 212-555-0101 b +44 20 7946 0102 c 2125550103 d"
    once = redact(text)
    assert redact(once) == once
    assert not re.search(r"\d{3}", once)
    assert once == f"a {REDACTED} b {REDACTED} c {REDACTED} d"


def test_multiline_messages() -> None:
    text = "first line\nOriginal Line: 212-555-0123\nlast line 42"
    assert redact(text) == f"first line\nOriginal Line: {REDACTED}\nlast line 42"


@pytest.mark.parametrize(
    "dash", ["\u2013", "\u2011", "\u2212"], ids=["en_dash", "nb_hyphen", "minus"]
)
def test_numbers_with_unicode_dashes_are_redacted(dash: str) -> None:
    number = f"212{dash}555{dash}0123"
    # The pipeline's own parser accepts this as a phone number ...
    assert normalize_number(number, "US").e164 == "+12125550123"
    # ... so a message quoting it must not keep it.
    result = redact(f"Original Line: C1,{number},answered")
    assert "0123" not in result
