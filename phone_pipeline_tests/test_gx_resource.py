"""`GreatExpectationsResource.validate` on small frames of fictional numbers (NANP 212-555-01xx).

What a gate may learn from Great Expectations is counts: whether each expectation passed and how
many rows it looked at or rejected, never a value of the frame. GX must also stay quiet (no
progress bars), offline (no connection of any kind) and leave no project (`gx/`,
`great_expectations.yml`) in the working directory.

Tests that look at what happens while the GX context is built reset the resource's cached batch
definition first, so that the context is built inside the test whatever ran before.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import phone_pipeline.resources as resources
from phone_pipeline.resources import GreatExpectationsResource, SuiteOutcome

NANP_FICTION = r"^212-555-01[0-9]{2}$"
VALID_NUMBERS = ["212-555-0101", "212-555-0102", "212-555-0103", "212-555-0104", "212-555-0105"]
PROGRESS_MARKERS = ("Calculating Metrics", "%|", "it/s")


def gxe() -> Any:
    import great_expectations.expectations as expectations

    return expectations


def suite(column: str = "caller_number") -> list[Any]:
    e = gxe()
    return [
        e.ExpectTableRowCountToBeBetween(min_value=1, max_value=100),
        e.ExpectColumnValuesToNotBeNull(column=column),
        e.ExpectColumnValuesToMatchRegex(column=column, regex=NANP_FICTION),
        e.ExpectColumnValuesToBeUnique(column=column),
        e.ExpectColumnValuesToBeInSet(column=column, value_set=VALID_NUMBERS),
    ]


def good_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "caller_number": VALID_NUMBERS,
            "callee_number": list(reversed(VALID_NUMBERS)),
            "duration_seconds": [10, 20, 30, 40, 50],
        }
    )


def bad_frame() -> pd.DataFrame:
    """Six rows: a duplicate, a number outside the fiction range, a non-number and a null."""
    return pd.DataFrame(
        {
            "caller_number": [
                "212-555-0101",
                "212-555-0102",
                "212-555-0102",  # duplicate
                "212-555-0199",  # fictional, but not in the value set
                "+1 212 555 0142",  # another format: fails the regex and the set
                None,
            ],
            "callee_number": ["212-555-0111"] * 6,
            "duration_seconds": [1, 2, 3, 4, 5, 6],
        }
    )


def frame_values(frame: pd.DataFrame) -> set[str]:
    """Every value of the frame as text, plus the digits of phone-like values (2125550142)."""
    values: set[str] = set()
    for value in frame.to_numpy().ravel():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        text = str(value)
        values.add(text)
        digits = "".join(ch for ch in text if ch.isdigit())
        if len(digits) >= 7:
            values.add(digits)
    return values


def by_type(outcome: SuiteOutcome) -> dict[str, Any]:
    return {item.expectation: item for item in outcome.expectations}


@pytest.fixture
def fresh_gx_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The next `validate` builds its GX context again (the cached one is restored afterwards),
    inside an empty working directory: should GX write a project, it lands there."""
    monkeypatch.setattr(resources, "_gx_batch_definition", None)
    monkeypatch.chdir(tmp_path)


# --- outcomes -------------------------------------------------------------------------------------


def test_valid_frame_passes_with_counts() -> None:
    outcome = GreatExpectationsResource().validate("callers", good_frame(), suite())
    assert outcome.success is True, outcome
    assert outcome.suite == "callers"
    assert outcome.rows == 5
    assert outcome.failed == []
    items = by_type(outcome)
    assert set(items) == {
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_in_set",
    }
    assert items["expect_table_row_count_to_be_between"].counts == {"observed_value": 5.0}
    assert items["expect_table_row_count_to_be_between"].column is None
    for name in (
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_in_set",
    ):
        assert items[name].success is True
        assert items[name].column == "caller_number"
        assert items[name].counts["element_count"] == 5.0, items[name]
        assert items[name].counts["unexpected_count"] == 0.0, items[name]


def test_invalid_frame_fails_with_the_counts_of_each_problem() -> None:
    outcome = GreatExpectationsResource().validate("callers", bad_frame(), suite())
    assert outcome.success is False, outcome
    assert outcome.rows == 6
    items = by_type(outcome)
    assert items["expect_table_row_count_to_be_between"].success is True
    assert {item.expectation for item in outcome.failed} == {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_in_set",
    }
    assert items["expect_column_values_to_not_be_null"].counts["unexpected_count"] == 1.0
    # Map expectations count the non-null values only.
    assert items["expect_column_values_to_match_regex"].counts["unexpected_count"] == 1.0
    assert items["expect_column_values_to_be_unique"].counts["unexpected_count"] == 2.0
    assert items["expect_column_values_to_be_in_set"].counts["unexpected_count"] == 2.0
    assert items["expect_column_values_to_be_in_set"].counts["element_count"] == 6.0
    assert items["expect_column_values_to_be_in_set"].counts["missing_count"] == 1.0


def test_row_count_out_of_bounds_fails() -> None:
    e = gxe()
    outcome = GreatExpectationsResource().validate(
        "empty", good_frame().iloc[:0], [e.ExpectTableRowCountToBeBetween(min_value=1)]
    )
    assert outcome.success is False
    assert outcome.rows == 0
    assert outcome.expectations[0].counts == {"observed_value": 0.0}


