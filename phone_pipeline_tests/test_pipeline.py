"""The whole pipeline through Dagster, on real DuckDB files: one generated day end to end, reruns,
late files, several partitions, pseudonym stability, consent, suppression, lineage metadata and
the failures a user is expected to hit (no key, an empty day)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import phonenumbers
import pytest

from phone_pipeline import catalog
from phone_pipeline.domain.consent import CALLER_WITHDRAWN
from phone_pipeline.settings import load_settings
from phone_pipeline.stages.aggregate.checks import CALL_VOLUME_BY_COUNTRY, CALL_VOLUME_HOURLY
from phone_pipeline.stages.ingest.checks import RAW_CALLS
from phone_pipeline_synthetic import GenerationSummary
from phone_pipeline_tests.conftest import (
    DAY,
    TEST_KEY,
    Pipeline,
    check_results,
    dagster_instance,
    materialized,
)
from phone_pipeline_tests.pipeline_support import (
    ALL_ASSETS,
    ALL_CHECKS,
    ANALYTICS_TABLES,
    PARTITIONED_TABLES,
    TABLE_ASSETS,
    accounting,
    count,
    module_pipeline,
    pseudonymizer,
    read_text_csv,
    snapshot,
    step_failures,
    step_outcomes,
    write_csv_atomically,
)

FIGURE_COLUMNS = (
    "calls",
    "answered_calls",
    "answered_rate",
    "total_duration_seconds",
    "median_duration_seconds",
    "distinct_subscribers",
)
AGGREGATE_KEYS = {
    "call_volume_hourly": ("call_hour", "region"),
    "call_volume_by_country": ("caller_country", "caller_number_type"),
}


@dataclass
class FullRun:
    pipeline: Pipeline
    summary: GenerationSummary
    result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory):
    """One generated day (2,000 rows, 3% junk) run once; read-only for the tests that use it."""
    with module_pipeline(tmp_path_factory.mktemp("full_run")) as pipeline:
        summary = pipeline.generate()
        result = pipeline.run()
        yield FullRun(pipeline, summary, result)


def independent_counts(pipeline: Pipeline, call_date: dt.date) -> dict[str, int]:
    """Each stage's rows counted straight from the tables, not from row_accounting."""
    with pipeline.restricted() as con:
        counts = {
            table: count(con, f"SELECT count(*) FROM {table} WHERE call_date = ?", [call_date])
            for table in PARTITIONED_TABLES
        }
    with pipeline.analytics() as con:
        counts["calls_pseudonymized"] = count(
            con, "SELECT count(*) FROM calls_pseudonymized WHERE call_date = ?", [call_date]
        )
    return counts


def assert_accounting_adds_up(pipeline: Pipeline, call_date: dt.date) -> dict[str, int]:
    with pipeline.analytics() as con:
        totals = accounting(con, call_date)
    received = totals[("ingest", "received")]
    validated = totals[("validate", "validated")]
    quarantined = totals.get(("validate", "quarantined"), 0)
    admitted = totals[("consent", "admitted")]
    excluded = totals.get(("consent", "excluded"), 0)
    published = totals[("pseudonymize", "published")]
    assert received == validated + quarantined
    assert validated == admitted + excluded
    assert published == admitted
    assert independent_counts(pipeline, call_date) == {
        "raw_calls": received,
        "calls_validated": validated,
        "calls_quarantine": quarantined,
        "consented_calls": admitted,
        "consent_exclusions": excluded,
        "calls_pseudonymized": published,
    }
    return independent_counts(pipeline, call_date)


# --- one day end to end ---------------------------------------------------------------------------


def test_generated_partition_end_to_end(full_run: FullRun) -> None:
    pipeline, summary, result = full_run.pipeline, full_run.summary, full_run.result
    assert result.success
    checks = check_results(result)
    assert set(checks) == ALL_CHECKS, "every declared check is evaluated in the run"
    assert all(checks.values()), {name for name, passed in checks.items() if not passed}
    assert materialized(result) == ALL_ASSETS

    counts = assert_accounting_adds_up(pipeline, DAY)
    file_rows = len(read_text_csv(summary.call_files[0]))
    assert counts["raw_calls"] == file_rows == summary.rows
    assert counts["calls_pseudonymized"] > 0 and counts["consent_exclusions"] > 0

    # Quarantine reasons in the accounting are the quarantine table's, reason by reason.
    with pipeline.restricted() as con:
        reasons = dict(
            con.execute(
                "SELECT reason, count(*) FROM calls_quarantine WHERE call_date = ? GROUP BY 1",
                [DAY],
            ).fetchall()
        )
        assert count(con, "SELECT count(*) FROM calls_quarantine WHERE reason IS NULL") == 0
    with pipeline.analytics() as con:
        accounted = dict(
            con.execute(
                "SELECT reason, rows FROM row_accounting "
                "WHERE call_date = ? AND stage = 'validate' AND outcome = 'quarantined'",
                [DAY],
            ).fetchall()
        )
    assert accounted == reasons


