"""Erasure through Dagster on real DuckDB files: a subject erased as caller and as callee across
two partitions, the register applied again when files land again or the warehouse is rebuilt, and
every row still accounted for."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass

import duckdb
import pandas as pd
import pytest

from phone_pipeline.domain.erasure import ERASED_SUBJECT
from phone_pipeline.stages.consent import assets as consent_assets
from phone_pipeline_tests.conftest import Pipeline, check_results
from phone_pipeline_tests.pipeline_support import (
    accounting,
    count,
    module_pipeline,
    pseudonymizer,
    snapshot,
    write_csv_atomically,
)
from phone_pipeline_tests.test_privacy_leaks import event_log_texts

DAY_ONE, DAY_TWO = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
# Fictional NANP numbers (555-0100..0199); the subject is written three ways in the input.
SUBJECT = "+12125550101"
SUBJECT_SPELLINGS = {SUBJECT, "(212) 555-0101", "+1 212-555-0101", "212.555.0101"}
OTHERS = [f"+1212555{n:04d}" for n in range(102, 109)]  # B..H
B, C, D, E, F, G, H = OTHERS


def call(call_id: str, caller: str, callee: str, started: str, duration: str = "60") -> dict:
    return {
        "call_id": call_id,
        "caller_number": caller,
        "callee_number": callee,
        "started_at": started,
        "duration_seconds": duration,
        "disposition": "answered",
        "cell_id": "",
    }


def analytics_consent(
    numbers: list[str], recorded_at: str = "2026-10-01T00:00:00Z"
) -> pd.DataFrame:
    """A consent file granting `analytics` to each number at `recorded_at`."""
    return pd.DataFrame(
        {"phone_number": numbers, "purpose": "analytics", "status": "granted",
         "recorded_at": recorded_at, "source": "web-form"}
    )  # fmt: skip


CALLS = pd.DataFrame(
    [
        # Day one: the subject calls twice (two spellings), is called once, and has a quarantined
        # row (negative duration) as caller.
        call("d1-1", SUBJECT, B, "2026-11-01T09:10:00Z"),
        call("d1-2", "(212) 555-0101", C, "2026-11-01T09:20:00Z"),
        call("d1-3", B, "212.555.0101", "2026-11-01T10:00:00Z"),
        call("d1-4", C, D, "2026-11-01T10:30:00Z"),
        call("d1-5", D, E, "2026-11-01T11:00:00Z"),
        call("d1-6", E, F, "2026-11-01T11:30:00Z"),
        call("d1-7", SUBJECT, D, "2026-11-01T12:00:00Z", duration="-5"),
        # Day two: once as caller, once as callee.
        call("d2-1", SUBJECT, D, "2026-11-02T08:00:00Z"),
        call("d2-2", F, SUBJECT, "2026-11-02T08:30:00Z"),
        call("d2-3", G, H, "2026-11-02T09:00:00Z"),
        call("d2-4", H, B, "2026-11-02T09:30:00Z"),
    ]
)
CONSENT = analytics_consent([SUBJECT, *OTHERS])


def request_erasure(pipeline: Pipeline, name: str, rows: list[tuple[str, str, str]]) -> None:
    frame = pd.DataFrame(rows, columns=["phone_number", "requested_at", "request_id"])
    folder = pipeline.settings.home / "landing" / "erasure"
    folder.mkdir(parents=True, exist_ok=True)
    write_csv_atomically(frame, folder / name)


def run_ok(pipeline: Pipeline, day: dt.date) -> None:
    result = pipeline.run(day)
    checks = check_results(result)
    assert result.success and all(checks.values()), {n for n, ok in checks.items() if not ok}


def restricted_texts(con: duckdb.DuckDBPyConnection, skip: frozenset[str]) -> list[str]:
    """Every text value (and list element) of every restricted table not in `skip`."""
    texts: list[str] = []
    for table, column, data_type in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = 'main'"
    ).fetchall():
        if table in skip or not data_type.startswith("VARCHAR"):
            continue
        values = f'unnest("{column}")' if data_type.endswith("[]") else f'"{column}"'
        texts += [
            str(row[0])
            for row in con.execute(f'SELECT DISTINCT {values} FROM "{table}"').fetchall()
            if row[0] is not None
        ]
    return texts


def subject_found(texts: list[str]) -> set[str]:
    return {spelling for spelling in SUBJECT_SPELLINGS if any(spelling in t for t in texts)}


@dataclass
class ErasureScene:
    pipeline: Pipeline
    before: dict[dt.date, dict[tuple[str, str], int]]
    after: dict[dt.date, dict[tuple[str, str], int]]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    """Two days run, then the subject's erasure requested and both days run again."""
    with module_pipeline(tmp_path_factory.mktemp("erasure")) as pipeline:
        write_csv_atomically(CALLS, pipeline.settings.landing_calls / "calls_2026-11-01.csv")
        write_csv_atomically(CONSENT, pipeline.settings.landing_consent / "consent.csv")
        for day in (DAY_ONE, DAY_TWO):
            run_ok(pipeline, day)
        with pipeline.analytics() as con:
            before = {day: accounting(con, day) for day in (DAY_ONE, DAY_TWO)}
        request_erasure(
            pipeline,
            "erasure_2026-11-03.csv",
            [
                ("+1 212-555-0101", "2026-11-03T10:00:00Z", "req-1"),
                ("not a number", "2026-11-03T10:00:00Z", "req-2"),
            ],
        )
        for day in (DAY_ONE, DAY_TWO):
            run_ok(pipeline, day)
        with pipeline.analytics() as con:
            after = {day: accounting(con, day) for day in (DAY_ONE, DAY_TWO)}
        yield ErasureScene(pipeline, before, after)