@pytest.mark.parametrize("make_frame", [good_frame, bad_frame], ids=["passing", "failing"])
def test_outcome_holds_counts_only(make_frame) -> None:
    frame = make_frame()
    e = gxe()
    expectations = [
        *suite(),
        *suite("callee_number"),
        e.ExpectColumnPairValuesToBeEqual(column_A="caller_number", column_B="callee_number"),
        e.ExpectCompoundColumnsToBeUnique(column_list=["caller_number", "callee_number"]),
        e.ExpectColumnDistinctValuesToBeInSet(column="caller_number", value_set=["x"]),
        e.ExpectColumnMostCommonValueToBeInSet(column="caller_number", value_set=["x"]),
        e.ExpectTableColumnsToMatchSet(column_set=["caller_number"], exact_match=True),
    ]
    outcome = GreatExpectationsResource().validate("counts-only", frame, expectations)
    text = repr(outcome)
    values = frame_values(frame)
    assert "212-555-0101" in values and "2125550101" in values  # the check looks for something
    leaked = sorted(value for value in values if value in text)
    # Durations (1..50) are short numbers that would match counts; phone numbers are what matters.
    leaked = [value for value in leaked if sum(ch.isdigit() for ch in value) >= 7]
    assert not leaked, f"{leaked} in {text}"
    for item in outcome.expectations:
        assert all(isinstance(value, float) for value in item.counts.values()), item


def test_outcome_of_a_column_aggregate_holds_no_value() -> None:
    # A digits-only number column with a gap: pandas stores it as float64.
    frame = pd.DataFrame({"msisdn": [2125550141.0, 2125550142.0, np.nan]})
    e = gxe()
    outcome = GreatExpectationsResource().validate(
        "aggregates", frame, [e.ExpectColumnMaxToBeBetween(column="msisdn", max_value=10)]
    )
    assert outcome.success is False
    text = repr(outcome)
    assert "2125550142" not in text, text
    assert "2125550141" not in text, text


# --- quiet, offline, no project -------------------------------------------------------------------


def test_validate_prints_nothing(fresh_gx_context: None, capfd: pytest.CaptureFixture) -> None:
    capfd.readouterr()
    GreatExpectationsResource().validate("quiet", good_frame(), suite())
    GreatExpectationsResource().validate("quiet", bad_frame(), suite())
    out, err = capfd.readouterr()
    for marker in PROGRESS_MARKERS:
        assert marker not in out + err, f"stdout:\n{out}\nstderr:\n{err}"
    assert out == "" and err == "", f"stdout:\n{out}\nstderr:\n{err}"


# Network guard: audit hooks cannot be removed, so one hook is installed for the process and only
# records while `_NETWORK_EVENTS` is a list (a test sets it, and resets it to None when done).
_NETWORK_AUDIT_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.sendto",
        "socket.sendmsg",
        "http.client.connect",
        "urllib.Request",
    }
)
_NETWORK_EVENTS: list[tuple[str, str]] | None = None
_HOOK_INSTALLED = False


def _network_audit_hook(event: str, args: tuple) -> None:
    if _NETWORK_EVENTS is not None and event in _NETWORK_AUDIT_EVENTS:
        _NETWORK_EVENTS.append((event, repr(args)[:200]))


@pytest.fixture
def network_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Records every attempt to reach the network; connections also fail as if offline."""
    global _NETWORK_EVENTS, _HOOK_INSTALLED
    if not _HOOK_INSTALLED:
        sys.addaudithook(_network_audit_hook)
        _HOOK_INSTALLED = True
    events: list[tuple[str, str]] = []

    def refuse_connect(self, address, *args, **kwargs):
        events.append(("socket.socket.connect", repr(address)))
        raise OSError("network disabled in this test")

    def refuse_create_connection(address, *args, **kwargs):
        events.append(("socket.create_connection", repr(address)))
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    monkeypatch.setattr(socket, "create_connection", refuse_create_connection)
    _NETWORK_EVENTS = events
    try:
        yield events
    finally:
        _NETWORK_EVENTS = None


def test_network_guard_notices_a_connection(network_guard: list[tuple[str, str]]) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("127.0.0.1", 9))
    socket.getaddrinfo("localhost", 80)
    recorded = {event for event, _ in network_guard}
    assert {"socket.create_connection", "socket.socket.connect", "socket.getaddrinfo"} <= recorded


def test_validate_makes_no_network_connection(
    fresh_gx_context: None, network_guard: list[tuple[str, str]]
) -> None:
    outcome = GreatExpectationsResource().validate("offline", bad_frame(), suite())
    assert outcome.success is False  # the validation ran
    assert network_guard == []


def test_validate_creates_no_gx_project_in_cwd(fresh_gx_context: None, tmp_path: Path) -> None:
    assert Path.cwd() == tmp_path
    GreatExpectationsResource().validate("no-project", good_frame(), suite())
    GreatExpectationsResource().validate("no-project", bad_frame(), suite())
    assert not (tmp_path / "gx").exists()
    assert not list(tmp_path.rglob("great_expectations.yml"))
    assert sorted(path.name for path in tmp_path.iterdir()) == []
