"""Retention through Dagster on real DuckDB files: the scheduled sweep deletes exactly the
partitions past each zone's cutoff and logs the counts; stages refuse to rebuild such partitions
from landing files that are still there."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace

import dagster as dg
import duckdb
import pandas as pd
import pytest

from phone_pipeline.automation.schedules import daily_retention_schedule
from phone_pipeline.definitions import defs
from phone_pipeline.domain.retention import RETENTION_TABLES
from phone_pipeline.resources import build_resources
from phone_pipeline.stages.aggregate.assets import call_volume_hourly
from phone_pipeline.stages.pseudonymize.assets import calls_pseudonymized
from phone_pipeline_tests.conftest import DAY, Pipeline, check_results
from phone_pipeline_tests.pipeline_support import (
    count,
    module_pipeline,
    read_text_csv,
    step_failures,
    write_csv_atomically,
)

RESTRICTED_DAYS = 15
PSEUDONYMIZED_DAYS = 25
# Partitions cloned from DAY's real rows: DAY - 1 is one day past the restricted cutoff (DAY),
# DAY - 10 sits exactly on the pseudonymised cutoff, DAY - 11 is one day past it.
CLONED_OFFSETS = (1, 10, 11)
AS_OF = DAY + dt.timedelta(days=RESTRICTED_DAYS)
OLD_DAY = dt.date(2025, 1, 1)  # past a 90- or 396-day retention whenever the tests run
# Cache entries of numbers only deleted rows named: one valid, one invalid (fictional 555-01xx).
UNREFERENCED_CACHE_ROWS = [
    ("+1 (202) 555-0199", "US", "+12025550199", "US", "fixed_line_or_mobile", None),
    ("555-01", "US", None, None, None, "too_short"),
]


def _clone_partitions(pipeline: Pipeline) -> dict[str, int]:
    """Copy DAY's rows of every swept table to the cloned days; rows per table per day."""
    import duckdb

    per_day = {}
    con = duckdb.connect(str(pipeline.settings.restricted_db))
    try:
        con.execute(f"ATTACH '{pipeline.settings.analytics_db}' AS analytics")
        con.execute(f"ATTACH '{pipeline.settings.compliance_db}' AS compliance")
        con.execute(f"ATTACH '{pipeline.settings.shareable_db}' AS shareable")
        for table in [table for tables in RETENTION_TABLES.values() for table in tables]:
            per_day[table] = count(con, f"SELECT count(*) FROM {table} WHERE call_date = ?", [DAY])
            for offset in CLONED_OFFSETS:
                con.execute(
                    f"INSERT INTO {table} SELECT * REPLACE (CAST(? AS DATE) AS call_date) "
                    f"FROM {table} WHERE call_date = ?",
                    [DAY - dt.timedelta(days=offset), DAY],
                )
    finally:
        con.close()
    return per_day


def _sweep(pipeline: Pipeline, run_config: dict) -> dg.ExecuteInProcessResult:
    # The partitions were built without retention (their fixed days would be past it today);
    # the sweep runs with it.
    settings = replace(
        pipeline.settings,
        retention_restricted_days=RESTRICTED_DAYS,
        retention_pseudonymized_days=PSEUDONYMIZED_DAYS,
        retention_aggregates_days=0,
    )
    return defs.resolve_job_def("retention_sweep").execute_in_process(
        run_config=run_config,
        instance=pipeline.instance,
        resources=build_resources(settings),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("retention")) as pipeline:
        pipeline.generate()
        assert pipeline.run().success
        per_day = _clone_partitions(pipeline)
        with duckdb.connect(str(pipeline.settings.restricted_db)) as con:
            con.executemany(
                "INSERT INTO number_cache (raw_number, default_region, e164, country, number_type, "
                "reason) VALUES (?, ?, ?, ?, ?, ?)",
                UNREFERENCED_CACHE_ROWS,
            )
        tick = dt.datetime.combine(AS_OF, dt.time(4, 0), tzinfo=dt.UTC)
        request = daily_retention_schedule(dg.build_schedule_context(scheduled_execution_time=tick))
        result = _sweep(pipeline, request.run_config)
        yield pipeline, per_day, request, result


