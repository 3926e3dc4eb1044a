"""Re-identification risk of a dataset, measured before it may leave for the shareable zone.

Two measures, both counted in *subscribers* (distinct pseudonyms), never in calls: one subscriber
makes many calls, and it is people who are re-identified, not rows.

k-anonymity
    A dataset's quasi-identifiers are the published columns an outsider can know about a person
    (when and where they called, their number's country and type); the other columns are what
    re-identification would reveal. Records with the same quasi-identifier values form a group,
    whose size is the number of distinct subscribers in it. A subscriber with several records sits
    in several groups and is counted once, by their *smallest* group: the one that exposes them
    most. The histogram counts subscribers per smallest-group size, and `share_below_k` is the
    share of subscribers whose smallest group has fewer than k subscribers.

unicity (de Montjoye et al., "Unique in the Crowd", Scientific Reports 3:1376, 2013)
    A subscriber's trace is the set of distinct (time, place) points of their records at the
    resolution published. Given p points drawn at random from a trace, the subscriber is unique if
    no other subscriber's trace contains all p points. Unicity for p is the share of subscribers,
    among those with at least p points, that p random points single out. It is estimated on a
    sample of subscribers: an index maps each point to its (sorted) subscribers, and the p drawn
    points' subscriber sets are intersected, smallest first. For a sampled subscriber whose trace
    has few p-subsets (at most `EXACT_SUBSETS`), every subset is tried and the subscriber counts
    by the fraction that singles them out; otherwise one random subset is drawn (an unbiased
    estimate). When the sample covers every subscriber and every trace is enumerated, the figure
    is exact (margin 0). The random draws come from a seed derived from the partition and the
    dataset, so a re-run gives the same figures.

differencing (aggregates with suppressed cells)
    The additive figures of a table's suppressed cells, taken together, are the day's total minus
    its published cells, and the day's total can be read off another table of the same calls.
    So the suppressed cells together must describe at least k subscribers (or none), or their sum
    describes fewer than k people: the relation of an aggregate (domain/publication.py) puts the
    subscribers of all suppressed cells in one more group, so k-anonymity covers it, and
    `suppressed_cells_subscribers` reports its size.

The gate compares the measures with configured limits (`RiskLimits`) and says, measure by measure,
why a dataset may not be published. Nothing here imports Dagster.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from phone_pipeline.sql import SqlValues, run

# Trace sizes up to this many p-subsets are enumerated rather than sampled.
EXACT_SUBSETS = 10
MAX_POINTS = 4

# Measure names, as stored in analytics.reidentification_risk.
SUBSCRIBERS = "subscribers"
GROUP_SIZE = "group_size"
SHARE_BELOW_K = "share_below_k"
UNICITY = "unicity"
SUPPRESSED_SUBSCRIBERS = "suppressed_cells_subscribers"


# --- k-anonymity ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class KAnonymity:
    """Smallest-group sizes of a dataset's subscribers, and the share below k."""

    k: int
    histogram: dict[int, int]  # smallest group size (in subscribers) -> subscribers

    @property
    def subscribers(self) -> int:
        return sum(self.histogram.values())

    @property
    def subscribers_below_k(self) -> int:
        return sum(count for size, count in self.histogram.items() if size < self.k)

    @property
    def share_below_k(self) -> float:
        return self.subscribers_below_k / self.subscribers if self.subscribers else 0.0

    def binned(self) -> list[tuple[int, int | None, int]]:
        """(lowest size, highest size or None for open, subscribers) per bin: each size below k
        on its own, then k to 9, tens, hundreds, thousands and more (empty bins left out)."""
        bins: list[tuple[int, int | None, int]] = []
        edges = sorted({*range(1, self.k + 1), *(e for e in (10, 100, 1000) if e > self.k)})
        for index, low in enumerate(edges):
            high = edges[index + 1] - 1 if index + 1 < len(edges) else None
            if low < self.k:
                high = low
            count = sum(
                n
                for size, n in self.histogram.items()
                if size >= low and (high is None or size <= high)
            )
            if count:
                bins.append((low, high, count))
        return bins


