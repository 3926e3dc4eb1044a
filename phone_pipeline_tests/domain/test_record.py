"""The record of processing: categories from column names, safeguard status from evidence."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from phone_pipeline import catalog
from phone_pipeline.domain.record import (
    Evidence,
    ProcessingRecord,
    Purpose,
    Safeguard,
    Zone,
    data_categories,
    render_markdown,
)

WHEN = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.UTC)


def test_columns_fall_into_categories_and_bookkeeping_is_left_out() -> None:
    assert data_categories(["caller_number", "callee_e164", "source_row", "call_date"]) == [
        "Phone numbers (direct identifiers: raw and E.164)"
    ]
    assert data_categories(["caller_pseudonym", "call_hour", "region", "calls"]) == [
        "Pseudonymous subscriber identifiers (keyed HMAC-SHA256)",
        "Call and event times",
        "Location (cell, region)",
        "Aggregate figures",
    ]


def test_an_unknown_column_is_shown_for_review_not_hidden() -> None:
    assert data_categories(["favourite_colour"]) == ["Other (unclassified: review)"]


def test_every_column_the_warehouse_declares_has_a_category() -> None:
    """A new table must land in the record under what it holds, not under "review"."""
    unclassified = [
        f"{table.zone}.{table.name}.{column}"
        for table in catalog.TABLES
        for column in table.column_names
        if data_categories([column]) == ["Other (unclassified: review)"]
    ]
    assert unclassified == []


def _evidence(passed: bool | None) -> Evidence:
    return Evidence(
        "a_check", "analytics/table", "what it proves", True, passed, WHEN, "2026-11-01"
    )


def test_a_safeguard_holds_only_when_every_check_passed_at_its_latest_run() -> None:
    assert Safeguard("s", "m", [_evidence(True), _evidence(True)]).status == "held"
    assert Safeguard("s", "m", [_evidence(True), _evidence(False)]).status == "FAILED"
    assert Safeguard("s", "m", [_evidence(True), _evidence(None)]).status == "unproven"
    assert Safeguard("s", "m", []).status == "no check declared"


def test_the_markdown_names_zones_recipients_retention_and_evidence() -> None:
    record = ProcessingRecord(
        controller="Example Telecom",
        generated_at=WHEN,
        purposes=[Purpose("analytics", "coverage | quality", "consent")],
        zones=[
            Zone("restricted", "warehouse/restricted.duckdb", "operators", False, "90 days",
                 {"raw_calls": ["caller_number", "started_at"]}),
            Zone("shareable", "warehouse/shareable.duckdb", "everyone", True, "kept", {}),
        ],
        safeguards=[Safeguard("Pseudonymisation", "keyed HMAC", [_evidence(False)])],
        settings={"min_cell_size": "5"},
    )  # fmt: skip
    markdown = render_markdown(record)
    assert "| analytics | coverage \\| quality | consent |" in markdown
    assert (
        "| restricted | `warehouse/restricted.duckdb` | operators | no | Phone numbers (direct "
        "identifiers: raw and E.164); Call and event times | 90 days |"
    ) in markdown
    assert (
        "| shareable | `warehouse/shareable.duckdb` | everyone | yes | (none) | kept |" in markdown
    )
    assert "| Pseudonymisation | **FAILED** | 0 of 1 | keyed HMAC |" in markdown
    assert (
        "| `a_check` | `analytics/table` | blocking | FAILED | 2026-11-01 03:00 UTC |" in markdown
    )
    assert "| min_cell_size | 5 |" in markdown


def test_a_warning_is_a_finding_not_a_failed_safeguard() -> None:
    finding = replace(_evidence(False), severity="WARN")
    assert Safeguard("s", "m", [_evidence(True), finding]).status == "held, 1 finding(s)"
    assert Safeguard("s", "m", [finding, _evidence(False)]).status == "FAILED"


def test_a_check_with_nothing_to_prove_yet_is_not_applicable_with_its_reason() -> None:
    idle = replace(_evidence(None), not_applicable="nothing is past retention")
    assert Safeguard("s", "m", [_evidence(True), idle]).status == "held"
    assert Safeguard("s", "m", [idle]).status == "not applicable: nothing is past retention"
    # Not applicable never hides a check that applies and has not run, nor a failure.
    assert Safeguard("s", "m", [idle, _evidence(None)]).status == "unproven"
    assert Safeguard("s", "m", [idle, _evidence(False)]).status == "FAILED"
    record = ProcessingRecord(
        controller="c", generated_at=WHEN, purposes=[], zones=[],
        safeguards=[Safeguard("Retention", "sweep", [idle])], settings={},
    )  # fmt: skip
    assert "| not applicable: nothing is past retention |" in render_markdown(record)