def test_schedule_requests_a_sweep_as_of_its_tick(swept) -> None:
    _, _, request, result = swept
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"retention-{AS_OF}"
    assert result.success
    assert check_results(result) == {"retention_holds": True}


def test_each_zone_keeps_its_cutoff_day_and_deletes_the_day_before(swept) -> None:
    pipeline, per_day, _, _ = swept
    with pipeline.restricted() as con:
        for table in RETENTION_TABLES["restricted"]:
            days = dict(
                con.execute(f"SELECT call_date, count(*) FROM {table} GROUP BY 1").fetchall()
            )
            # cutoff = DAY: kept; DAY - 1, - 10, - 11: deleted (empty partitions have no rows)
            assert days == ({DAY: per_day[table]} if per_day[table] else {}), table
    with pipeline.analytics() as con:
        days = dict(
            con.execute("SELECT call_date, count(*) FROM calls_pseudonymized GROUP BY 1").fetchall()
        )
        n = per_day["analytics.calls_pseudonymized"]
        assert n > 0
        kept = [DAY, DAY - dt.timedelta(days=1), DAY - dt.timedelta(days=10)]
        assert days == dict.fromkeys(kept, n)
        for table in RETENTION_TABLES["aggregates"]:
            zone, name = table.split(".")
            if zone == "analytics":
                assert count(con, f"SELECT count(*) FROM {name}") == 4 * per_day[table], name


def test_shareable_and_compliance_follow_their_zones_cutoffs(swept) -> None:
    """The pseudonymised rows' shareable copy and the findings per callee keep DAY - 10 (the
    pseudonymised cutoff) and lose DAY - 11; their aggregates are kept."""
    pipeline, per_day, _, _ = swept
    kept = {DAY, DAY - dt.timedelta(days=1), DAY - dt.timedelta(days=10)}
    for zone, path in (("shareable", pipeline.settings.shareable_db),
                       ("compliance", pipeline.settings.compliance_db)):  # fmt: skip
        with duckdb.connect(str(path), read_only=True) as con:
            for retention_zone, days in (("pseudonymized", kept), ("aggregates", None)):
                for table in RETENTION_TABLES[retention_zone]:
                    if not table.startswith(f"{zone}."):
                        continue
                    name = table.split(".")[1]
                    found = dict(
                        con.execute(f"SELECT call_date, count(*) FROM {name} GROUP BY 1").fetchall()
                    )
                    n = per_day[table]
                    expected_days = (
                        days if days is not None else kept | {DAY - dt.timedelta(days=11)}
                    )
                    assert found == (dict.fromkeys(expected_days, n) if n else {}), table
    # Every new zone had rows to sweep in this data.
    assert per_day["shareable.calls_pseudonymized"] > 0
    assert per_day["compliance.contact_pressure"] > 0
    assert per_day["shareable.call_volume_hourly"] > 0


def test_the_number_cache_keeps_only_numbers_that_kept_rows_or_registries_refer_to(
    swept,
) -> None:
    pipeline, _, _, _ = swept
    with pipeline.restricted() as con:
        cached = set(con.execute("SELECT raw_number FROM number_cache").fetchall())
        assert not cached & {(row[0],) for row in UNREFERENCED_CACHE_ROWS}
        for references in (
            "SELECT e164 FROM known_numbers",
            "SELECT e164 FROM consent_events",
            "SELECT caller_number FROM calls_quarantine WHERE caller_number IS NOT NULL",
        ):
            missing = count(
                con,
                f"SELECT count(*) FROM ({references}) AS kept(value) WHERE NOT EXISTS "
                "(SELECT 1 FROM number_cache AS cache "
                "WHERE kept.value IN (cache.raw_number, cache.e164))",
            )
            assert missing == 0, references
        assert count(con, "SELECT count(*) FROM calls_quarantine") > 0
        assert count(con, "SELECT count(*) FROM consent_events") > 0