def smallest_group_sql(relation: str, subscriber: str, quasi_identifiers: Sequence[str]) -> str:
    """One row per subscriber of `relation`: their smallest group over the quasi-identifiers.

    NULL quasi-identifier values form a group of their own (an outsider sees "unknown" too).
    """
    if not quasi_identifiers:
        raise ValueError("a k-anonymity measure needs at least one quasi-identifier")
    keys = ", ".join(quasi_identifiers)
    joined = " AND ".join(
        f"records.{key} IS NOT DISTINCT FROM groups.{key}" for key in quasi_identifiers
    )
    return f"""
        WITH records AS (SELECT DISTINCT {subscriber} AS subscriber, {keys} FROM {relation}),
        groups AS (SELECT {keys}, count(DISTINCT subscriber) AS group_size FROM records GROUP BY ALL)
        SELECT records.subscriber, min(groups.group_size) AS smallest_group
        FROM records JOIN groups ON {joined}
        GROUP BY records.subscriber
    """


def measure_k_anonymity(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    subscriber: str,
    quasi_identifiers: Sequence[str],
    k: int,
    values: SqlValues | None = None,
) -> KAnonymity:
    """The smallest-group histogram of `relation` (a table name or a parenthesised SELECT, with
    `values` bound to the parameters it names)."""
    if int(k) < 1:
        raise ValueError("k must be at least 1")
    rows = run(
        con,
        f"SELECT smallest_group, count(*) FROM ({smallest_group_sql(relation, subscriber, quasi_identifiers)}) "
        "GROUP BY ALL",
        values,
    ).fetchall()
    return KAnonymity(k=int(k), histogram={int(size): int(count) for size, count in rows})


# --- unicity --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceIndex:
    """Subscribers and points as dense integers, both ways round, each list sorted.

    `point_subscribers[point_offsets[i]:point_offsets[i + 1]]` are point i's subscribers and
    `subscriber_points[subscriber_offsets[s]:subscriber_offsets[s + 1]]` are subscriber s's points.
    Four int arrays of one entry per distinct (subscriber, point): compact enough for millions.
    """

    point_offsets: np.ndarray
    point_subscribers: np.ndarray
    subscriber_offsets: np.ndarray
    subscriber_points: np.ndarray

    @property
    def subscribers(self) -> int:
        return len(self.subscriber_offsets) - 1

    def trace(self, subscriber: int) -> np.ndarray:
        return self.subscriber_points[
            self.subscriber_offsets[subscriber] : self.subscriber_offsets[subscriber + 1]
        ]

    def subscribers_at(self, point: int) -> np.ndarray:
        return self.point_subscribers[self.point_offsets[point] : self.point_offsets[point + 1]]


def _offsets(keys: np.ndarray, size: int) -> np.ndarray:
    offsets = np.zeros(size + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=size), out=offsets[1:])
    return offsets


def trace_index_from_pairs(subscribers: np.ndarray, points: np.ndarray) -> TraceIndex:
    """The index of (subscriber, point) pairs given as dense integers 0..n-1 (duplicates allowed)."""
    subscribers = np.asarray(subscribers, dtype=np.int64)
    points = np.asarray(points, dtype=np.int64)
    n_subscribers = int(subscribers.max()) + 1 if len(subscribers) else 0
    n_points = int(points.max()) + 1 if len(points) else 0
    # One int64 key per pair: a 1-D unique sorts by point, then subscriber, and drops duplicates.
    keys = np.unique(points * max(n_subscribers, 1) + subscribers)
    by_point_points, by_point_subscribers = np.divmod(keys, max(n_subscribers, 1))
    order = np.lexsort((by_point_points, by_point_subscribers))  # by subscriber, then point
    return TraceIndex(
        point_offsets=_offsets(by_point_points, n_points),
        point_subscribers=by_point_subscribers,
        subscriber_offsets=_offsets(by_point_subscribers, n_subscribers),
        subscriber_points=by_point_points[order],
    )


def load_trace_index(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    subscriber: str,
    time: str,
    place: str,
    values: SqlValues | None = None,
) -> TraceIndex:
    """Build the index in DuckDB (distinct points, dense numbering) and fetch only integers;
    `values` are bound to the parameters `relation` names.

    Subscribers are numbered in the order of their identifier, so the numbering (and with it the
    sample drawn from a seed) is the same on every run over the same rows.
    """
    arrays = run(
        con,
        f"""
        WITH points AS (
            SELECT DISTINCT {subscriber} AS subscriber, {time} AS point_time, {place} AS point_place
            FROM {relation} WHERE {subscriber} IS NOT NULL
        )
        SELECT (dense_rank() OVER (ORDER BY subscriber) - 1)::BIGINT AS subscriber_id,
               (dense_rank() OVER (ORDER BY point_time, point_place) - 1)::BIGINT AS point_id
        FROM points
        """,
        values,
    ).fetchnumpy()
    return trace_index_from_pairs(
        np.asarray(arrays["subscriber_id"], dtype=np.int64),
        np.asarray(arrays["point_id"], dtype=np.int64),
    )


