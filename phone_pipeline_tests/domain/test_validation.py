"""Unit tests for phone_pipeline.domain.validation (`cleaned_calls_sql`, `quarantine_verdicts_sql`).

A raw_calls-like table is written by hand; each row carries a label in `cell_id` (passed through
untouched) so that results are looked up by what the row was meant to test.
Only fictional numbers: NANP 212-555-01xx and the UK drama block +44 20 7946 0xxx.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from phone_pipeline.domain.validation import (
    DISPOSITIONS,
    QUARANTINE_REASONS,
    cleaned_calls_sql,
    quarantine_share,
    quarantine_verdicts_sql,
    validation_values,
)
from phone_pipeline.sql import run
from phone_pipeline.stages.validate.number_cache import cache_new_numbers
from phone_pipeline.warehouse import RESTRICTED_TABLES

MAX_SECONDS = 14_400


def classify_calls(
    con: duckdb.DuckDBPyConnection,
    raw_sql: str,
    number_cache: str,
    region: str,
    max_seconds: int,
    columns: str = "*",
) -> duckdb.DuckDBPyConnection:
    """Every row with `reason`/`detail` (NULL reason = admitted), as the stage writes them:
    cleaned rows, and the verdicts of those not admitted; the stage's values bound."""
    cleaned = cleaned_calls_sql(
        raw_sql, number_cache, internal_extension_sql="raw.internal_extension"
    )
    return run(
        con,
        f"""
        SELECT {columns} FROM (
            SELECT cleaned.*, verdicts.reason, verdicts.detail
            FROM ({cleaned}) AS cleaned
            LEFT JOIN ({quarantine_verdicts_sql(cleaned)}) AS verdicts USING (row_key)
        )
        """,
        validation_values(region, max_seconds),
    )


A = "212-555-0101"
B = "+44 20 7946 0102"
C = "(212) 555-0103"
TS = "2026-11-01T10:00:00Z"

COLUMNS = (
    "cell_id",  # the test label
    "call_id",
    "caller_number",
    "callee_number",
    "duration_seconds",
    "disposition",
    "timestamp_status",
    "load_order",
    "source_row",
    "internal_extension",
)


_LABEL = "<label>"  # default call_id: the row's label


def row(
    label: str,
    call_id: str | None = _LABEL,
    caller: str | None = A,
    callee: str | None = B,
    duration: str | None = "60",
    disposition: str | None = "answered",
    status: str = "ok",
    load_order: int = 1,
    source_row: int | None = None,
    internal: str | None = None,
) -> dict:
    return {
        "cell_id": label,
        "call_id": label if call_id == _LABEL else call_id,
        "caller_number": caller,
        "callee_number": callee,
        "duration_seconds": duration,
        "disposition": disposition,
        "timestamp_status": status,
        "load_order": load_order,
        "source_row": source_row,
        "internal_extension": internal,
    }


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"CREATE TABLE number_cache ({RESTRICTED_TABLES['number_cache']})")
    connection.execute(
        "CREATE TABLE raw (cell_id VARCHAR, call_id VARCHAR, caller_number VARCHAR, "
        "callee_number VARCHAR, started_at VARCHAR, duration_seconds VARCHAR, disposition VARCHAR, "
        "timestamp_status VARCHAR, load_order BIGINT, source_row BIGINT, source_file VARCHAR, "
        "internal_extension VARCHAR)"
    )
    yield connection
    connection.close()