def test_retention_log_and_metadata_hold_the_counts(swept) -> None:
    pipeline, per_day, _, result = swept
    with pipeline.analytics() as con:
        log = con.execute(
            "SELECT zone, table_name, retention_days, cutoff, rows_deleted, as_of, run_id "
            "FROM retention_log"
        ).fetchall()
    assert len(log) == sum(len(tables) for tables in RETENTION_TABLES.values()) + 1
    by_table = {row[1]: row for row in log}
    assert by_table["number_cache"][:4] == ("restricted", "number_cache", RESTRICTED_DAYS, DAY)
    assert by_table["number_cache"][4] >= len(UNREFERENCED_CACHE_ROWS)
    for table in RETENTION_TABLES["restricted"]:
        assert by_table[table][2:5] == (RESTRICTED_DAYS, DAY, 3 * per_day[table])
    assert by_table["analytics.calls_pseudonymized"][2:5] == (
        PSEUDONYMIZED_DAYS,
        DAY - dt.timedelta(days=10),
        per_day["analytics.calls_pseudonymized"],
    )
    for table in RETENTION_TABLES["aggregates"]:
        assert by_table[table][2:5] == (0, None, 0)
    assert {row[5] for row in log} == {AS_OF} and {row[6] for row in log} == {result.run_id}
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["rows_deleted"].value == sum(row[4] for row in log) > 0
    assert metadata["as_of"].value == AS_OF.isoformat()


def test_a_second_sweep_deletes_nothing_and_a_future_date_is_refused(swept) -> None:
    pipeline, _, request, _ = swept
    again = _sweep(pipeline, request.run_config)
    assert again.success
    with pipeline.analytics() as con:
        assert count(con, "SELECT sum(rows_deleted) FROM retention_log WHERE run_id = ?",
                     [again.run_id]) == 0  # fmt: skip
    future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)
    config = {"ops": {"restricted__retention_sweep": {"config": {"as_of": future.isoformat()}}}}
    refused = _sweep(pipeline, config)
    assert not refused.success
    assert "after today" in "\n".join(step_failures(refused).values())


# Past every zone's retention (OLD_DAY is about two years old): nothing of it would be kept.
PAST_EVERY_ZONE = {
    "retention_restricted_days": 90,
    "retention_pseudonymized_days": 396,
    "retention_aggregates_days": 600,
}


def test_a_partition_past_every_retention_is_not_built_from_its_landing_file(
    pipeline: Pipeline,
) -> None:
    """Days past only some zones' retention are backfilled (test_backfill.py); a day past all of
    them would keep nothing, so it is refused, and its rows are not loaded."""
    pipeline.settings = replace(pipeline.settings, **PAST_EVERY_ZONE)
    pipeline.generate(start_date=OLD_DAY)
    result = pipeline.run(OLD_DAY)
    assert not result.success
    failures = step_failures(result)
    assert "restricted__raw_calls" in failures
    assert "every zone would delete what it produced" in failures["restricted__raw_calls"]
    with pipeline.restricted() as con:
        assert count(con, "SELECT count(*) FROM raw_calls") == 0
        assert count(con, "SELECT count(*) FROM landing_files") == 0
    # The later stages refuse on their own too (materialised alone, they would create a
    # partition that retention deletes).
    for asset in (calls_pseudonymized, call_volume_hourly):
        alone = dg.materialize(
            [asset],
            partition_key=OLD_DAY.isoformat(),
            instance=pipeline.instance,
            resources=build_resources(pipeline.settings),
            raise_on_error=False,
        )
        assert not alone.success
        assert "every zone would delete what it produced" in "\n".join(
            step_failures(alone).values()
        )


def test_old_rows_in_a_new_file_are_quarantined_not_loaded_into_a_deleted_partition(
    pipeline: Pipeline,
) -> None:
    pipeline.settings = replace(pipeline.settings, **PAST_EVERY_ZONE)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    summary = pipeline.generate(start_date=yesterday, junk_share=0.0)
    path = summary.call_files[0]
    frame = read_text_csv(path)
    old = frame.iloc[[0]].assign(call_id="old-call-1", started_at="2025-01-01T10:00:00Z")
    write_csv_atomically(pd.concat([frame, old], ignore_index=True), path)
    result = pipeline.run(yesterday)
    assert result.success, step_failures(result)
    with pipeline.restricted() as con:
        assert count(con, "SELECT count(*) FROM raw_calls WHERE call_date < ?", [yesterday]) == 0
        assert (
            count(
                con,
                "SELECT count(*) FROM calls_quarantine WHERE call_id = 'old-call-1' "
                "AND reason = 'started_at_out_of_range' AND call_date = ?",
                [yesterday],
            )
            == 1
        )


