"""Differential privacy through Dagster on real DuckDB files: with DP on, the aggregates publish
noisy, bounded figures over a fixed key set, every publication spends budget in the ledger, and a
publication past the day's budget is refused with nothing written."""

from __future__ import annotations

from dataclasses import dataclass, replace

import dagster as dg
import pytest

from phone_pipeline.domain.privacy import (
    COUNT_MEASURES,
    OTHER,
    ContributionBounds,
    country_domain,
    epsilon_split,
    number_type_domain,
)
from phone_pipeline.resources import build_resources
from phone_pipeline.stages.aggregate.assets import call_volume_hourly
from phone_pipeline_tests.conftest import DAY, Pipeline, check_results, materialized
from phone_pipeline_tests.pipeline_support import (
    ALL_ASSETS,
    ALL_CHECKS,
    count,
    module_pipeline,
    snapshot,
    step_failures,
)

EPSILON = 1.0
BOUNDS = ContributionBounds(
    max_calls_per_cell=2, max_cells_per_subscriber=3, max_duration_seconds=600
)
OUTPUTS = ("call_volume_hourly", "call_volume_by_country")
DP_SETTINGS = {
    "dp_outputs": ",".join(OUTPUTS),
    "dp_epsilon": EPSILON,
    # Room for exactly one publication of both outputs: a re-run of the day must be refused.
    "dp_budget_per_day": 2 * EPSILON,
    "dp_max_calls_per_cell": BOUNDS.max_calls_per_cell,
    "dp_max_cells_per_subscriber": BOUNDS.max_cells_per_subscriber,
    "dp_max_duration_seconds": BOUNDS.max_duration_seconds,
}


@dataclass
class DPRun:
    pipeline: Pipeline
    first: dg.ExecuteInProcessResult
    before_rerun: dict[str, list[tuple]]
    rerun: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("dp"), **DP_SETTINGS) as pipeline:
        pipeline.generate()
        first = pipeline.run()
        with pipeline.analytics() as con:
            before = snapshot(con)
        rerun = pipeline.run()
        yield DPRun(pipeline, first, before, rerun)


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """The analytics aggregates' metadata by table name (not their shareable copies')."""
    return {
        event.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key.path[0] == "analytics"
    }


def test_first_run_publishes_with_every_gate_passing(dp_run: DPRun) -> None:
    result = dp_run.first
    assert result.success, step_failures(result)
    checks = check_results(result)
    assert set(checks) == ALL_CHECKS
    assert all(checks.values()), {name for name, passed in checks.items() if not passed}
    assert materialized(result) == ALL_ASSETS


def test_published_key_set_is_fixed_and_figures_are_bounded(dp_run: DPRun) -> None:
    pipeline = dp_run.pipeline
    with pipeline.restricted() as con:
        regions = {
            row[0] for row in con.execute("SELECT DISTINCT region FROM cell_reference").fetchall()
        }
    assert regions, "the generator writes a cell reference"
    with pipeline.analytics() as con:
        hourly = con.execute("SELECT * FROM call_volume_hourly WHERE call_date = ?", [DAY]).df()
        by_country = con.execute(
            "SELECT * FROM call_volume_by_country WHERE call_date = ?", [DAY]
        ).df()
        exact = {
            (row[0], row[1]): row[2]
            for row in con.execute(
                "SELECT call_hour, region, count(*) FROM calls_pseudonymized "
                "WHERE call_date = ? GROUP BY ALL",
                [DAY],
            ).fetchall()
        }
    # Every hour x every reference region (plus `other`), whatever the calls were.
    assert len(hourly) == 24 * (len(regions) + 1)
    assert set(hourly.region) == regions | {OTHER}
    assert hourly.call_hour.nunique() == 24
    assert len(by_country) == len(country_domain()) * len(number_type_domain())
    min_cell_size = pipeline.settings.min_cell_size
    for frame in (hourly, by_country):
        assert (frame.dp_epsilon == EPSILON).all()
        assert frame.median_duration_seconds.isna().all()
        # Withheld cells (noisy subscribers below the minimum) keep their key, show no figures.
        withheld = frame[frame.suppressed]
        shown = frame[~frame.suppressed]
        for measure in COUNT_MEASURES:
            assert withheld[measure].isna().all(), measure
            assert (shown[measure] >= 0).all() and shown[measure].notna().all(), measure
        assert (shown.distinct_subscribers >= min_cell_size).all()
        assert (shown.answered_calls <= shown.calls).all()
        rates = frame.answered_rate.dropna()
        assert ((rates >= 0) & (rates <= 1)).all()
        no_rate = (frame.calls == 0).to_numpy(dtype=bool, na_value=True)
        assert (frame.answered_rate.isna().to_numpy() == no_rate).all()
    # Noise of the calls measure has scale sensitivity / epsilon share; 30 scales is a bound a
    # correct run exceeds with probability below 1e-10 per cell. Bounding only lowers counts.
    scale = BOUNDS.sensitivities()["calls"] / epsilon_split(EPSILON)["calls"]
    for row in hourly[~hourly.suppressed].itertuples():
        true_calls = exact.get((row.call_hour, row.region), 0)
        assert row.calls <= true_calls + 30 * scale
    assert len(hourly[~hourly.suppressed]) > 0