def classify(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> dict[str, dict]:
    """Load the rows (source_row defaults to the position within their load_order), fill the
    number cache the way the pipeline does, and return label -> classified row."""
    counters: dict[int, int] = {}
    for values in rows:
        counters[values["load_order"]] = counters.get(values["load_order"], 0) + 1
        source_row = values["source_row"] or counters[values["load_order"]]
        con.execute(
            "INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                values["cell_id"],
                values["call_id"],
                values["caller_number"],
                values["callee_number"],
                TS,
                values["duration_seconds"],
                values["disposition"],
                values["timestamp_status"],
                values["load_order"],
                source_row,
                f"file{values['load_order']}.csv",
                values["internal_extension"],
            ],
        )
    for column in ("caller_number", "callee_number"):
        cache_new_numbers(con, f"SELECT {column} AS raw_number FROM raw", "US")
    result = classify_calls(con, "SELECT * FROM raw", "number_cache", "US", MAX_SECONDS)
    names = [column[0] for column in result.description]
    out = [dict(zip(names, values, strict=True)) for values in result.fetchall()]
    assert len(out) == len(rows), "classification must keep every row exactly once"
    by_label = {values["cell_id"]: values for values in out}
    assert len(by_label) == len(out), "test labels must be unique"
    return by_label


def reasons(result: dict[str, dict]) -> dict[str, tuple[str | None, str | None]]:
    return {label: (values["reason"], values["detail"]) for label, values in result.items()}


def test_one_row_per_quarantine_reason(con: duckdb.DuckDBPyConnection) -> None:
    rows = [
        row("admitted"),
        row("missing_call_id", call_id=None),
        row("blank_call_id", call_id="   "),
        row("unreadable_ts", status="unreadable"),
        row("out_of_range_ts", status="out_of_range"),
        row("caller_too_short", caller="12345"),
        row("internal_caller", caller="1001", internal="caller"),
        row("internal_both", caller="1001", callee="1002", internal="both"),
        row("internal_unreadable_ts", caller="1001", internal="caller", status="unreadable"),
        row("caller_empty", caller=None),
        row("caller_blank", caller="  "),
        row("callee_bad_country", callee="+999 1234"),
        row("callee_not_a_number", callee="not a number"),
        row("duration_text", duration="N/A"),
        row("duration_empty", duration=None),
        row("duration_negative", duration="-5"),
        row("duration_absurd", duration=str(MAX_SECONDS + 1)),
        row("duration_at_max", duration=str(MAX_SECONDS)),
        row("duration_zero", duration="0"),
        row("disposition_unknown", disposition="hung_up"),
        row("disposition_missing", disposition=None),
        row("first", call_id="dup-1"),
        row("second", call_id="dup-1"),
    ]
    result = reasons(classify(con, rows))
    assert result == {
        "admitted": (None, None),
        "missing_call_id": ("missing_call_id", None),
        "blank_call_id": ("missing_call_id", None),
        "unreadable_ts": ("bad_timestamp", None),
        "out_of_range_ts": ("started_at_out_of_range", None),
        "caller_too_short": ("invalid_caller_number", "too_short"),
        # An extension, as its file's profile judged: an internal call, not an invalid number.
        "internal_caller": ("internal_call", "caller"),
        "internal_both": ("internal_call", "both"),
        "internal_unreadable_ts": ("bad_timestamp", None),
        "caller_empty": ("invalid_caller_number", "empty"),
        "caller_blank": ("invalid_caller_number", "empty"),
        "callee_bad_country": ("invalid_callee_number", "invalid_country_code"),
        "callee_not_a_number": ("invalid_callee_number", "not_a_number"),
        "duration_text": ("invalid_duration", None),
        "duration_empty": ("invalid_duration", None),
        "duration_negative": ("negative_duration", None),
        "duration_absurd": ("absurd_duration", f"longer than {MAX_SECONDS} s"),
        "duration_at_max": (None, None),
        "duration_zero": (None, None),
        "disposition_unknown": ("unknown_disposition", None),
        "disposition_missing": ("unknown_disposition", None),
        "first": (None, None),
        "second": ("duplicate_call_id", None),
    }
    assert {reason for reason, _ in result.values() if reason} == set(QUARANTINE_REASONS)