def test_required_tables_exist(full_run: FullRun) -> None:
    with full_run.pipeline.analytics() as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    assert {"calls_pseudonymized", "call_volume_hourly", "row_accounting"} <= tables
    with full_run.pipeline.restricted() as con:
        quarantine_columns = {row[0] for row in con.execute("DESCRIBE calls_quarantine").fetchall()}
    assert {"reason", "detail", "source_file", "source_row"} <= quarantine_columns


def test_generated_junk_rows_all_end_in_quarantine(full_run: FullRun) -> None:
    summary = full_run.summary
    assert summary.junk_rows > 0
    with full_run.pipeline.restricted() as con:
        quarantined = count(con, "SELECT count(*) FROM calls_quarantine WHERE call_date = ?", [DAY])
        # Every quarantined row is traceable to its input row.
        untraceable = count(
            con,
            "SELECT count(*) FROM calls_quarantine AS q ANTI JOIN raw_calls AS r "
            "USING (source_file, source_row) WHERE q.call_date = ?",
            [DAY],
        )
    # The generator spoils exactly `junk_rows` rows, each with one defect; clean rows are valid.
    assert quarantined == summary.junk_rows
    assert untraceable == 0


# --- reruns and late files ------------------------------------------------------------------------


def test_rerun_is_idempotent_and_a_renamed_copy_changes_nothing(pipeline: Pipeline) -> None:
    summary = pipeline.generate()
    assert pipeline.run().success
    with pipeline.restricted() as restricted, pipeline.analytics() as analytics:
        first = (snapshot(restricted), snapshot(analytics))

    second_run = pipeline.run()
    assert second_run.success and all(check_results(second_run).values())
    with pipeline.restricted() as restricted, pipeline.analytics() as analytics:
        second = (snapshot(restricted), snapshot(analytics))
    assert second == first

    # No duplicates after two runs: one raw row per input row, one published row per admission.
    with pipeline.restricted() as con:
        assert count(con, "SELECT count(*) FROM landing_files") == 1
        assert count(con, "SELECT count(*) FROM raw_calls") == summary.rows
        assert count(con, "SELECT count(*) - count(DISTINCT call_id) FROM calls_validated") == 0
    with pipeline.analytics() as con:
        for table, keys in AGGREGATE_KEYS.items():
            duplicated = count(
                con,
                f"SELECT count(*) FROM (SELECT {', '.join(keys)} FROM {table} "
                "GROUP BY ALL HAVING count(*) > 1)",
            )
            assert duplicated == 0, table
        distinct_lines = count(
            con, "SELECT count(*) FROM (SELECT DISTINCT stage, outcome, reason FROM row_accounting)"
        )
        assert count(con, "SELECT count(*) FROM row_accounting") == distinct_lines

    original = summary.call_files[0]
    shutil.copyfile(original, original.with_name("calls_resent_under_another_name.csv"))
    third_run = pipeline.run()
    assert third_run.success
    with pipeline.restricted() as restricted, pipeline.analytics() as analytics:
        third = (snapshot(restricted), snapshot(analytics))
    # The hash cache learns the copy's name (so it is not hashed again); nothing else changes.
    learned = third[0].pop("landing_file_signatures")
    assert len(learned) == len(first[0]["landing_file_signatures"]) + 1
    first[0].pop("landing_file_signatures")
    assert third == first
    raw_event = pipeline.instance.get_latest_materialization_event(RAW_CALLS)
    metadata = raw_event.asset_materialization.metadata
    assert metadata["files_loaded_this_run"].value == []
    assert metadata["files_already_loaded"].value == 2