def test_subject_was_there_before_the_request(scene: ErasureScene) -> None:
    assert scene.before[DAY_ONE][("consent", "admitted")] == 6
    assert scene.before[DAY_ONE][("validate", "quarantined")] == 1
    assert scene.before[DAY_TWO][("consent", "admitted")] == 4


def test_no_trace_of_the_subject_in_the_restricted_zone(scene: ErasureScene) -> None:
    with scene.pipeline.restricted() as con:
        texts = restricted_texts(con, skip=frozenset({"erasure_quarantine"}))
        assert len(texts) > 20
        assert subject_found(texts) == set()
        # The register holds its pseudonym, never the number.
        register = con.execute("SELECT request_id, key_version, pseudonym FROM erasure_register")
        assert register.fetchall() == [("req-1", 1, pseudonymizer().pseudonym(SUBJECT))]
        # The bad request is quarantined with a reason (restricted zone only).
        assert con.execute("SELECT reason, request_id FROM erasure_quarantine").fetchall() == [
            ("invalid_phone_number", "req-2")
        ]


def test_caller_rows_go_callee_is_removed_across_both_partitions(scene: ErasureScene) -> None:
    subject = pseudonymizer().pseudonym(SUBJECT)
    with scene.pipeline.analytics() as con:
        left = count(
            con,
            "SELECT count(*) FROM calls_pseudonymized "
            "WHERE caller_pseudonym = ? OR callee_pseudonym = ?",
            [subject, subject],
        )
        # Calls with the subject as callee (d1-3 B->A, d2-2 F->A) stay, without the callee.
        without_callee = con.execute(
            "SELECT call_date, caller_pseudonym, callee_country FROM calls_pseudonymized "
            "WHERE callee_pseudonym IS NULL ORDER BY 1"
        ).fetchall()
        published = dict(
            con.execute("SELECT call_date, count(*) FROM calls_pseudonymized GROUP BY 1").fetchall()
        )
        aggregated = dict(
            con.execute(
                "SELECT call_date, sum(calls) FROM call_volume_by_country GROUP BY 1"
            ).fetchall()
        )
    assert left == 0
    assert without_callee == [
        (DAY_ONE, pseudonymizer().pseudonym(B), None),
        (DAY_TWO, pseudonymizer().pseudonym(F), None),
    ]
    # Day one: 6 admitted - 2 as caller; day two: 4 - 1.
    assert published == {DAY_ONE: 4, DAY_TWO: 3}
    # Aggregates were recomputed: every published call is in a cell (suppressed cells hide
    # figures, so compare through the accounting).
    for day in (DAY_ONE, DAY_TWO):
        totals = scene.after[day]
        assert (
            totals.get(("aggregate:call_volume_by_country", "in_published_cell"), 0)
            + totals.get(("aggregate:call_volume_by_country", "in_suppressed_cell"), 0)
            == published[day]
        )
    assert set(aggregated) <= {DAY_ONE, DAY_TWO}