def _singles_out(index: TraceIndex, points: Iterable[int]) -> bool:
    """True if exactly one subscriber has every one of `points` (the one they were drawn from).

    The subscribers of the rarest point are tried in growing chunks, and the search stops at the
    second one found with every point: most draws are shared, and a popular point has thousands
    of subscribers, so intersecting whole sets cost most of the risk measure.
    """
    smallest, *others = sorted((index.subscribers_at(point) for point in points), key=len)
    found, start, chunk = 0, 0, 16
    while start < len(smallest) and found <= 1:
        candidates = smallest[start : start + chunk]
        for other in others:
            positions = np.minimum(np.searchsorted(other, candidates), len(other) - 1)
            candidates = candidates[other[positions] == candidates]
            if len(candidates) == 0:
                break
        found += len(candidates)
        start, chunk = start + chunk, chunk * 4
    return found == 1


@dataclass(frozen=True)
class UnicityEstimate:
    p: int
    eligible: int  # subscribers with at least p points
    sampled: int
    unique_share: float | None  # None when no subscriber has p points
    exact: bool

    @property
    def margin_95(self) -> float | None:
        """Half-width of a normal 95% interval for the sampling error (0 when exact)."""
        if self.unique_share is None:
            return None
        if self.exact:
            return 0.0
        share = self.unique_share
        return 1.96 * math.sqrt(share * (1 - share) / self.sampled)


def estimate_unicity(
    index: TraceIndex, p: int, sample_size: int, rng: np.random.Generator
) -> UnicityEstimate:
    """Estimated share of subscribers with >= p points that p random points of theirs single out."""
    if p < 1 or sample_size < 1:
        raise ValueError("p and the sample size must be at least 1")
    lengths = np.diff(index.subscriber_offsets)
    eligible = np.flatnonzero(lengths >= p)
    if len(eligible) == 0:
        return UnicityEstimate(p=p, eligible=0, sampled=0, unique_share=None, exact=True)
    covered = len(eligible) <= sample_size
    sample = eligible if covered else np.sort(rng.choice(eligible, size=sample_size, replace=False))
    enumerated = True
    total = 0.0
    for subscriber in sample:
        trace = index.trace(int(subscriber))
        if math.comb(len(trace), p) <= EXACT_SUBSETS:
            subsets = list(itertools.combinations(trace.tolist(), p))
            total += sum(_singles_out(index, subset) for subset in subsets) / len(subsets)
        else:
            enumerated = False
            total += _singles_out(index, rng.choice(trace, size=p, replace=False).tolist())
    return UnicityEstimate(
        p=p,
        eligible=len(eligible),
        sampled=len(sample),
        unique_share=total / len(sample),
        exact=covered and enumerated,
    )