def test_late_file_for_the_same_day_adds_its_rows(pipeline: Pipeline) -> None:
    summary = pipeline.generate()
    assert pipeline.run().success
    before = assert_accounting_adds_up(pipeline, DAY)

    # A late file: 40 calls not seen before (copies of valid rows under new ids) and 5 calls
    # that were already delivered (same call_id): those are duplicates and go to quarantine.
    with pipeline.restricted() as con:
        valid_rows = [
            row[0]
            for row in con.execute(
                "SELECT source_row FROM calls_validated WHERE call_date = ? ORDER BY source_row",
                [DAY],
            ).fetchall()
        ]
    original = read_text_csv(summary.call_files[0])
    picked = original.iloc[[row - 1 for row in valid_rows[:45]]].copy()
    new_ids = [f"late-{i:04d}" for i in range(40)]
    picked.iloc[:40, picked.columns.get_loc("call_id")] = new_ids
    write_csv_atomically(picked, pipeline.settings.landing_calls / "calls_late_delivery.csv")

    result = pipeline.run()
    assert result.success and all(check_results(result).values())
    after = assert_accounting_adds_up(pipeline, DAY)
    assert after["raw_calls"] == before["raw_calls"] + 45
    assert after["calls_validated"] == before["calls_validated"] + 40
    assert after["calls_quarantine"] == before["calls_quarantine"] + 5
    with pipeline.restricted() as con:
        late_duplicates = count(
            con,
            "SELECT count(*) FROM calls_quarantine WHERE source_file = 'calls_late_delivery.csv' "
            "AND reason = 'duplicate_call_id'",
        )
        late_admitted = count(
            con, "SELECT count(*) FROM consented_calls WHERE call_id LIKE 'late-%'"
        )
        late_excluded = count(
            con, "SELECT count(*) FROM consent_exclusions WHERE call_id LIKE 'late-%'"
        )
    assert late_duplicates == 5
    assert late_admitted + late_excluded == 40
    assert after["calls_pseudonymized"] == before["calls_pseudonymized"] + late_admitted


@dataclass
class TwoDays:
    pipeline: Pipeline
    day_one_alone: dict
    day_one_after_day_two: dict
    day_one_rerun: dict
    day_two: dict
    results: list[dg.ExecuteInProcessResult]


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory):
    """Two generated days: day 1 run, day 2 run, day 1 run again; partition snapshots between."""
    day_two = DAY + dt.timedelta(days=1)
    with module_pipeline(tmp_path_factory.mktemp("two_days")) as pipeline:
        pipeline.generate(days=2)

        def partition(call_date: dt.date) -> dict:
            with pipeline.restricted() as restricted, pipeline.analytics() as analytics:
                return {
                    "restricted": snapshot(restricted, call_date=call_date),
                    "analytics": snapshot(analytics, call_date=call_date),
                }

        results = [pipeline.run(DAY)]
        alone = partition(DAY)
        results.append(pipeline.run(day_two))
        after_two = partition(DAY)
        second = partition(day_two)
        results.append(pipeline.run(DAY))
        rerun = partition(DAY)
        yield TwoDays(pipeline, alone, after_two, rerun, second, results)


def test_two_partitions_stay_separate(two_days: TwoDays) -> None:
    assert all(result.success for result in two_days.results)
    # Day 1's run loaded both files (ingest takes every new file) but processed only day 1.
    alone = two_days.day_one_alone
    assert alone["restricted"]["raw_calls"] and alone["analytics"]["calls_pseudonymized"]
    for zone in ("restricted", "analytics"):
        for table, rows in two_days.day_two[zone].items():
            if table in (*PARTITIONED_TABLES, *ANALYTICS_TABLES):
                assert {row[0] for row in rows} <= {DAY + dt.timedelta(days=1)}, table
    # Running day 2 did not touch day 1; rerunning day 1 reproduced it.
    assert two_days.day_one_after_day_two == alone
    assert two_days.day_one_rerun == alone
    pipeline = two_days.pipeline
    for call_date in (DAY, DAY + dt.timedelta(days=1)):
        counts = assert_accounting_adds_up(pipeline, call_date)
        assert counts["raw_calls"] == 1_000
    with pipeline.analytics() as con:
        dates = {
            row[0]
            for row in con.execute("SELECT DISTINCT call_date FROM row_accounting").fetchall()
        }
    assert dates == {DAY, DAY + dt.timedelta(days=1)}


def _calls_by_caller(pipeline: Pipeline, call_date: dt.date) -> tuple[Counter, Counter]:
    """(pseudonym expected from the restricted E.164 -> calls, published pseudonym -> calls)."""
    names = pseudonymizer()
    with pipeline.restricted() as con:
        expected = Counter(
            {
                names.pseudonym(e164): calls
                for e164, calls in con.execute(
                    "SELECT caller_e164, count(*) FROM consented_calls WHERE call_date = ? GROUP BY 1",
                    [call_date],
                ).fetchall()
            }
        )
    with pipeline.analytics() as con:
        published = Counter(
            dict(
                con.execute(
                    "SELECT caller_pseudonym, count(*) FROM calls_pseudonymized WHERE call_date = ? "
                    "GROUP BY 1",
                    [call_date],
                ).fetchall()
            )
        )
    return expected, published


