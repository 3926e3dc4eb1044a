"""The re-identification risk asset and the shareable zone's gates, through Dagster on real files.

One generated day, run four times on the same data home: with the default limits (row-level calls
withheld, their gate passed with the decision in its metadata, the run green), with loosened limits (published),
with the default limits again (the published partition withdrawn, deliberately and logged), and
once more (withheld, nothing changes).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace

import dagster as dg
import duckdb
import pytest

from phone_pipeline.domain.publication import CANDIDATES
from phone_pipeline.settings import default, load_settings
from phone_pipeline.stages.risk.checks import risk_gate_name, shareable_key
from phone_pipeline_tests.conftest import DAY, Pipeline, check_results, materialized
from phone_pipeline_tests.pipeline_support import count, module_pipeline, snapshot

DEFAULT_LIMITS = {
    "max_share_below_k": default("max_share_below_k"),
    "max_unicity": default("max_unicity"),
}
LOOSE_LIMITS = {"max_share_below_k": 1.0, "max_unicity": 1.0}
DATASETS = [candidate.name for candidate in CANDIDATES]


@dataclass
class Stage:
    result: dg.ExecuteInProcessResult
    shareable: dict[str, list[tuple]]  # table -> rows of DAY
    analytics: dict[str, list[tuple]]


@dataclass
class Scene:
    pipeline: Pipeline
    strict: Stage
    loose: Stage
    tightened: Stage
    again: Stage


def _stage(pipeline: Pipeline, limits: dict[str, float]) -> Stage:
    run_with = Pipeline(replace(pipeline.settings, **limits), pipeline.instance)
    result = run_with.run()
    with duckdb.connect(str(pipeline.settings.shareable_db), read_only=True) as shareable:
        shared = snapshot(shareable, call_date=DAY)
    with pipeline.analytics() as analytics:
        internal = snapshot(analytics, call_date=DAY)
    return Stage(result, shared, internal)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("shareable")) as pipeline:
        pipeline.generate()
        yield Scene(
            pipeline,
            strict=_stage(pipeline, DEFAULT_LIMITS),
            loose=_stage(pipeline, LOOSE_LIMITS),
            tightened=_stage(pipeline, DEFAULT_LIMITS),
            again=_stage(pipeline, DEFAULT_LIMITS),
        )


def check_evaluation(result: dg.ExecuteInProcessResult, name: str):
    [evaluation] = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.check_name == name
    ]
    return evaluation


def risk_rows(stage: Stage) -> dict[str, dict[tuple[str, int | None], tuple]]:
    """dataset -> (measure, parameter) -> (value, subscribers, sampled, margin, applicable)."""
    rows: dict[str, dict] = defaultdict(dict)
    for row in stage.analytics["reidentification_risk"]:
        _, dataset, measure, parameter, _, value, subscribers, sampled, margin, applicable, _ = row
        rows[dataset][(measure, parameter)] = (value, subscribers, sampled, margin, applicable)
    return rows


def test_default_limits_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PHONE_PIPELINE_MAX_SHARE_BELOW_K", "PHONE_PIPELINE_MAX_UNICITY",
                 "PHONE_PIPELINE_RISK_K", "PHONE_PIPELINE_UNICITY_SAMPLE_SIZE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert (settings.max_share_below_k, settings.max_unicity) == (0.0, 0.05)
    assert settings.risk_k is None and settings.unicity_sample_size == 10_000
    monkeypatch.setenv("PHONE_PIPELINE_RISK_K", "8")
    monkeypatch.setenv("PHONE_PIPELINE_MAX_UNICITY", "0.2")
    assert (load_settings().risk_k, load_settings().max_unicity) == (8, 0.2)


def test_risk_is_measured_for_every_candidate(scene: Scene) -> None:
    rows = risk_rows(scene.strict)
    assert set(rows) == set(DATASETS)
    for dataset, measures in rows.items():
        assert ("subscribers", None) in measures and ("share_below_k", 5) in measures, dataset
        histogram = [v for (m, _), v in measures.items() if m == "group_size"]
        assert sum(v[1] for v in histogram) == measures[("subscribers", None)][1], dataset
        unicity = [measures[("unicity", p)] for p in (1, 2, 3, 4)]
        if dataset == "calls_pseudonymized":
            assert all(v[4] and 0 <= v[0] <= 1 and v[2] == v[1] for v in unicity if v[1])
            eligible = [v[1] for v in unicity]
            assert eligible == sorted(eligible, reverse=True) and eligible[0] > 0
        else:  # aggregates carry no traces
            assert all(not v[4] and v[0] is None for v in unicity), dataset
    # Re-running with the same data measured the same figures (seed from the partition).
    assert (
        scene.strict.analytics["reidentification_risk"]
        == (scene.loose.analytics["reidentification_risk"])
    )


def test_unicity_of_one_point_matches_a_direct_count(scene: Scene) -> None:
    """p = 1 by hand: a subscriber's share of points that nobody else has, averaged."""
    with scene.pipeline.analytics() as con:
        per_subscriber = con.execute(
            """
            WITH points AS (SELECT DISTINCT caller_pseudonym AS s, call_hour, region
                            FROM calls_pseudonymized WHERE call_date = ?),
            sizes AS (SELECT call_hour, region, count(*) AS n FROM points GROUP BY ALL)
            SELECT avg((n = 1)::INTEGER) FROM points JOIN sizes USING (call_hour, region) GROUP BY s
            """,
            [DAY],
        ).fetchall()
    expected = sum(row[0] for row in per_subscriber) / len(per_subscriber)
    value, subscribers, _, margin, _ = risk_rows(scene.strict)["calls_pseudonymized"][
        ("unicity", 1)
    ]
    assert subscribers == len(per_subscriber)
    assert value == pytest.approx(expected, abs=3 * margin + 1e-9)