def test_every_row_still_accounted_for(scene: ErasureScene) -> None:
    one, two = scene.after[DAY_ONE], scene.after[DAY_TWO]
    # Received is what the file delivered: unchanged by erasure.
    assert one[("ingest", "received")] == scene.before[DAY_ONE][("ingest", "received")] == 7
    assert two[("ingest", "received")] == 4
    # Day one: 3 rows with the subject as caller (one was quarantined) are excluded as erased.
    assert one[("erasure", "excluded")] == 3 and two[("erasure", "excluded")] == 1
    assert one.get(("validate", "quarantined"), 0) == 0
    for totals in (one, two):
        assert totals[("ingest", "received")] == (
            totals[("validate", "validated")]
            + totals.get(("validate", "quarantined"), 0)
            + totals[("erasure", "excluded")]
        )
    with scene.pipeline.analytics() as con:
        reasons = {
            row[0]
            for row in con.execute(
                "SELECT reason FROM row_accounting WHERE stage = 'erasure'"
            ).fetchall()
        }
    assert reasons == {ERASED_SUBJECT}


def test_audit_record_of_the_request(scene: ErasureScene) -> None:
    with scene.pipeline.restricted() as con:
        request = con.execute(
            "SELECT request_id, requested_at, received_at, completed_at, affected_partitions "
            "FROM erasure_requests"
        ).fetchall()
        removed = dict(
            con.execute(
                "SELECT zone || '.' || table_name || ' ' || action, rows FROM erasure_removals"
            ).fetchall()
        )
    assert len(request) == 1
    request_id, requested_at, received_at, completed_at, partitions = request[0]
    assert request_id == "req-1" and requested_at.isoformat().startswith("2026-11-03T10:00")
    assert received_at <= completed_at
    assert partitions == [DAY_ONE, DAY_TWO]
    assert removed["restricted.raw_calls deleted"] == 4
    assert removed["restricted.raw_calls callee_removed"] == 2
    assert removed["restricted.calls_quarantine deleted"] == 1
    assert removed["analytics.calls_pseudonymized deleted"] == 3
    assert removed["analytics.calls_pseudonymized callee_removed"] == 2
    assert removed["restricted.consent_events deleted"] == 1


def test_processing_the_same_request_again_changes_nothing(scene: ErasureScene) -> None:
    pipeline = scene.pipeline
    with pipeline.restricted() as con:
        restricted_before = snapshot(
            con, exclude_columns=frozenset({"recorded_at", "registered_at"})
        )
    with pipeline.analytics() as con:
        analytics_before = snapshot(con)
    # The same file again, under another name: same request id, nothing new.
    folder = pipeline.settings.home / "landing" / "erasure"
    shutil.copyfile(folder / "erasure_2026-11-03.csv", folder / "erasure_copy.csv")
    run_ok(pipeline, DAY_ONE)
    with pipeline.restricted() as con:
        restricted_after = snapshot(
            con, exclude_columns=frozenset({"recorded_at", "registered_at"})
        )
    with pipeline.analytics() as con:
        analytics_after = snapshot(con)
    restricted_before.pop("erasure_quarantine"), restricted_after.pop("erasure_quarantine")
    assert restricted_after == restricted_before
    assert analytics_after == analytics_before
    (folder / "erasure_copy.csv").unlink()


def test_relanded_file_cannot_bring_the_subject_back(scene: ErasureScene) -> None:
    """The same calls land again in a new file (new content), with a new call of the subject:
    the register is applied as they are loaded."""
    pipeline = scene.pipeline
    again = pd.concat(
        [CALLS, pd.DataFrame([call("d1-9", "212.555.0101", E, "2026-11-01T15:00:00Z")])]
    )
    again["call_id"] = "re-" + again["call_id"]
    write_csv_atomically(again, pipeline.settings.landing_calls / "calls_resent.csv")
    for day in (DAY_ONE, DAY_TWO):
        run_ok(pipeline, day)
    with pipeline.restricted() as con:
        assert subject_found(restricted_texts(con, frozenset({"erasure_quarantine"}))) == set()
        assert (
            count(con, "SELECT count(*) FROM erasure_exclusions WHERE call_date = ?", [DAY_ONE])
            == 7
        )
    with pipeline.analytics() as con:
        totals = accounting(con, DAY_ONE)
    assert totals[("erasure", "excluded")] == 7  # 3 + the 3 again + the new one
    assert totals[("ingest", "received")] == 7 + 8
    (pipeline.settings.landing_calls / "calls_resent.csv").unlink()