def test_pseudonyms_are_stable_across_partitions_and_runs(two_days: TwoDays) -> None:
    pipeline = two_days.pipeline
    day_two = DAY + dt.timedelta(days=1)
    expected_one, published_one = _calls_by_caller(pipeline, DAY)
    expected_two, published_two = _calls_by_caller(pipeline, day_two)
    # Each caller's calls carry the keyed pseudonym of its E.164 number, on both days.
    assert published_one == expected_one
    assert published_two == expected_two
    with pipeline.restricted() as con:
        both_days = {
            row[0]
            for row in con.execute(
                "SELECT caller_e164 FROM consented_calls GROUP BY 1 HAVING count(DISTINCT call_date) = 2"
            ).fetchall()
        }
    assert len(both_days) > 10
    names = pseudonymizer()
    for e164 in both_days:
        assert names.pseudonym(e164) in published_one
        assert names.pseudonym(e164) in published_two
    # The rerun of day 1 gave the very same pseudonyms (the whole partition is identical).
    rerun = two_days.day_one_rerun["analytics"]["calls_pseudonymized"]
    assert rerun == two_days.day_one_alone["analytics"]["calls_pseudonymized"]


def test_another_key_gives_other_pseudonyms(
    full_run: FullRun, settings, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    other_key = "9d917cd5f112618f51d178c24fa42c7f4d494a71fe8e74535c865f07ec886cd9"
    monkeypatch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", other_key)
    other_settings = replace(settings, home=tmp_path / "other_home")
    other_settings.ensure_folders()
    with dagster_instance() as instance:
        other = Pipeline(other_settings, instance)
        other.generate()  # the same seed: the same calls as full_run
        assert other.run().success

    def caller_pseudonyms(pipeline: Pipeline) -> Counter:
        with pipeline.analytics() as con:
            return Counter(
                dict(
                    con.execute(
                        "SELECT caller_pseudonym, count(*) FROM calls_pseudonymized GROUP BY 1"
                    ).fetchall()
                )
            )

    with full_run.pipeline.analytics() as con:
        original_callees = {
            row[0]
            for row in con.execute(
                "SELECT DISTINCT callee_pseudonym FROM calls_pseudonymized WHERE callee_pseudonym IS NOT NULL"
            ).fetchall()
        }
    original, renamed = caller_pseudonyms(full_run.pipeline), caller_pseudonyms(other)
    assert not set(original) & set(renamed), "no pseudonym survives a change of key"
    # Same people, same calls: only the names changed.
    assert sorted(original.values()) == sorted(renamed.values())
    assert not original_callees & set(renamed)
    expected, published = _calls_by_caller(other, DAY)
    other_names = pseudonymizer(other_key)
    with other.restricted() as con:
        some_caller = con.execute("SELECT caller_e164 FROM consented_calls LIMIT 1").fetchone()[0]
    assert other_names.pseudonym(some_caller) in renamed
    assert pseudonymizer(TEST_KEY).pseudonym(some_caller) in original


# --- consent --------------------------------------------------------------------------------------


def test_callee_without_consent_keeps_country_and_type_only(full_run: FullRun) -> None:
    pipeline = full_run.pipeline
    with pipeline.analytics() as con:
        anonymous_callees, missing_attributes = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE callee_country IS NULL OR callee_number_type IS NULL) "
            "FROM calls_pseudonymized WHERE callee_pseudonym IS NULL"
        ).fetchone()
        published = {
            value
            for row in con.execute(
                "SELECT caller_pseudonym, callee_pseudonym FROM calls_pseudonymized"
            ).fetchall()
            for value in row
            if value is not None
        }
    with pipeline.restricted() as con:
        not_identifiable = count(
            con, "SELECT count(*) FROM consented_calls WHERE NOT callee_identifiable"
        )
        # Callees that never granted analytics consent, found without the pipeline's join.
        never_granted = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT callee_e164 FROM calls_validated WHERE callee_e164 NOT IN "
                "(SELECT e164 FROM consent_events WHERE purpose = 'analytics' AND status = 'granted')"
            ).fetchall()
        ]
    assert anonymous_callees > 0
    assert anonymous_callees == not_identifiable
    assert missing_attributes == 0
    assert never_granted
    names = pseudonymizer()
    assert not {names.pseudonym(e164) for e164 in never_granted} & published


