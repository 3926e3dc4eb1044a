"""Unit tests for phone_pipeline.domain.privacy: bounding, sensitivity, epsilon split, noise
(bounded, reproducible under a fixed seed, a CSPRNG without one) and the budget ledger."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest

from phone_pipeline.domain.privacy import (
    COUNT_MEASURES,
    OTHER,
    ContributionBounds,
    PrivacySettings,
    bound_violations_sql,
    bounded_calls_sql,
    bounded_cells_sql,
    bounding_values,
    budget_decision,
    cells_on_domain_sql,
    country_domain,
    epsilon_split,
    geometric_noise,
    noisy_figures,
    number_type_domain,
    parse_outputs,
    remap_to_domain_sql,
)
from phone_pipeline.sql import run

BOUNDS = ContributionBounds(
    max_calls_per_cell=2, max_cells_per_subscriber=3, max_duration_seconds=100
)
KEYS = ["call_hour", "region"]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE calls (caller_pseudonym VARCHAR, call_hour INTEGER, region VARCHAR, "
        "duration_seconds INTEGER, disposition VARCHAR)"
    )
    yield connection
    connection.close()


def bounded(con: duckdb.DuckDBPyConnection, bounds: ContributionBounds = BOUNDS) -> pd.DataFrame:
    sql = bounded_cells_sql("SELECT * FROM calls", KEYS)
    values = bounding_values(bounds, salt="2026-11-01")
    return run(con, f"SELECT * FROM ({sql}) ORDER BY ALL", values).df()


def test_sensitivities_follow_from_the_bounds() -> None:
    assert BOUNDS.sensitivities() == {
        "calls": 6,
        "answered_calls": 6,
        "distinct_subscribers": 3,
        "total_duration_seconds": 600,
    }
    single = BOUNDS.single_cell()
    assert (single.max_calls_per_cell, single.max_cells_per_subscriber) == (6, 1)
    assert single.sensitivities() == {**BOUNDS.sensitivities(), "distinct_subscribers": 1}
    with pytest.raises(ValueError):
        replace(BOUNDS, max_calls_per_cell=0)
    with pytest.raises(ValueError):
        replace(BOUNDS, max_duration_seconds=0)


def test_epsilon_split_adds_up_and_settings_are_checked() -> None:
    split = epsilon_split(2.0)
    assert set(split) == set(COUNT_MEASURES)
    assert sum(split.values()) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        epsilon_split(1.0, {"calls": 0.5})
    valid = PrivacySettings(outputs=frozenset(), epsilon=1.0, budget_per_day=4.0, bounds=BOUNDS)
    with pytest.raises(ValueError):
        replace(valid, epsilon=0)
    with pytest.raises(ValueError):
        replace(valid, budget_per_day=float("nan"))
    assert parse_outputs(" call_volume_hourly, ,call_volume_by_country ") == {
        "call_volume_hourly",
        "call_volume_by_country",
    }
    assert parse_outputs("") == frozenset()


def test_one_subscriber_with_1000_calls_contributes_at_most_l_per_cell_and_c_cells(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # 1000 calls over 10 hours x 2 regions (50 per cell, 500 s each), plus one call each of
    # three other subscribers in hour 0, north.
    heavy = [
        ("heavy", hour, region, 500, "answered")
        for index in range(50)
        for hour in range(10)
        for region in ("north", "south")
    ]
    others = [(f"s{i}", 0, "north", 30, "busy") for i in range(3)]
    con.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?)", heavy + others)
    assert (
        con.execute("SELECT count(*) FROM calls WHERE caller_pseudonym = 'heavy'").fetchone()[0]
        == 1000
    )

    cells = bounded(con)
    others_cell = (cells.call_hour == 0) & (cells.region == "north")
    heavy_cells = cells[~others_cell]
    heavy_in_shared = cells[others_cell]
    heavy_cell_count = len(heavy_cells) + int(heavy_in_shared.distinct_subscribers.sum() == 4)
    assert heavy_cell_count == BOUNDS.max_cells_per_subscriber
    assert (heavy_cells.calls == BOUNDS.max_calls_per_cell).all()
    assert (heavy_cells.total_duration_seconds == 2 * BOUNDS.max_duration_seconds).all()
    assert (heavy_cells.answered_calls == heavy_cells.calls).all()
    heavy_total = cells.calls.sum() - 3
    assert heavy_total == BOUNDS.max_calls_per_cell * BOUNDS.max_cells_per_subscriber
    # The three light subscribers are untouched (their duration is below the clamp).
    shared = heavy_in_shared.iloc[0] if len(heavy_in_shared) else None
    assert shared is not None and shared.total_duration_seconds >= 90
    # Deterministic: the same rows give the same kept cells.
    pd.testing.assert_frame_equal(cells, bounded(con))


def test_which_cells_are_kept_does_not_depend_on_insertion_order(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = [("a", hour, "north", 10 * hour, "answered") for hour in range(8) for _ in range(3)]
    con.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?)", rows)
    first = bounded(con)
    con.execute("CREATE OR REPLACE TABLE calls AS SELECT * FROM calls ORDER BY call_hour DESC")
    pd.testing.assert_frame_equal(first, bounded(con))
    assert len(first) == 3 and (first.calls == 2).all()


def test_cells_on_domain_fill_every_key_and_remap_the_rest(con: duckdb.DuckDBPyConnection) -> None:
    con.executemany(
        "INSERT INTO calls VALUES (?, ?, ?, ?, ?)",
        [("a", 1, "north", 10, "answered"), ("b", 1, "atlantis", 20, "busy")],
    )
    con.execute(
        "CREATE TABLE regions AS SELECT * FROM (VALUES ('north'), ('south'), ('other')) t(region)"
    )
    source = (
        "SELECT caller_pseudonym, call_hour, "
        f"{remap_to_domain_sql('region', 'regions', 'region')} AS region, "
        "duration_seconds, disposition FROM calls"
    )
    domain = "SELECT * FROM range(0, 3) h(call_hour) CROSS JOIN regions"
    sql = cells_on_domain_sql(domain, bounded_cells_sql(source, KEYS), KEYS)
    cells = run(con, f"SELECT * FROM ({sql}) ORDER BY ALL", bounding_values(BOUNDS, "x")).df()
    assert len(cells) == 3 * 3
    figures = {(row.call_hour, row.region): row.calls for row in cells.itertuples()}
    assert figures[(1, "north")] == 1 and figures[(1, OTHER)] == 1
    assert sum(figures.values()) == 2


def test_geometric_noise_is_reproducible_with_a_seed_only() -> None:
    values = [0, 5, 100] * 50
    assert geometric_noise(values, 1.0, 1, random_state=42) == geometric_noise(
        values, 1.0, 1, random_state=42
    )
    assert geometric_noise(values, 1.0, 1, random_state=42) != geometric_noise(
        values, 1.0, 1, random_state=43
    )
    # Unseeded, diffprivlib draws from the operating system's CSPRNG.
    from diffprivlib.utils import check_random_state

    assert isinstance(check_random_state(None, True), secrets.SystemRandom)
    assert geometric_noise(values, 1.0, 1) != geometric_noise(values, 1.0, 1)


def test_noise_scale_follows_sensitivity_over_epsilon() -> None:
    # Two-sided geometric with alpha = exp(-eps/sens): variance 2 alpha / (1 - alpha)^2.
    for epsilon, sensitivity in ((1.0, 1), (0.5, 6)):
        noise = np.asarray(geometric_noise([0] * 20_000, epsilon, sensitivity, random_state=7))
        alpha = np.exp(-epsilon / sensitivity)
        expected_sd = np.sqrt(2 * alpha) / (1 - alpha)
        assert abs(noise.mean()) < 0.1 * expected_sd + 0.05
        assert noise.std() == pytest.approx(expected_sd, rel=0.1)


def _cells(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    calls = rng.integers(0, 50, n)
    return pd.DataFrame(
        {
            "call_hour": np.arange(n),
            "region": "north",
            "calls": calls,
            "answered_calls": calls // 2,
            "distinct_subscribers": np.minimum(calls, 20),
            "total_duration_seconds": calls * 60,
        }
    )


def test_noisy_figures_are_bounded_and_reproducible_under_a_seed() -> None:
    cells = _cells()
    first = noisy_figures(cells, 2.0, BOUNDS, random_state=11)
    again = noisy_figures(cells, 2.0, BOUNDS, random_state=11)
    pd.testing.assert_frame_equal(first, again)
    other = noisy_figures(cells, 2.0, BOUNDS, random_state=12)
    assert not first["calls"].equals(other["calls"])
    for measure in COUNT_MEASURES:
        assert (first[measure] >= 0).all(), measure
    assert (first.answered_calls <= first.calls).all()
    rates = first.answered_rate.dropna()
    assert ((rates >= 0) & (rates <= 1)).all()
    no_calls = (first.calls == 0).to_numpy(dtype=bool, na_value=True)
    assert (first.answered_rate.isna().to_numpy() == no_calls).all()
    assert first.median_duration_seconds.isna().all()
    assert not first.suppressed.any() and (first.dp_epsilon == 2.0).all()
    # Within 30 noise scales of the truth (a failure has probability below 1e-10 per cell).
    scales = {m: BOUNDS.sensitivities()[m] / e for m, e in epsilon_split(2.0).items()}
    for measure in COUNT_MEASURES:
        assert ((first[measure] - cells[measure]).abs() <= 30 * scales[measure]).all(), measure
    # The measures draw different noise from one seeded generator.
    assert not (first.calls - cells.calls).equals(first.answered_calls - cells.answered_calls)


def test_ledger_refuses_at_the_budget_boundary() -> None:
    assert budget_decision(0.0, 1.0, 2.0).allowed
    exact = budget_decision(1.0, 1.0, 2.0)
    assert exact.allowed and exact.remaining_after == 0.0
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in floats: still exactly the budget.
    assert budget_decision(0.1 + 0.2, 0.3, 0.6).allowed
    over = budget_decision(1.5, 1.0, 2.0)
    assert not over.allowed and over.spent_after == 2.5
    assert not budget_decision(2.0, 1e-6, 2.0).allowed
    with pytest.raises(ValueError):
        budget_decision(0.0, 0.0, 1.0)


def test_key_domains_hold_the_values_the_pipeline_writes() -> None:
    countries = country_domain()
    assert {"US", "GB", "SE", "AU", "001", "unknown", OTHER} <= set(countries)
    assert len(countries) == len(set(countries))
    types = number_type_domain()
    assert {"mobile", "fixed_line", "fixed_line_or_mobile", "unknown", OTHER} <= set(types)
    assert len(types) == len(set(types))


def test_bound_violations_are_zero_after_bounding_and_counted_before(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rows = [("heavy", hour, "north", 5000, "answered") for hour in range(5) for _ in range(4)]
    con.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?)", rows)
    values = bounding_values(BOUNDS, salt="2026-11-01")
    run(con, "CREATE TABLE kept AS " + bounded_calls_sql("SELECT * FROM calls", KEYS), values)
    assert run(con, bound_violations_sql("kept", KEYS), values).fetchone() == (0, 0, 0)
    # The unbounded calls: 5 subscriber-cells above 2 calls, 1 subscriber in more than 3 cells,
    # 20 durations above the clamp.
    assert run(con, bound_violations_sql("calls", KEYS), values).fetchone() == (5, 1, 20)


def test_suppression_applies_to_the_noisy_subscriber_count_only() -> None:
    cells = _cells()
    unsuppressed = noisy_figures(cells, 1.0, BOUNDS, random_state=5)
    suppressed = noisy_figures(cells, 1.0, BOUNDS, random_state=5, min_noisy_subscribers=10)
    withheld = (unsuppressed.distinct_subscribers < 10).to_numpy(dtype=bool)
    assert 0 < withheld.sum() < len(cells)
    assert (suppressed.suppressed.to_numpy() == withheld).all()
    for measure in (*COUNT_MEASURES, "answered_rate"):
        assert suppressed.loc[withheld, measure].isna().all(), measure
        pd.testing.assert_series_equal(
            suppressed.loc[~withheld, measure], unsuppressed.loc[~withheld, measure]
        )
    assert (suppressed.loc[~withheld, "distinct_subscribers"] >= 10).all()