def test_admitted_row_carries_parsed_numbers(con: duckdb.DuckDBPyConnection) -> None:
    result = classify(con, [row("ok", caller=C, callee=B, duration=" 075 ")])["ok"]
    assert result["reason"] is None
    assert result["caller_e164"] == "+12125550103"
    assert result["caller_country"] == "US"
    assert result["callee_e164"] == "+442079460102"
    assert result["callee_country"] == "GB"
    assert result["duration_int"] == 75
    assert result["clean_call_id"] == "ok"
    assert result["caller_number"] == C  # the raw text is kept alongside
    assert result["source_file"] == "file1.csv"


@pytest.mark.parametrize(
    "raw",
    [
        "answered",
        "ANSWERED",
        " Answered ",
        "No_Answer",
        "VoiceMail ",
        "   failed",
        "\tbusy",
        "busy\r",
    ],
)
def test_disposition_case_and_whitespace_normalised(
    con: duckdb.DuckDBPyConnection, raw: str
) -> None:
    result = classify(con, [row("x", disposition=raw)])["x"]
    assert result["reason"] is None
    assert result["clean_disposition"] == raw.strip().lower()
    assert result["clean_disposition"] in DISPOSITIONS


@pytest.mark.parametrize("raw", ["no answer", "answered!", "", "answer"])
def test_near_miss_dispositions_are_unknown(con: duckdb.DuckDBPyConnection, raw: str) -> None:
    assert classify(con, [row("x", disposition=raw)])["x"]["reason"] == "unknown_disposition"