def test_the_sensor_requests_no_run_for_a_partition_past_every_retention(tmp_path) -> None:
    from phone_pipeline.automation.sensors import landing_calls_sensor
    from phone_pipeline.resources import PipelineConfig

    calls = tmp_path / "landing" / "calls"
    calls.mkdir(parents=True)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    frame = pd.DataFrame(
        {
            "call_id": ["old", "new"],
            "caller_number": ["+1 212 555 0101"] * 2,
            "callee_number": ["+1 212 555 0102"] * 2,
            "started_at": [f"{OLD_DAY}T10:00:00Z", f"{yesterday}T10:00:00Z"],
            "duration_seconds": ["30"] * 2,
            "disposition": ["answered"] * 2,
        }
    )
    path = calls / "calls.csv"
    write_csv_atomically(frame, path)
    old_enough = path.stat().st_mtime - 60  # settled
    os.utime(path, (old_enough, old_enough))
    both = {OLD_DAY.isoformat(), yesterday.isoformat()}
    with dg.instance_for_test() as instance:
        # No retention; past the restricted retention only (a backfill, aggregates kept); past
        # every zone's retention.
        for retention, expected in (({"retention_restricted_days": 0}, both),
                                    ({"retention_restricted_days": 90}, both),
                                    (PAST_EVERY_ZONE, {yesterday.isoformat()})):  # fmt: skip
            context = dg.build_sensor_context(
                resources={"pipeline_config": PipelineConfig(data_home=str(tmp_path), **retention)},
                instance=instance,
            )
            result = landing_calls_sensor(context)
            assert {request.partition_key for request in result.run_requests} == expected


def test_rows_of_a_file_stay_accounted_for_after_the_sweep_of_one_of_its_days(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A file with calls on two days; the older day is swept; a run of the newer day must still
    find every row of the file: kept, erased, or swept by retention."""
    from phone_pipeline_tests.test_erasure import analytics_consent, call

    today = dt.datetime.now(dt.UTC).date()
    old_day, new_day = today - dt.timedelta(days=20), today - dt.timedelta(days=5)
    numbers = ["+12125550171", "+12125550172", "+12125550173"]
    calls = pd.DataFrame(
        [
            call("o-1", numbers[0], numbers[1], f"{old_day}T10:00:00Z"),
            call("o-2", numbers[1], numbers[2], f"{old_day}T11:00:00Z"),
            call("n-1", numbers[2], numbers[0], f"{new_day}T10:00:00Z"),
        ]
    )
    consent = analytics_consent(numbers, f"{old_day - dt.timedelta(days=1)}T00:00:00Z")
    with module_pipeline(tmp_path_factory.mktemp("retention_identity")) as pipeline:
        write_csv_atomically(calls, pipeline.settings.landing_calls / "two_days.csv")
        write_csv_atomically(consent, pipeline.settings.landing_consent / "consent.csv")
        for day in (old_day, new_day):
            assert pipeline.run(day).success
        pipeline.settings = replace(pipeline.settings, retention_restricted_days=10)
        sweep = defs.resolve_job_def("retention_sweep").execute_in_process(
            instance=pipeline.instance, resources=build_resources(pipeline.settings)
        )
        assert sweep.success
        with pipeline.restricted() as con:
            assert count(con, "SELECT count(*) FROM raw_calls") == 1  # the old day's 2 went
        result = pipeline.run(new_day)
        assert result.success, step_failures(result)
        assert check_results(result)["raw_rows_identified_once"]
        with pipeline.restricted() as con:
            swept = con.execute(
                "SELECT table_name, call_date, rows FROM retention_swept_rows"
            ).fetchall()
        assert swept == [("raw_calls", old_day, 2)]