def test_consent_withdrawal_excludes_later_calls_at_next_run(pipeline: Pipeline) -> None:
    pipeline.generate()
    assert pipeline.run().success
    withdrawn_at = dt.datetime.combine(DAY, dt.time(12, 0), dt.UTC)
    with pipeline.restricted() as con:
        # A caller whose consent was granted before the day and not changed since, with admitted
        # calls before and after noon.
        e164, calls_before, calls_after = con.execute(
            """
            WITH state AS (
                SELECT e164, max(recorded_at) AS last_at, arg_max(status, recorded_at) AS last_status
                FROM consent_events WHERE purpose = 'analytics' GROUP BY e164)
            SELECT calls.caller_e164,
                   count(*) FILTER (WHERE calls.started_at_utc < $noon),
                   count(*) FILTER (WHERE calls.started_at_utc >= $noon)
            FROM consented_calls AS calls JOIN state ON state.e164 = calls.caller_e164
            WHERE state.last_at < $day AND state.last_status = 'granted' AND calls.call_date = $day
              AND calls.caller_country = 'US'
            GROUP BY 1
            HAVING count(*) FILTER (WHERE calls.started_at_utc < $noon) > 0
               AND count(*) FILTER (WHERE calls.started_at_utc >= $noon) > 0
            ORDER BY 3 DESC, 1 LIMIT 1
            """,
            {"noon": withdrawn_at, "day": DAY},
        ).fetchone()
        later_calls = {
            row[0]
            for row in con.execute(
                "SELECT call_id FROM calls_validated WHERE caller_e164 = ? AND started_at_utc >= ?",
                [e164, withdrawn_at],
            ).fetchall()
        }
    assert len(later_calls) == calls_after

    # The registry spells the number as a person typed it; the pipeline matches it by E.164.
    national = phonenumbers.format_number(
        phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL
    )
    assert national != e164
    withdrawal = pd.DataFrame(
        [
            {
                "phone_number": national,
                "purpose": "analytics",
                "status": "withdrawn",
                "recorded_at": "2026-11-01T12:00:00Z",
                "source": "web-form",
            }
        ]
    )
    write_csv_atomically(
        withdrawal, pipeline.settings.landing_consent / "withdrawals_2026-11-01.csv"
    )
    result = pipeline.run()
    assert result.success and all(check_results(result).values())

    with pipeline.restricted() as con:
        exclusions = dict(
            con.execute(
                "SELECT call_id, reason FROM consent_exclusions WHERE call_date = ? AND call_id IN "
                "(SELECT call_id FROM calls_validated WHERE caller_e164 = ?)",
                [DAY, e164],
            ).fetchall()
        )
        still_admitted = count(
            con, "SELECT count(*) FROM consented_calls WHERE caller_e164 = ?", [e164]
        )
        identifiable_after = count(
            con,
            "SELECT count(*) FROM consented_calls WHERE callee_e164 = ? AND started_at_utc >= ?",
            [e164, withdrawn_at],
        )
    assert exclusions == dict.fromkeys(later_calls, CALLER_WITHDRAWN)
    assert still_admitted == calls_before
    assert identifiable_after == 0
    pseudonym = pseudonymizer().pseudonym(e164)
    with pipeline.analytics() as con:
        published_hours = [
            row[0]
            for row in con.execute(
                "SELECT call_hour FROM calls_pseudonymized WHERE caller_pseudonym = ?", [pseudonym]
            ).fetchall()
        ]
        as_callee_after = count(
            con,
            "SELECT count(*) FROM calls_pseudonymized WHERE callee_pseudonym = ? AND call_hour >= ?",
            [pseudonym, withdrawn_at],
        )
        withdrawn_rows = count(
            con,
            "SELECT rows FROM row_accounting WHERE call_date = ? AND stage = 'consent' "
            "AND reason = ?",
            [DAY, CALLER_WITHDRAWN],
        )
    assert len(published_hours) == calls_before
    assert all(hour < withdrawn_at for hour in published_hours)
    assert as_callee_after == 0
    with pipeline.restricted() as con:
        assert withdrawn_rows == count(
            con,
            "SELECT count(*) FROM consent_exclusions WHERE call_date = ? AND reason = ?",
            [DAY, CALLER_WITHDRAWN],
        )
    assert_accounting_adds_up(pipeline, DAY)