def test_duplicates_keep_first_by_load_order_then_source_row(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = [
        # Inserted out of order on purpose: order must come from load_order/source_row only.
        row("file2_row1", call_id="dup", load_order=2, source_row=1),
        row("file1_row9", call_id="dup", load_order=1, source_row=9),
        row("file1_row3", call_id="dup", load_order=1, source_row=3),
        row("file3_row1", call_id="dup", load_order=3, source_row=1),
    ]
    result = reasons(classify(con, rows))
    assert result == {
        "file1_row3": (None, None),
        "file1_row9": ("duplicate_call_id", None),
        "file2_row1": ("duplicate_call_id", None),
        "file3_row1": ("duplicate_call_id", None),
    }


def test_call_ids_compared_after_trimming(con: duckdb.DuckDBPyConnection) -> None:
    rows = [
        row("plain", call_id="C-1"),
        row("padded", call_id="  C-1 "),
        row("other", call_id="c-1"),
    ]
    result = reasons(classify(con, rows))
    assert result == {
        "plain": (None, None),
        "padded": ("duplicate_call_id", None),
        "other": (None, None),  # ids are case-sensitive
    }


def test_call_ids_padded_with_tabs_are_duplicates(con: duckdb.DuckDBPyConnection) -> None:
    rows = [row("plain", call_id="C-1"), row("tabbed", call_id="C-1\t")]
    assert reasons(classify(con, rows))["tabbed"] == ("duplicate_call_id", None)


def test_invalid_first_occurrence_does_not_make_a_later_one_a_duplicate(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = [
        row("bad_first", call_id="dup", duration="oops", load_order=1, source_row=1),
        row("bad_second", call_id="dup", caller="12345", load_order=1, source_row=2),
        row("good_first", call_id="dup", load_order=2, source_row=1),
        row("good_second", call_id="dup", load_order=2, source_row=2),
    ]
    result = reasons(classify(con, rows))
    assert result == {
        "bad_first": ("invalid_duration", None),
        "bad_second": ("invalid_caller_number", "too_short"),
        "good_first": (None, None),
        "good_second": ("duplicate_call_id", None),
    }


def test_missing_call_ids_are_not_duplicates_of_each_other(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = [row("none1", call_id=""), row("none2", call_id=" "), row("none3", call_id="")]
    result = reasons(classify(con, rows))
    assert set(result.values()) == {("missing_call_id", None)}


@pytest.mark.parametrize(
    ("problems", "expected"),
    [
        ({"call_id": "", "caller": "12345"}, "missing_call_id"),
        ({"call_id": " ", "status": "unreadable", "duration": "-1"}, "missing_call_id"),
        ({"status": "unreadable", "caller": "12345"}, "bad_timestamp"),
        ({"status": "out_of_range", "duration": "abc"}, "started_at_out_of_range"),
        ({"caller": "12345", "callee": "12345"}, "invalid_caller_number"),
        ({"callee": None, "duration": "x"}, "invalid_callee_number"),
        ({"duration": "x", "disposition": "nope"}, "invalid_duration"),
        ({"duration": "-3", "disposition": "nope"}, "negative_duration"),
        ({"duration": "999999", "disposition": "nope"}, "absurd_duration"),
    ],
)
def test_priority_order(con: duckdb.DuckDBPyConnection, problems: dict, expected: str) -> None:
    assert classify(con, [row("x", **problems)])["x"]["reason"] == expected


def test_priority_matches_the_declared_order(con: duckdb.DuckDBPyConnection) -> None:
    # For each reason, a row that has it and every later problem must report exactly it.
    everything_after = {
        "missing_call_id": {"call_id": ""},
        "bad_timestamp": {"status": "unreadable"},
        "started_at_out_of_range": {"status": "out_of_range"},
        "invalid_caller_number": {"caller": "12345"},
        "invalid_callee_number": {"callee": "12345"},
        "invalid_duration": {"duration": "n/a"},
        "unknown_disposition": {"disposition": "nope"},
    }
    rows = []
    ordered = list(everything_after)
    for index, reason in enumerate(ordered):
        problems: dict = {}
        for later in reversed(ordered[index:]):
            problems.update(everything_after[later])
        rows.append(row(reason, **problems))
    result = classify(con, rows)
    assert {label: values["reason"] for label, values in result.items()} == {
        reason: reason for reason in ordered
    }


def test_duplicate_detection_ignores_quarantined_rows_but_counts_all(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = [row(f"r{i}", call_id=f"id{i % 3}") for i in range(9)]
    result = classify(con, rows)
    admitted = [label for label, values in result.items() if values["reason"] is None]
    duplicates = [
        label for label, values in result.items() if values["reason"] == "duplicate_call_id"
    ]
    assert sorted(admitted) == ["r0", "r1", "r2"]
    assert len(duplicates) == 6


def test_number_cache_of_another_region_is_not_used(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO raw (cell_id, call_id, caller_number, callee_number, started_at, "
        "duration_seconds, disposition, timestamp_status, load_order, source_row, "
        f"source_file) VALUES ('x', 'x', '{A}', '{B}', '{TS}', '1', 'busy', 'ok', 1, 1, 'f')"
    )
    cache_new_numbers(con, "SELECT caller_number AS raw_number FROM raw", "GB")
    cache_new_numbers(con, "SELECT callee_number AS raw_number FROM raw", "GB")
    (reason,) = classify_calls(
        con, "SELECT * FROM raw", "number_cache", "US", 60, columns="reason"
    ).fetchone()
    assert reason == "invalid_caller_number"


@pytest.mark.parametrize("region", ["USA", "1A", "", "U'"])
def test_bad_default_region_raises(region: str) -> None:
    with pytest.raises(ValueError, match="ISO 3166"):
        classify_calls(duckdb.connect(), "SELECT * FROM raw", "number_cache", region, 60)


@pytest.mark.parametrize(
    "raw",
    [value for value in ("0x10", "0b11", "1_000", "1e3", "12.5", ".5")],
)
def test_non_decimal_durations_are_invalid(con: duckdb.DuckDBPyConnection, raw: str) -> None:
    assert classify(con, [row("x", duration=raw)])["x"]["reason"] == "invalid_duration"


def test_internal_calls_are_outside_the_quarantine_share() -> None:
    assert quarantine_share(10, {"invalid_caller_number": 1}) == 0.1
    # 6 rows, 2 internal calls, 1 invalid: 1 of the 4 calls between phone numbers.
    assert quarantine_share(6, {"internal_call": 2, "invalid_caller_number": 1}) == 0.25
    assert quarantine_share(2, {"internal_call": 2}) == 0.0
    assert quarantine_share(0, {}) == 0.0
