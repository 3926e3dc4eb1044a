"""Unit tests for phone_pipeline.domain.risk on a dataset small enough to compute by hand.

Six subscribers, traces of (hour, place) points; A makes two calls at its first point:

    A: 1x 1x 2y       point 1x: A B C F     point 2y: A     point 2z: B
    B: 1x 2z          point 3y: C D E F     point 4y: D     point 5y: D
    C: 1x 3y
    D: 3y 4y 5y
    E: 3y
    F: 1x 3y          (C and F have the same trace: never unique)

Unicity by hand (share of a subscriber's p-subsets that single them out, averaged over the
subscribers with at least p points):
    p=1: A 1/2 (2y), B 1/2 (2z), C 0, D 2/3 (4y, 5y), E 0, F 0  -> (5/3) / 6 = 5/18
    p=2: A 1, B 1, C 0, D 1 (every pair holds 4y or 5y), F 0    -> 3 / 5
    p=3: D 1                                                    -> 1
    p=4: nobody has 4 points                                    -> not defined
k-anonymity over (hour, place): groups 1x and 3y have 4 subscribers, the others 1. Smallest
groups: A 1, B 1, D 1; C, E, F 4.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import duckdb
import numpy as np
import pytest

from phone_pipeline.domain.risk import (
    GROUP_SIZE,
    SHARE_BELOW_K,
    UNICITY,
    KAnonymity,
    RiskLimits,
    estimate_unicity,
    gate_decision,
    load_trace_index,
    measure_k_anonymity,
    measure_unicity,
    measures_markdown,
    partition_seed,
    risk_measures,
)

TRACES = {
    "A": ["1x", "1x", "2y"],
    "B": ["1x", "2z"],
    "C": ["1x", "3y"],
    "D": ["3y", "4y", "5y"],
    "E": ["3y"],
    "F": ["1x", "3y"],
}
EXPECTED_UNICITY = {1: Fraction(5, 18), 2: Fraction(3, 5), 3: Fraction(1)}


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE calls (subscriber VARCHAR, call_hour INTEGER, region VARCHAR)")
    connection.executemany(
        "INSERT INTO calls VALUES (?, ?, ?)",
        [(name, int(point[0]), point[1]) for name, trace in TRACES.items() for point in trace],
    )
    yield connection
    connection.close()


def test_k_anonymity_counts_each_subscriber_once_by_smallest_group(con) -> None:
    measured = measure_k_anonymity(con, "calls", "subscriber", ["call_hour", "region"], k=2)
    assert measured.histogram == {1: 3, 4: 3}  # 6 subscribers, not 13 calls
    assert measured.subscribers == 6
    assert measured.subscribers_below_k == 3
    assert measured.share_below_k == pytest.approx(0.5)


def test_k_anonymity_on_a_coarser_quasi_identifier(con) -> None:
    # By place only: x = {A, B, C, F}, y = {A, C, D, E, F}, z = {B}.
    measured = measure_k_anonymity(con, "calls", "subscriber", ["region"], k=5)
    # Smallest groups: A 4 (x), B 1 (z), C 4, D 5 (y), E 5, F 4.
    assert measured.histogram == {1: 1, 4: 3, 5: 2}
    assert measured.share_below_k == pytest.approx(4 / 6)


def test_k_anonymity_histogram_bins() -> None:
    measured = KAnonymity(k=3, histogram={1: 2, 2: 1, 3: 4, 9: 1, 10: 5, 250: 1, 5000: 2})
    assert measured.binned() == [
        (1, 1, 2),
        (2, 2, 1),
        (3, 9, 5),
        (10, 99, 5),
        (100, 999, 1),
        (1000, None, 2),
    ]
    assert sum(count for _, _, count in measured.binned()) == measured.subscribers


def test_trace_index_holds_each_point_once(con) -> None:
    index = load_trace_index(con, "calls", "subscriber", "call_hour", "region")
    assert index.subscribers == 6
    # Subscribers are numbered in name order: A=0 ... F=5; points by (hour, place).
    assert [index.trace(s).tolist() for s in range(6)] == [
        [0, 1], [0, 2], [0, 3], [3, 4, 5], [3], [0, 3]
    ]  # fmt: skip
    assert index.subscribers_at(0).tolist() == [0, 1, 2, 5]
    assert index.subscribers_at(3).tolist() == [2, 3, 4, 5]


def test_unicity_is_exact_when_the_sample_covers_everyone(con) -> None:
    index = load_trace_index(con, "calls", "subscriber", "call_hour", "region")
    for seed in (1, 2, 3):
        estimates = measure_unicity(index, sample_size=100, seed=seed)
        assert [e.p for e in estimates] == [1, 2, 3, 4]
        for estimate in estimates[:3]:
            assert estimate.exact and estimate.margin_95 == 0
            assert (
                Fraction(estimate.unique_share).limit_denominator(100)
                == EXPECTED_UNICITY[estimate.p]
            )
        assert [e.eligible for e in estimates] == [6, 5, 1, 0]
        assert estimates[3].unique_share is None and estimates[3].sampled == 0


def test_unicity_sample_is_reproducible_and_bounded(con) -> None:
    index = load_trace_index(con, "calls", "subscriber", "call_hour", "region")
    first = measure_unicity(index, sample_size=2, seed=partition_seed("2026-11-01", "calls"))
    again = measure_unicity(index, sample_size=2, seed=partition_seed("2026-11-01", "calls"))
    assert first == again
    assert first[0].sampled == 2 and first[0].eligible == 6 and not first[0].exact
    assert 0 <= first[0].unique_share <= 1 and first[0].margin_95 >= 0
    assert partition_seed("2026-11-01", "calls") != partition_seed("2026-11-02", "calls")


def test_unicity_samples_one_subset_of_long_traces() -> None:
    # Two subscribers with 8 shared points each (C(8, 2) = 28 subsets: drawn, not enumerated):
    # no draw can single either out.
    from phone_pipeline.domain.risk import trace_index_from_pairs

    subscribers = np.repeat([0, 1], 8)
    points = np.tile(np.arange(8), 2)
    index = trace_index_from_pairs(subscribers, points)
    estimate = estimate_unicity(index, 2, 10, np.random.default_rng(0))
    assert estimate.unique_share == 0 and not estimate.exact and estimate.sampled == 2


def test_measures_and_gate(con) -> None:
    k_anonymity = measure_k_anonymity(con, "calls", "subscriber", ["call_hour", "region"], k=2)
    index = load_trace_index(con, "calls", "subscriber", "call_hour", "region")
    measures = risk_measures("calls", k_anonymity, measure_unicity(index, 100, seed=0))
    assert [m.parameter for m in measures if m.measure == GROUP_SIZE] == [1, 2]
    assert [m.subscribers for m in measures if m.measure == GROUP_SIZE] == [3, 3]
    assert [m.value for m in measures if m.measure == SHARE_BELOW_K] == [0.5]

    strict = gate_decision(measures, RiskLimits(k=2, max_share_below_k=0.0, max_unicity=0.05))
    assert not strict.passed
    assert len(strict.reasons) == 4  # below k, then unicity p=1, 2, 3
    assert strict.reasons[0].startswith("share_below_k (k=2) = 0.5000 (3 subscribers) > limit")
    assert strict.reasons[2].startswith("unicity (p=2) = 0.6000 (of 5 subscribers, 5 sampled)")

    assert gate_decision(measures, RiskLimits(k=2, max_share_below_k=0.5, max_unicity=1)).passed
    # Limits at another k than measured: fail safe.
    other_k = gate_decision(measures, RiskLimits(k=5, max_share_below_k=1, max_unicity=1))
    assert other_k.reasons == ("share_below_k was not measured at k=5",)
    assert not gate_decision([], RiskLimits(k=2, max_share_below_k=1, max_unicity=1)).passed

    table = measures_markdown(measures)
    assert "| unicity | 2 | 0.6000 | 5 | 5 | 0.0000 |" in table
    assert "A" not in table.replace("| measure", "")  # subscribers only as counts


def test_datasets_without_traces_report_unicity_not_applicable() -> None:
    measures = risk_measures("cells", KAnonymity(k=5, histogram={5: 4, 12: 8}), None)
    unicity = [m for m in measures if m.measure == UNICITY]
    assert [m.parameter for m in unicity] == [1, 2, 3, 4]
    assert all(not m.applicable and m.value is None for m in unicity)
    decision = gate_decision(measures, RiskLimits(k=5, max_share_below_k=0.0, max_unicity=0.0))
    assert decision.passed and decision.reasons == ()
    assert "not applicable" in measures_markdown(measures)


def test_exact_unicity_matches_brute_force_on_popular_points() -> None:
    # 2,000 subscribers, 2 to 5 points each out of 40, drawn with a strong skew: popular points
    # have hundreds of subscribers, so the search goes through several chunks of them.
    from itertools import combinations

    from phone_pipeline.domain.risk import trace_index_from_pairs

    rng = np.random.default_rng(7)
    weights = 1 / np.arange(1, 41) ** 1.3
    traces = [
        sorted(set(rng.choice(40, size=int(rng.integers(2, 6)), p=weights / weights.sum())))
        for _ in range(2_000)
    ]
    subscribers = np.concatenate([[s] * len(t) for s, t in enumerate(traces)])
    points = np.concatenate(traces)
    index = trace_index_from_pairs(subscribers, points)
    assert np.diff(index.point_offsets).max() > 500
    holders = [set(index.subscribers_at(point).tolist()) for point in range(40)]

    for p in (1, 2, 3):
        shares = []
        for trace in traces:
            if len(trace) >= p:
                subsets = list(combinations(trace, p))
                unique = sum(len(set.intersection(*(holders[x] for x in s))) == 1 for s in subsets)
                shares.append(Fraction(unique, len(subsets)))
        estimate = estimate_unicity(index, p, 10_000, np.random.default_rng(0))
        assert estimate.exact
        assert estimate.unique_share == pytest.approx(float(sum(shares) / len(shares)), abs=1e-12)
        if p > 1:  # no point has a single subscriber; pairs and triples single some out
            assert 0 < estimate.unique_share < 1