# --- small-cell suppression -----------------------------------------------------------------------


def assert_cells_suppressed(pipeline: Pipeline, min_cell_size: int) -> dict[str, int]:
    """Every published cell has >= min_cell_size people; suppressed cells show no figure; the
    cells are what a GROUP BY over the published rows gives. Returns suppressed cells per table."""
    suppressed_cells = {}
    with pipeline.analytics() as con:
        for table, keys in AGGREGATE_KEYS.items():
            key_list = ", ".join(keys)
            figures = ", ".join(FIGURE_COLUMNS)
            cells = con.execute(
                f"SELECT {key_list}, suppressed, {figures} FROM {table} WHERE call_date = ?", [DAY]
            ).fetchall()
            assert cells, table
            row_keys = ", ".join(
                key if key == "call_hour" else f"coalesce({key}, 'unknown') AS {key}"
                for key in keys
            )
            recomputed = {
                row[:2]: row[2:]
                for row in con.execute(
                    f"SELECT {key_list}, count(*), count(DISTINCT caller_pseudonym) FROM "
                    f"(SELECT {row_keys}, caller_pseudonym FROM calls_pseudonymized WHERE call_date = ?) "
                    "GROUP BY ALL",
                    [DAY],
                ).fetchall()
            }
            assert {cell[:2] for cell in cells} == set(recomputed), table
            for cell in cells:
                key, suppressed, values = (
                    cell[:2],
                    cell[2],
                    dict(zip(FIGURE_COLUMNS, cell[3:], strict=True)),
                )
                calls, people = recomputed[key]
                assert suppressed == (people < min_cell_size), (table, key)
                if suppressed:
                    assert all(value is None for value in values.values()), (table, key)
                else:
                    assert values["distinct_subscribers"] == people >= min_cell_size
                    assert values["calls"] == calls
            suppressed_cells[table] = sum(1 for cell in cells if cell[2])
    return suppressed_cells


def test_small_cells_are_suppressed(full_run: FullRun) -> None:
    suppressed = assert_cells_suppressed(full_run.pipeline, 5)
    assert suppressed["call_volume_hourly"] > 0
    metadata = full_run.pipeline.instance.get_latest_materialization_event(
        CALL_VOLUME_HOURLY
    ).asset_materialization.metadata
    assert metadata["min_cell_size"].value == 5
    assert metadata["suppressed_cells"].value == suppressed["call_volume_hourly"]


