"""Erasure reaches the zones other stages add: the shareable copy of the pseudonymised calls and
the compliance findings. Day one is published, then the erasure is processed by a run of day two
only: until day one is re-run, nothing of day one may still identify the subject."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from phone_pipeline.stages.erasure.assets import ERASURE_KEEPS
from phone_pipeline.stages.erasure.register import COMPLIANCE_PSEUDONYM_TABLES
from phone_pipeline_tests.conftest import Pipeline, check_results
from phone_pipeline_tests.pipeline_support import count, module_pipeline, pseudonymizer
from phone_pipeline_tests.pipeline_support import write_csv_atomically as write
from phone_pipeline_tests.test_erasure import (
    analytics_consent,
    call,
    request_erasure,
    restricted_texts,
)

DAY_ONE, DAY_TWO = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
SUBJECT = "+12125550141"  # erased; also on the do-not-call registry
B, C, D = "+12125550142", "+12125550143", "+12125550144"
# Also erased and DNC-listed, but never in the consent registry (whose refresh would drop the
# number from the cache anyway): only the do-not-call registry names it after erasure.
LISTED_ONLY = "+12125550145"

CALLS = pd.DataFrame(
    [
        call("1", SUBJECT, B, "2026-11-01T10:00:00Z"),
        call("2", B, SUBJECT, "2026-11-01T11:00:00Z"),
        call("3", C, SUBJECT, "2026-11-01T12:00:00Z"),
        call("4", C, D, "2026-11-01T13:00:00Z"),
        call("5", D, B, "2026-11-02T10:00:00Z"),
        call("6", D, LISTED_ONLY, "2026-11-02T11:00:00Z"),
    ]
)
CONSENT = analytics_consent([SUBJECT, B, C, D])
DNC = pd.DataFrame(
    {"phone_number": [SUBJECT, LISTED_ONLY], "listed_at": ["2026-10-15T00:00:00Z"] * 2}
)


# The subject is called after their listing: the finding (a warning) is the point of the data.
EXPECTED_FINDINGS = {"no_calls_after_dnc_listing"}


def run_ok(pipeline: Pipeline, day: dt.date) -> dict[str, bool]:
    result = pipeline.run(day)
    checks = check_results(result)
    assert result.success, day
    assert {name for name, ok in checks.items() if not ok} <= EXPECTED_FINDINGS
    return checks


def connect(path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def rows_naming(pipeline: Pipeline, pseudonym: str) -> dict[str, int]:
    """Rows of day one naming the pseudonym, per zone.table (shareable and compliance)."""
    found = {}
    with connect(pipeline.settings.shareable_db) as con:
        found["shareable.calls_pseudonymized"] = count(
            con,
            "SELECT count(*) FROM calls_pseudonymized WHERE call_date = ? "
            "AND (caller_pseudonym = ? OR callee_pseudonym = ?)",
            [DAY_ONE, pseudonym, pseudonym],
        )
    with connect(pipeline.settings.compliance_db) as con:
        for table in COMPLIANCE_PSEUDONYM_TABLES:
            found[f"compliance.{table}"] = count(
                con,
                f"SELECT count(*) FROM {table} WHERE call_date = ? AND callee_pseudonym = ?",
                [DAY_ONE, pseudonym],
            )
    return found


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("erasure_zones")) as pipeline:
        write(CALLS, pipeline.settings.landing_calls / "calls.csv")
        write(CONSENT, pipeline.settings.landing_consent / "consent.csv")
        pipeline.settings.landing_dnc.mkdir(parents=True, exist_ok=True)
        write(DNC, pipeline.settings.landing_dnc / "dnc.csv")
        for day in (DAY_ONE, DAY_TWO):
            run_ok(pipeline, day)
        before = rows_naming(pipeline, pseudonymizer().pseudonym(SUBJECT))
        request_erasure(
            pipeline,
            "erasure.csv",
            [
                (SUBJECT, "2026-11-03T08:00:00Z", "z-1"),
                (LISTED_ONLY, "2026-11-03T08:00:00Z", "z-2"),
            ],
        )
        checks = run_ok(pipeline, DAY_TWO)  # day one is not re-run
        yield pipeline, before, checks


def test_subject_was_in_the_shareable_and_compliance_zones(scene) -> None:
    _, before, _ = scene
    # As caller once and callee twice in the shareable copy; as callee in every finding table.
    assert before == {
        "shareable.calls_pseudonymized": 3,
        "compliance.contact_pressure": 1,  # scope 'all' (the calls have no campaign)
        "compliance.quiet_hours": 1,
        "compliance.dnc_call_findings": 1,
    }


def test_processing_removes_the_subject_before_the_rerun(scene) -> None:
    pipeline, before, checks = scene
    assert checks["erased_subjects_absent"] and checks["erasure_requests_reconcile"]
    assert rows_naming(pipeline, pseudonymizer().pseudonym(SUBJECT)) == dict.fromkeys(before, 0)
    with connect(pipeline.settings.shareable_db) as con:
        # The caller row went; the calls where the subject was called stay, without the callee.
        kept = con.execute(
            "SELECT caller_pseudonym, callee_pseudonym, callee_country FROM calls_pseudonymized "
            "WHERE call_date = ? ORDER BY caller_pseudonym",
            [DAY_ONE],
        ).fetchall()
    callers_left = sorted([pseudonymizer().pseudonym(B), pseudonymizer().pseudonym(C)])
    assert sorted(row[0] for row in kept if row[1] is None) == callers_left
    assert all(row[2] is None for row in kept if row[1] is None)
    assert len(kept) == 3  # 4 calls on day one, the subject's own call gone


def test_removals_are_recorded_per_zone_and_table(scene) -> None:
    pipeline, _, _ = scene
    with connect(pipeline.settings.restricted_db) as con:
        removed = dict(
            con.execute(
                "SELECT zone || '.' || table_name || ' ' || action, rows FROM erasure_removals "
                "WHERE zone IN ('shareable', 'compliance') AND request_id = 'z-1'"
            ).fetchall()
        )
    assert removed == {
        "shareable.calls_pseudonymized deleted": 1,
        "shareable.calls_pseudonymized callee_removed": 2,
        "compliance.contact_pressure deleted": 1,
        "compliance.quiet_hours deleted": 1,
        "compliance.dnc_call_findings deleted": 1,
    }


def test_a_dnc_listed_subject_stays_on_the_scrub_list_and_nowhere_else(scene) -> None:
    """GDPR Art. 17(3)(b): the suppression entry is kept (restricted zone, number and listing
    reason only), so that erasure does not make the person callable again."""
    pipeline, _, checks = scene
    assert checks["erased_subjects_absent"]
    # The re-run of day one the sensor asks for: the registry is parsed again after erasure.
    run_ok(pipeline, DAY_ONE)
    with connect(pipeline.settings.restricted_db) as con:
        on_list = con.execute(
            "SELECT reason FROM dnc_scrub_list WHERE e164 = ?", [SUBJECT]
        ).fetchall()
        in_registry = count(con, "SELECT count(*) FROM dnc_registry WHERE e164 = ?", [SUBJECT])
        texts = restricted_texts(con, skip=ERASURE_KEEPS)
        listed_only = con.execute(
            "SELECT reason FROM dnc_scrub_list WHERE e164 = ?", [LISTED_ONLY]
        ).fetchall()
    assert on_list == [("dnc_registry_listed",)]  # no call- or consent-derived reason is left
    assert listed_only == [("dnc_registry_listed",)]
    assert in_registry == 1
    assert len(texts) > 10
    assert not any(number in text for text in texts for number in (SUBJECT, LISTED_ONLY))
    # Nor in any other zone's file, byte for byte.
    for path in (
        pipeline.settings.analytics_db,
        pipeline.settings.compliance_db,
        pipeline.settings.shareable_db,
    ):
        for number in (SUBJECT, LISTED_ONLY):
            assert number.encode() not in path.read_bytes(), path.name