def partition_seed(call_date: object, dataset: str) -> int:
    """A seed that depends only on the partition and the dataset: re-runs draw the same sample."""
    digest = hashlib.sha256(f"{call_date}|{dataset}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def measure_unicity(
    index: TraceIndex, sample_size: int, seed: int, max_points: int = MAX_POINTS
) -> list[UnicityEstimate]:
    """Unicity for p = 1..max_points, drawn from one generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    return [estimate_unicity(index, p, sample_size, rng) for p in range(1, max_points + 1)]


# --- measures as rows, and the gate ---------------------------------------------------------------


@dataclass(frozen=True)
class RiskMeasure:
    """One row of analytics.reidentification_risk (without the partition and the run time)."""

    dataset: str
    measure: str
    parameter: int | None  # k for share_below_k, p for unicity, lowest size for group_size
    parameter_upper: int | None  # highest size of a group_size bin (None: open)
    value: float | None
    subscribers: int | None
    sampled: int | None = None
    margin_95: float | None = None
    applicable: bool = True


def risk_measures(
    dataset: str,
    k_anonymity: KAnonymity,
    unicity: Sequence[UnicityEstimate] | None,
    suppressed_subscribers: int | None = None,
) -> list[RiskMeasure]:
    """The rows for one dataset; `unicity=None` means the dataset carries no traces, and
    `suppressed_subscribers=None` that it suppresses no cells."""
    total = k_anonymity.subscribers
    rows = [
        RiskMeasure(dataset, SUBSCRIBERS, None, None, float(total), total),
        *(
            RiskMeasure(dataset, GROUP_SIZE, low, high, count / total, count)
            for low, high, count in k_anonymity.binned()
        ),
        RiskMeasure(
            dataset, SHARE_BELOW_K, k_anonymity.k, None, k_anonymity.share_below_k,
            k_anonymity.subscribers_below_k,
        ),
    ]  # fmt: skip
    if suppressed_subscribers is not None:
        rows.append(
            RiskMeasure(
                dataset, SUPPRESSED_SUBSCRIBERS, None, None, float(suppressed_subscribers),
                suppressed_subscribers,
            )
        )  # fmt: skip
    if unicity is None:
        rows += [
            RiskMeasure(dataset, UNICITY, p, None, None, None, applicable=False)
            for p in range(1, MAX_POINTS + 1)
        ]
    else:
        rows += [
            RiskMeasure(
                dataset, UNICITY, estimate.p, None, estimate.unique_share, estimate.eligible,
                estimate.sampled, estimate.margin_95,
            )
            for estimate in unicity
        ]  # fmt: skip
    return rows


def risk_measure_inputs(measured: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """What each column of `risk_measures`' rows is computed from (column lineage), among the
    columns of a dataset's risk relation: `subscriber` and `measured` (its quasi-identifiers
    and trace points). Dataset, measure, parameters and applicability are set by the code."""
    return {
        "dataset": (),
        "measure": (),
        "parameter": (),
        "parameter_upper": (),
        "value": ("subscriber", *measured),
        "subscribers": ("subscriber", *measured),
        "sampled": ("subscriber", *measured),
        "margin_95": ("subscriber", *measured),
        "applicable": (),
    }


@dataclass(frozen=True)
class RiskLimits:
    """The shareable zone's gate; no defaults: the deployment's come from its settings."""

    k: int
    max_share_below_k: float
    max_unicity: float


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]  # why not, one per failed measure; empty when passed


def gate_decision(measures: Sequence[RiskMeasure], limits: RiskLimits) -> GateDecision:
    """May the dataset measured by `measures` be published? Fails safe: a measure that is
    missing (not measured, or measured at another k) is a reason not to publish."""
    reasons = []
    below_k = [m for m in measures if m.measure == SHARE_BELOW_K and m.parameter == limits.k]
    if not below_k:
        reasons.append(f"share_below_k was not measured at k={limits.k}")
    for measure in below_k:
        if measure.value is None or measure.value > limits.max_share_below_k:
            reasons.append(
                f"share_below_k (k={limits.k}) = {_share(measure.value)} "
                f"({measure.subscribers} subscribers) > limit {_share(limits.max_share_below_k)}"
            )
    unicity = [m for m in measures if m.measure == UNICITY]
    if not unicity:
        reasons.append("unicity was not measured")
    for measure in unicity:
        if measure.applicable and measure.value is not None and measure.value > limits.max_unicity:
            reasons.append(
                f"unicity (p={measure.parameter}) = {_share(measure.value)} "
                f"(of {measure.subscribers} subscribers, {measure.sampled} sampled) "
                f"> limit {_share(limits.max_unicity)}"
            )
    return GateDecision(passed=not reasons, reasons=tuple(reasons))


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def measures_markdown(measures: Sequence[RiskMeasure]) -> str:
    """One dataset's measures as Markdown: counts of subscribers and shares, never identifiers."""
    lines = ["| measure | k / p / size | value | subscribers | sampled | ±95% |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for m in measures:
        if m.measure == GROUP_SIZE:
            parameter = f"{m.parameter}" if m.parameter_upper == m.parameter else (
                f"{m.parameter}-{m.parameter_upper}" if m.parameter_upper else f">= {m.parameter}")  # fmt: skip
        else:
            parameter = "" if m.parameter is None else str(m.parameter)
        value = "not applicable" if not m.applicable else (
            f"{int(m.value)}" if m.measure == SUBSCRIBERS else _share(m.value))  # fmt: skip
        lines.append(
            f"| {m.measure} | {parameter} | {value} | {'' if m.subscribers is None else m.subscribers} "
            f"| {'' if m.sampled is None else m.sampled} "
            f"| {'' if m.margin_95 is None else f'{m.margin_95:.4f}'} |"
        )
    return "\n".join(lines)