def test_min_cell_size_is_configurable(
    full_run: FullRun, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHONE_PIPELINE_MIN_CELL_SIZE", "12")
    assert load_settings().min_cell_size == 12

    strict = Pipeline(replace(pipeline.settings, min_cell_size=12), pipeline.instance)
    strict.generate()  # the same calls as full_run
    result = strict.run()
    assert result.success and all(check_results(result).values())
    strict_suppressed = assert_cells_suppressed(strict, 12)
    default_suppressed = assert_cells_suppressed(full_run.pipeline, 5)
    for table in AGGREGATE_KEYS:
        assert strict_suppressed[table] > default_suppressed[table], table
    with strict.analytics() as con:
        smallest = con.execute(
            "SELECT min(distinct_subscribers) FROM call_volume_by_country WHERE NOT suppressed"
        ).fetchone()[0]
    assert smallest is None or smallest >= 12


# --- metadata -------------------------------------------------------------------------------------


def test_materializations_carry_lineage_metadata(full_run: FullRun) -> None:
    instance = full_run.pipeline.instance
    graph_keys = [dg.AssetKey.from_user_string(key) for key in sorted(TABLE_ASSETS)]
    schemas: dict[dg.AssetKey, set[str]] = {}
    events = {}
    for key in graph_keys:
        event = instance.get_latest_materialization_event(key)
        assert event is not None, key
        events[key] = event.asset_materialization
        schema = events[key].metadata["dagster/column_schema"].value
        assert isinstance(schema, dg.TableSchema)
        schemas[key] = {column.name for column in schema.columns}

    unpartitioned = {"restricted/cell_reference", "restricted/consent_events",
                     "restricted/dnc_registry", "restricted/dnc_scrub_list",
                     "restricted/erasure_register"}  # fmt: skip
    source_like = {"restricted/raw_calls", "analytics/row_accounting",
                   "restricted/cell_reference", "restricted/consent_events",
                   "restricted/dnc_registry", "restricted/erasure_register"}  # fmt: skip
    settings = full_run.pipeline.settings
    with (
        full_run.pipeline.restricted() as restricted,
        full_run.pipeline.analytics() as analytics,
        duckdb.connect(str(settings.compliance_db), read_only=True) as compliance,
        duckdb.connect(str(settings.shareable_db), read_only=True) as shareable,
    ):
        zones = {"analytics": analytics, "compliance": compliance, "shareable": shareable}
        for key, materialization in events.items():
            name = key.to_user_string()
            metadata = materialization.metadata
            if name not in unpartitioned:
                assert materialization.partition == DAY.isoformat()
                con = zones.get(key.path[0], restricted)
                rows = count(con, f"SELECT count(*) FROM {key.path[-1]} WHERE call_date = ?", [DAY])
                assert metadata["dagster/partition_row_count"].value == rows, name
                assert {c.name for c in metadata["dagster/column_schema"].value.columns} == {
                    row[0] for row in con.execute(f"DESCRIBE {key.path[-1]}").fetchall()
                }, name
            if name in source_like:
                continue
            lineage = metadata["dagster/column_lineage"].value
            assert isinstance(lineage, dg.TableColumnLineage), name
            assert set(lineage.deps_by_column) <= schemas[key], name
            for column, deps in lineage.deps_by_column.items():
                assert deps, (name, column)
                for dep in deps:
                    assert dep.column_name in schemas[dep.asset_key], (name, column, dep)
    # Every column of the analytics rows is explained by lineage.
    pseudonymized = dg.AssetKey(["analytics", "calls_pseudonymized"])
    lineage = events[pseudonymized].metadata["dagster/column_lineage"].value
    assert set(lineage.deps_by_column) == schemas[pseudonymized]
    for aggregate in (CALL_VOLUME_HOURLY, CALL_VOLUME_BY_COUNTRY):
        lineage = events[aggregate].metadata["dagster/column_lineage"].value
        # Exact figures: dp_epsilon is set only under differential privacy (NULL here), so it
        # has no source column (lineage is derived from the SQL, test_lineage.py).
        assert set(lineage.deps_by_column) == schemas[aggregate] - {"dp_epsilon"}


def _zone_files(pipeline: Pipeline) -> dict[str, Path]:
    settings = pipeline.settings
    return {
        catalog.RESTRICTED: settings.restricted_db,
        catalog.ANALYTICS: settings.analytics_db,
        catalog.COMPLIANCE: settings.compliance_db,
        catalog.SHAREABLE: settings.shareable_db,
    }


def test_the_catalog_is_what_the_pipeline_created(full_run: FullRun) -> None:
    """Each zone file a run made has exactly the catalog's tables, and each table the catalog's
    columns, types, NOT NULL and primary keys, in order."""
    for zone, path in _zone_files(full_run.pipeline).items():
        with duckdb.connect(str(path), read_only=True) as con:
            tables = {
                row[0]
                for row in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
                ).fetchall()
            }
            assert tables == {table.name for table in catalog.zone_tables(zone)}, zone
            for table in catalog.zone_tables(zone):
                described = [
                    (name, kind, null == "YES", key == "PRI")
                    for name, kind, null, key, *_ in con.execute(
                        f"DESCRIBE {table.name}"
                    ).fetchall()
                ]
                declared = [
                    (
                        c.name,
                        c.described_type,
                        not c.not_null,
                        c.primary_key or c.name in table.primary_key,
                    )
                    for c in table.columns
                ]
                assert described == declared, table.qualified
                keys = con.execute(
                    "SELECT constraint_column_names FROM duckdb_constraints() "
                    "WHERE schema_name = 'main' AND table_name = ? "
                    "AND constraint_type = 'PRIMARY KEY'",
                    [table.name],
                ).fetchall()
                single = [c.name for c in table.columns if c.primary_key]
                expected = [list(table.primary_key)] if table.primary_key else [[n] for n in single]
                assert [row[0] for row in keys] == expected, table.qualified


def test_column_schema_metadata_carries_the_catalog_descriptions(full_run: FullRun) -> None:
    """Every column shown in the UI has its description from the catalog (never empty)."""
    instance = full_run.pipeline.instance
    described = 0
    for name in sorted(TABLE_ASSETS):
        metadata = instance.get_latest_materialization_event(
            dg.AssetKey.from_user_string(name)
        ).asset_materialization.metadata
        table = catalog.lookup(metadata["dagster/table_name"].value)
        expected = {column.name: column.description for column in table.columns}
        for column in metadata["dagster/column_schema"].value.columns:
            assert column.description == expected[column.name], (name, column.name)
            described += 1
    assert described > 100