def test_aggregates_count_suppressed_cells_as_one_group(scene: Scene) -> None:
    """Differencing: subscribers of all suppressed cells together form one group."""
    rows = risk_rows(scene.strict)
    with scene.pipeline.analytics() as con:
        hourly_suppressed = count(
            con,
            "SELECT count(DISTINCT caller_pseudonym) FROM calls_pseudonymized calls "
            "JOIN call_volume_hourly cells USING (call_date, call_hour, region) "
            "WHERE call_date = ? AND cells.suppressed",
            [DAY],
        )
        smallest_published = count(
            con,
            "SELECT min(distinct_subscribers) FROM call_volume_hourly "
            "WHERE call_date = ? AND NOT suppressed",
            [DAY],
        )
    hourly = rows["call_volume_hourly"]
    assert hourly[("suppressed_cells_subscribers", None)][1] == hourly_suppressed > 0
    below_k = 0 < hourly_suppressed < 5
    assert hourly[("share_below_k", 5)][0] > 0 if below_k else hourly[("share_below_k", 5)][0] == 0
    assert smallest_published >= 5


def test_default_limits_withhold_the_row_level_calls(scene: Scene) -> None:
    result = scene.strict.result
    assert result.success, "a withheld dataset is a decision, not a failed run"
    # Withholding is the gate doing its job: its check passes, with the decision, the measures
    # over the limits and the limits in its metadata.
    gate = check_evaluation(result, risk_gate_name("calls_pseudonymized"))
    assert gate.passed is True
    assert gate.metadata["publication"].value == "withheld"
    assert gate.metadata["shared_rows"].value == 0
    assert gate.metadata["max_unicity"].value == DEFAULT_LIMITS["max_unicity"]
    reasons = gate.metadata["reasons"].value
    assert "unicity (p=" in reasons and "> limit 0.0500" in reasons
    assert "| yes |" in gate.metadata["measured_vs_limits"].value  # a measure over its limit
    assert gate.description.startswith("Withheld, as the limits require")
    assert scene.strict.shareable["calls_pseudonymized"] == []
    assert "shareable/calls_pseudonymized" not in materialized(result)
    # Each dataset's decision follows its own measures, the shareable copy follows it, and
    # every gate passed.
    for dataset in DATASETS:
        gate = check_evaluation(result, risk_gate_name(dataset))
        assert gate.passed is True, dataset
        published = gate.metadata["publication"].value == "published"
        shared = scene.strict.shareable[dataset]
        assert shared == (scene.strict.analytics[dataset] if published else []), dataset
        assert gate.metadata["shared_rows"].value == len(shared), dataset
        assert ("shareable/" + dataset in materialized(result)) == published
    # The hourly aggregate's suppressed cells describe enough people in the generated day.
    hourly = check_evaluation(result, risk_gate_name("call_volume_hourly"))
    assert hourly.metadata["publication"].value == "published"
    assert "| yes |" not in hourly.metadata["measured_vs_limits"].value
    assert scene.strict.shareable["call_volume_hourly"]
    decisions = {row[1]: row[2] for row in scene.strict.analytics["shareable_publications"]}
    assert decisions["calls_pseudonymized"] == "withheld"
    assert decisions["call_volume_hourly"] == "published"


def test_loosened_limits_publish_the_row_level_calls(scene: Scene) -> None:
    result = scene.loose.result
    assert result.success and all(check_results(result).values())
    assert materialized(result) >= {f"shareable/{dataset}" for dataset in DATASETS}
    for dataset in DATASETS:
        assert scene.loose.shareable[dataset] == scene.loose.analytics[dataset], dataset
    assert scene.loose.shareable["calls_pseudonymized"]