def test_each_publication_is_in_the_ledger_and_the_metadata(dp_run: DPRun) -> None:
    pipeline, result = dp_run.pipeline, dp_run.first
    with pipeline.analytics() as con:
        ledger = con.execute(
            "SELECT call_date, output, epsilon, delta, budget_per_day, run_id "
            "FROM privacy_budget_ledger ORDER BY output"
        ).fetchall()
    assert ledger == [
        (DAY, output, EPSILON, 0.0, 2 * EPSILON, result.run_id) for output in sorted(OUTPUTS)
    ]
    metadata = _materializations(result)
    spent_after = sorted(metadata[output]["spent_on_this_day_after"].value for output in OUTPUTS)
    assert spent_after == [EPSILON, 2 * EPSILON]
    # By country, a subscriber is in one cell (the keys are the caller's): C = 1, L = L x C.
    expected = {
        "call_volume_hourly": BOUNDS.sensitivities(),
        "call_volume_by_country": BOUNDS.single_cell().sensitivities(),
    }
    for output in OUTPUTS:
        assert metadata[output]["budget_per_day"].value == 2 * EPSILON
        assert metadata[output]["sensitivity_per_measure"].value == expected[output]
        assert metadata[output]["max_cells_per_subscriber"].value == (
            1 if output == "call_volume_by_country" else BOUNDS.max_cells_per_subscriber
        )
        assert metadata[output]["rows_dropped_by_bounding"].value >= 0


def test_a_rerun_past_the_budget_is_refused_and_writes_nothing(dp_run: DPRun) -> None:
    pipeline, rerun = dp_run.pipeline, dp_run.rerun
    assert not rerun.success
    checks = check_results(rerun)
    for output in OUTPUTS:
        assert checks[f"{output}_privacy_budget"] is False
        assert checks[f"{output}_suite"] and checks[f"{output}_totals_reconcile"]
    assert not {f"analytics/{output}" for output in OUTPUTS} & materialized(rerun)
    with pipeline.analytics() as con:
        after = snapshot(con)
        assert count(con, "SELECT count(*) FROM privacy_budget_ledger") == len(OUTPUTS)
    for output in OUTPUTS:
        assert after[output] == dp_run.before_rerun[output]


def test_an_unknown_dp_output_name_fails_instead_of_publishing_exact_figures(
    pipeline: Pipeline,
) -> None:
    settings = replace(pipeline.settings, dp_outputs="call_volume_hourly,call_volume_hourli")
    result = dg.materialize(
        [call_volume_hourly],
        partition_key=DAY.isoformat(),
        instance=pipeline.instance,
        resources=build_resources(settings),
        raise_on_error=False,
    )
    assert not result.success
    assert "unknown outputs ['call_volume_hourli']" in "\n".join(step_failures(result).values())