# --- expected failures ----------------------------------------------------------------------------


def published_rows(pipeline: Pipeline, table: str = "calls_pseudonymized") -> int:
    """Rows of an analytics table; 0 when the file or the table was never created."""
    if not pipeline.settings.analytics_db.exists():
        return 0
    with pipeline.analytics() as con:
        if table not in {row[0] for row in con.execute("SHOW TABLES").fetchall()}:
            return 0
        return count(con, f"SELECT count(*) FROM {table}")


def test_missing_pseudonym_key_fails_and_publishes_nothing(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.generate()
    monkeypatch.delenv("PHONE_PIPELINE_PSEUDONYM_KEY")
    # Dagster resolves the EnvVar before any step: the run is refused as a whole.
    with pytest.raises(dg.DagsterInvalidConfigError, match="PHONE_PIPELINE_PSEUDONYM_KEY"):
        pipeline.run()
    assert published_rows(pipeline) == 0


def test_too_short_pseudonym_key_fails_the_run_before_any_step(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    weak_key = "not-a-256-bit-secret"
    pipeline.generate()
    monkeypatch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", weak_key)
    result = pipeline.run()
    assert not result.success
    # The key resource refuses the key as the run starts: no step runs, nothing is written.
    assert step_outcomes(result) == {}
    failures = [
        event.event_specific_data.error.message
        for event in result.all_events
        if event.event_type_value == "RESOURCE_INIT_FAILURE"
    ]
    assert len(failures) == 1 and "PHONE_PIPELINE_PSEUDONYM_KEY is too short" in failures[0]
    assert weak_key not in failures[0]
    assert published_rows(pipeline) == 0
    assert published_rows(pipeline, "row_accounting") == 0


def test_empty_partition_gives_empty_tables_and_fails_the_raw_gate(pipeline: Pipeline) -> None:
    pipeline.generate()  # data for DAY only
    empty_day = DAY + dt.timedelta(days=5)
    result = pipeline.run(empty_day)
    assert not result.success
    assert check_results(result)["raw_calls_suite"] is False
    failures = step_failures(result)
    assert set(failures) == {"restricted__raw_calls"}
    assert "raw_calls_suite" in failures["restricted__raw_calls"]
    assert "does not exist" not in failures["restricted__raw_calls"]
    outcomes = step_outcomes(result)
    for step in ("validate_calls", "join_consent", "analytics__calls_pseudonymized"):
        assert step not in outcomes or outcomes[step] == "STEP_SKIPPED", step
    with pipeline.restricted() as con:
        for table in PARTITIONED_TABLES:
            assert count(con, f"SELECT count(*) FROM {table} WHERE call_date = ?", [empty_day]) == 0
    metadata = pipeline.instance.get_latest_materialization_event(
        RAW_CALLS
    ).asset_materialization.metadata
    assert metadata["dagster/partition_row_count"].value == 0


def test_day_without_admitted_calls_publishes_empty_partitions(pipeline: Pipeline) -> None:
    """A day whose callers never consented: everything validated, nothing admitted, empty
    analytics partitions and a successful run (an empty DataFrame must not lose a table)."""
    quiet_day = DAY + dt.timedelta(days=2)
    calls = pd.DataFrame(
        {
            "call_id": [f"quiet-{i}" for i in range(8)],
            "caller_number": [f"+1 212 555 01{i:02d}" for i in range(8)],
            "callee_number": [f"+1 312 555 01{i:02d}" for i in range(8)],
            "started_at": [f"{quiet_day.isoformat()}T1{i}:15:00Z" for i in range(8)],
            "duration_seconds": ["60"] * 8,
            "disposition": ["answered"] * 8,
            "cell_id": [""] * 8,
        }
    )
    write_csv_atomically(calls, pipeline.settings.landing_calls / "quiet_day.csv")
    result = pipeline.run(quiet_day)
    assert result.success, step_failures(result)
    assert all(check_results(result).values())
    counts = assert_accounting_adds_up(pipeline, quiet_day)
    assert counts["calls_validated"] == 8
    assert counts["consented_calls"] == 0 and counts["calls_pseudonymized"] == 0
    with pipeline.analytics() as con:
        for table in ANALYTICS_TABLES[:3]:
            assert count(con, f"SELECT count(*) FROM {table} WHERE call_date = ?", [quiet_day]) == 0