def test_tightened_limits_withdraw_the_published_partition(scene: Scene) -> None:
    result = scene.tightened.result
    assert result.success
    assert scene.tightened.shareable["calls_pseudonymized"] == []
    published = len(scene.loose.shareable["calls_pseudonymized"])
    gate = check_evaluation(result, risk_gate_name("calls_pseudonymized"))
    assert gate.passed is True  # the gate did its job: nothing over the limits stays shared
    assert gate.metadata["publication"].value == "withdrawn"
    assert gate.metadata["shared_rows"].value == 0
    assert gate.metadata["withdrawn_rows"].value == published
    # The withdrawal is a materialisation of the (now empty) partition, and a logged warning.
    event = scene.pipeline.instance.get_latest_materialization_event(
        shareable_key("calls_pseudonymized")
    )
    assert event.run_id == result.run_id
    assert event.asset_materialization.metadata["publication"].value == "withdrawn"
    assert event.asset_materialization.metadata["dagster/partition_row_count"].value == 0
    warnings = [
        record.user_message
        for record in scene.pipeline.instance.all_logs(result.run_id)
        if record.level == logging.WARNING and "Withdrew" in record.user_message
    ]
    assert warnings and f"Withdrew {published} rows" in warnings[0]
    decisions = {row[1]: row[2:] for row in scene.tightened.analytics["shareable_publications"]}
    outcome, reasons, published_rows, withdrawn_rows = decisions["calls_pseudonymized"]
    assert (outcome, published_rows, withdrawn_rows) == ("withdrawn", 0, published)
    assert "unicity" in reasons


def test_a_withheld_dataset_leaves_the_shareable_zone_as_it_was(scene: Scene) -> None:
    assert scene.again.result.success
    assert scene.again.shareable == scene.tightened.shareable
    decisions = {row[1]: row[2] for row in scene.again.analytics["shareable_publications"]}
    assert decisions["calls_pseudonymized"] == "withheld"
    assert "shareable/calls_pseudonymized" not in materialized(scene.again.result)


def test_the_gate_fails_when_something_over_the_limits_stays_shared(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's check audits what it did: rows over the limits in the shareable partition (put
    there outside the gate) that its withdrawal did not remove (a write that did nothing) fail
    it as an error."""
    from phone_pipeline.resources import build_resources
    from phone_pipeline.stages.shareable import assets as shareable_assets

    pipeline = scene.pipeline
    with duckdb.connect(str(pipeline.settings.shareable_db)) as con:
        con.execute(f"ATTACH '{pipeline.settings.analytics_db}' AS source (READ_ONLY)")
        con.execute(
            "INSERT INTO calls_pseudonymized "
            "SELECT * FROM source.calls_pseudonymized WHERE call_date = ?",
            [DAY],
        )
        smuggled = count(con, "SELECT count(*) FROM calls_pseudonymized WHERE call_date = ?", [DAY])
    assert smuggled > 0

    def write_nothing(con, call_date, statements, values=None):  # noqa: ANN001, ANN202
        return dict.fromkeys(statements, 0)

    monkeypatch.setattr(shareable_assets, "replace_partition", write_nothing)
    result = dg.materialize(
        [shareable_assets.publish_shareable],
        partition_key=DAY.isoformat(),
        instance=pipeline.instance,
        resources=build_resources(replace(pipeline.settings, **DEFAULT_LIMITS)),
        raise_on_error=False,
    )
    assert not result.success
    gate = check_evaluation(result, risk_gate_name("calls_pseudonymized"))
    assert gate.passed is False and gate.severity == dg.AssetCheckSeverity.ERROR
    assert gate.metadata["shared_rows"].value == smuggled
    assert gate.description == (
        f"The shareable partition holds {smuggled} rows where the decision (withdrawn) requires 0"
    )


def test_shareable_zone_is_in_its_own_group(scene: Scene) -> None:
    from phone_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    for dataset in DATASETS:
        node = graph.get(shareable_key(dataset))
        assert node.group_name == "shareable_zone"
        assert "risk" in (node.description or "")


def test_risk_measured_on_other_rows_is_an_error_and_withdraws(pipeline: Pipeline) -> None:
    """The analytics partition changed after its risk was measured (a run of the pseudonymize
    step alone, say): the gate fails as an error, blocks, and the stale copy is withdrawn."""
    from phone_pipeline.resources import build_resources
    from phone_pipeline.stages.shareable.assets import publish_shareable

    pipeline.generate()
    assert pipeline.run().success  # the tests' lenient limits: everything published
    shareable_db = str(pipeline.settings.shareable_db)
    with duckdb.connect(shareable_db, read_only=True) as con:
        published = count(con, "SELECT count(*) FROM calls_pseudonymized")
    assert published > 0
    with duckdb.connect(str(pipeline.settings.analytics_db)) as con:
        con.execute(
            "DELETE FROM calls_pseudonymized WHERE rowid = (SELECT min(rowid) FROM calls_pseudonymized)"
        )
    result = dg.materialize(
        [publish_shareable],
        partition_key=DAY.isoformat(),
        instance=pipeline.instance,
        resources=build_resources(pipeline.settings),
        raise_on_error=False,
    )
    assert not result.success, "an unmeasured risk is an error, not a decision"
    gate = check_evaluation(result, risk_gate_name("calls_pseudonymized"))
    assert gate.passed is False and gate.severity == dg.AssetCheckSeverity.ERROR
    assert f"measured on {published} rows, the partition now has {published - 1}" in (
        gate.metadata["reasons"].value
    )
    assert gate.metadata["withdrawn_rows"].value == published
    with duckdb.connect(shareable_db, read_only=True) as con:
        assert count(con, "SELECT count(*) FROM calls_pseudonymized") == 0
        # The aggregates' risk was measured on the rows they still have: they stay published.
        assert count(con, "SELECT count(*) FROM call_volume_hourly") > 0
