"""Withdrawal and erasure reach partitions already published: the registry refresh and the erasure
register name the partitions they affect, and `privacy_rerun_sensor` (evaluated for real against
the run's Dagster instance) requests their re-runs, once per change."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from phone_pipeline.automation.sensors import plan_privacy_reruns, privacy_rerun_sensor
from phone_pipeline.domain.consent import CALLER_WITHDRAWN
from phone_pipeline.resources import PipelineConfig, build_resources
from phone_pipeline.stages.erasure.checks import ERASURE_REGISTER
from phone_pipeline_tests.conftest import Pipeline, check_results
from phone_pipeline_tests.pipeline_support import count, module_pipeline, pseudonymizer
from phone_pipeline_tests.pipeline_support import write_csv_atomically as write
from phone_pipeline_tests.test_erasure import analytics_consent, call, request_erasure

DAY_ONE, DAY_TWO = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
W = "+12125550111"  # withdraws at noon on day one
X = "+12125550112"  # asks for erasure later
OTHERS = [f"+1212555{n:04d}" for n in range(120, 126)]
P, Q, R, S, T, U = OTHERS

CALLS = pd.DataFrame(
    [
        call("1", W, P, "2026-11-01T09:00:00Z"),
        call("2", W, Q, "2026-11-01T11:00:00Z"),
        call("3", W, R, "2026-11-01T13:00:00Z"),
        call("4", W, S, "2026-11-01T15:00:00Z"),
        call("5", P, W, "2026-11-01T10:00:00Z"),
        call("6", Q, W, "2026-11-01T14:00:00Z"),
        call("7", X, T, "2026-11-01T09:30:00Z"),
        call("8", U, X, "2026-11-01T16:00:00Z"),
        call("9", R, S, "2026-11-01T17:00:00Z"),
        call("10", W, T, "2026-11-02T10:00:00Z"),
        call("11", X, U, "2026-11-02T11:00:00Z"),
        call("12", S, P, "2026-11-02T12:00:00Z"),
    ]
)
CONSENT = analytics_consent([W, X, *OTHERS])


def tick(pipeline: Pipeline, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=pipeline.instance,
        resources={"pipeline_config": build_resources(pipeline.settings)["pipeline_config"]},
    )
    result = privacy_rerun_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def run_requested(pipeline: Pipeline, request: dg.RunRequest) -> None:
    result = pipeline.run(request.partition_key)
    assert result.success and all(check_results(result).values())


def published_hours(pipeline: Pipeline, number: str, column: str) -> list[int]:
    with pipeline.analytics() as con:
        return [
            row[0].hour
            for row in con.execute(
                f"SELECT call_hour FROM calls_pseudonymized WHERE {column} = ? ORDER BY 1",
                [pseudonymizer().pseudonym(number)],
            ).fetchall()
        ]


def hourly_total(pipeline: Pipeline, day: dt.date) -> int:
    with pipeline.analytics() as con:
        return count(
            con, "SELECT coalesce(sum(calls), 0) FROM call_volume_hourly WHERE call_date = ?", [day]
        )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    # Cells of one subscriber are published, so that the aggregates' figures can be compared.
    with module_pipeline(tmp_path_factory.mktemp("reruns"), min_cell_size=1) as pipeline:
        write(CALLS, pipeline.settings.landing_calls / "calls.csv")
        write(CONSENT, pipeline.settings.landing_consent / "consent.csv")
        for day in (DAY_ONE, DAY_TWO):
            assert pipeline.run(day).success
        yield pipeline


def test_withdrawal_mid_day_reaches_a_published_partition(pipeline: Pipeline) -> None:
    first = tick(pipeline, None)
    assert first.run_requests == []  # nothing changed after the first runs
    assert published_hours(pipeline, W, "caller_pseudonym") == [9, 11, 13, 15, 10]
    assert hourly_total(pipeline, DAY_ONE) == 9

    withdrawal = CONSENT.iloc[[0]].assign(status="withdrawn", recorded_at="2026-11-01T12:00:00Z")
    write(withdrawal, pipeline.settings.landing_consent / "withdrawal.csv")
    # The next run is day two's: day one is already published.
    assert pipeline.run(DAY_TWO).success
    second = tick(pipeline, first.cursor)
    assert [(r.partition_key, r.tags["phone_pipeline/trigger"]) for r in second.run_requests] == [
        ("2026-11-01", "consent_change")
    ]
    run_requested(pipeline, second.run_requests[0])

    # Calls before noon stay, calls after go; as callee after noon the pseudonym is gone.
    assert published_hours(pipeline, W, "caller_pseudonym") == [9, 11]
    assert published_hours(pipeline, W, "callee_pseudonym") == [10]
    assert hourly_total(pipeline, DAY_ONE) == 7
    with pipeline.restricted() as con:
        excluded = count(
            con,
            "SELECT count(*) FROM consent_exclusions WHERE call_date = ? AND reason = ?",
            [DAY_ONE, CALLER_WITHDRAWN],
        )
    assert excluded == 2

    # The re-run changed nothing new: no further run, and the same change is not re-run.
    third = tick(pipeline, second.cursor)
    assert third.run_requests == []
    again = tick(pipeline, first.cursor)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in second.run_requests]


def test_erasure_reruns_the_other_partition_and_rebuilds_its_aggregates(
    pipeline: Pipeline,
) -> None:
    cursor = tick(pipeline, None).cursor
    before = hourly_total(pipeline, DAY_ONE)
    request_erasure(pipeline, "erasure.csv", [(X, "2026-11-03T08:00:00Z", "x-1")])
    assert pipeline.run(DAY_TWO).success
    result = tick(pipeline, cursor)
    assert [(r.partition_key, r.tags["phone_pipeline/trigger"]) for r in result.run_requests] == [
        ("2026-11-01", "erasure")
    ]
    # Before the re-run the aggregates still count the erased call; after, they do not.
    assert hourly_total(pipeline, DAY_ONE) == before
    run_requested(pipeline, result.run_requests[0])
    assert hourly_total(pipeline, DAY_ONE) == before - 1
    assert published_hours(pipeline, X, "caller_pseudonym") == []
    assert published_hours(pipeline, X, "callee_pseudonym") == []
    with pipeline.analytics() as con:
        accounted = count(
            con,
            "SELECT sum(rows) FROM row_accounting WHERE call_date = ? AND stage = 'erasure'",
            [DAY_ONE],
        )
    assert accounted == 1
    assert tick(pipeline, result.cursor).run_requests == []


def test_plan_keeps_partitions_in_range_and_groups_changes() -> None:
    runs = plan_privacy_reruns(
        [("erasure", 5, ["2026-11-01", "2019-01-01"]), ("consent_change", 9, ["2026-11-01"])],
        dt.date(2024, 1, 1),
        dt.date(2026, 12, 31),
    )
    assert runs == {"2026-11-01": ["erasure:5", "consent_change:9"]}
    json.dumps(runs)


def test_no_rerun_is_requested_for_a_partition_past_retention(tmp_path) -> None:
    """An erasure that touched a partition the sweep has since deleted: its run would be refused
    (and fail), so the sensor does not request it."""
    today = dt.datetime.now(dt.UTC).date()
    old_day, recent_day = today - dt.timedelta(days=100), today - dt.timedelta(days=1)
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=ERASURE_REGISTER,
                metadata={
                    "affected_partitions": dg.MetadataValue.json(
                        [old_day.isoformat(), recent_day.isoformat()]
                    )
                },
            )
        )
        for restricted_days, pseudonymized_days, expected in (
            (0, 0, [old_day, recent_day]),
            (90, 0, [recent_day]),
            (0, 90, [recent_day]),  # the pseudonymised rows are refused too
        ):
            config = PipelineConfig(
                data_home=str(tmp_path),
                retention_restricted_days=restricted_days,
                retention_pseudonymized_days=pseudonymized_days,
            )
            context = dg.build_sensor_context(
                instance=instance, resources={"pipeline_config": config}
            )
            result = privacy_rerun_sensor(context)
            assert isinstance(result, dg.SensorResult)
            assert [r.partition_key for r in result.run_requests] == [
                day.isoformat() for day in expected
            ]