def test_rebuilt_warehouse_cannot_bring_the_subject_back(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The warehouse is lost and rebuilt from the landing files: the register is rebuilt from the
    request file first, and applied as the call files are loaded again."""
    with module_pipeline(tmp_path_factory.mktemp("erasure_rebuild")) as pipeline:
        write_csv_atomically(CALLS, pipeline.settings.landing_calls / "calls.csv")
        write_csv_atomically(CONSENT, pipeline.settings.landing_consent / "consent.csv")
        request_erasure(pipeline, "erasure.csv", [("212.555.0101", "2026-11-03T10:00:00Z", "r")])
        run_ok(pipeline, DAY_TWO)
        run_ok(pipeline, DAY_ONE)
        subject = pseudonymizer().pseudonym(SUBJECT)
        with pipeline.restricted() as con:
            assert subject_found(restricted_texts(con, frozenset({"erasure_quarantine"}))) == set()
            # Applied at ingest: the request itself found nothing left to remove.
            assert count(con, "SELECT count(*) FROM erasure_removals") == 0
        with pipeline.analytics() as con:
            assert (
                count(
                    con,
                    "SELECT count(*) FROM calls_pseudonymized WHERE caller_pseudonym = ? "
                    "OR callee_pseudonym = ?",
                    [subject, subject],
                )
                == 0
            )
            assert accounting(con, DAY_ONE)[("erasure", "excluded")] == 3
        blob = pipeline.settings.analytics_db.read_bytes()
        assert not any(spelling.encode() in blob for spelling in SUBJECT_SPELLINGS)
        assert subject.encode() not in blob
        assert subject_found(event_log_texts(pipeline.instance)) == set()


def test_no_trace_in_the_event_log_or_analytics_bytes(scene: ErasureScene) -> None:
    assert subject_found(event_log_texts(scene.pipeline.instance)) == set()
    blob = scene.pipeline.settings.analytics_db.read_bytes()
    assert not any(spelling.encode() in blob for spelling in SUBJECT_SPELLINGS)


def test_a_registered_subject_still_in_the_restricted_zone_is_not_published(
    scene: ErasureScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure gate checks every zone only for the pseudonyms of its own run; what is
    written afterwards is checked against the whole register before publishing. A register
    entry whose subject was never removed (here B's, written straight into the table) must
    therefore be stopped by the write-time gates of analytics and compliance. The consent
    stage drops a registered subject's consent on its own, which would keep B out of
    analytics before the gate: that filter is switched off to reach the gate."""
    pipeline = scene.pipeline
    monkeypatch.setattr(consent_assets, "forget_erased_numbers", lambda *args: [])
    b_pseudonym = pseudonymizer().pseudonym(B)
    with pipeline.analytics() as con:
        published_before = snapshot(con)["calls_pseudonymized"]
    with duckdb.connect(str(pipeline.settings.restricted_db)) as con:
        con.execute(
            "INSERT INTO erasure_register VALUES ('bypassed', ?, ?)",
            [pseudonymizer().key_version, b_pseudonym],
        )
    try:
        result = pipeline.run(DAY_TWO)
        checks = check_results(result)
        assert not result.success
        assert checks["no_erased_subject_in_analytics"] is False
        assert checks["no_erased_subject_in_compliance"] is False
        # Not new in this run, so not the erasure gate's to find; it passed and said so.
        assert checks["erased_subjects_absent"] is True
        evaluation = next(
            event.event_specific_data
            for event in result.all_events
            if event.event_type_value == "ASSET_CHECK_EVALUATION"
            and event.event_specific_data.check_name == "erased_subjects_absent"
        )
        assert evaluation.metadata["pseudonyms_of_this_run_checked"].value == 0
        with pipeline.analytics() as con:
            assert snapshot(con)["calls_pseudonymized"] == published_before
    finally:
        with duckdb.connect(str(pipeline.settings.restricted_db)) as con:
            con.execute("DELETE FROM erasure_register WHERE request_id = 'bypassed'")
        monkeypatch.undo()
    run_ok(pipeline, DAY_TWO)
