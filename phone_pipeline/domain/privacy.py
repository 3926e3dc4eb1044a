"""Differential privacy for published aggregates: contribution bounding, sensitivity, the split of
epsilon over the published measures, the noise (from a library) and the privacy-budget ledger.

The unit of privacy is a subscriber-day: the caller pseudonym's calls of one day partition. Two
neighbouring datasets differ by all the calls of one subscriber on that day. Each subscriber is
bounded, in SQL, to at most C cells (`max_cells_per_subscriber`) and at most L calls per cell
(`max_calls_per_cell`), with durations clamped to D seconds, so that removing one subscriber
changes the published vector of cells by at most (L1 sensitivity):

    calls, answered_calls    L * C
    distinct_subscribers     C
    total_duration_seconds   L * C * D

Each measure gets a share of the output's epsilon (sequential composition; the shares add up to
1). Noise is the two-sided geometric mechanism (discrete Laplace) of IBM's diffprivlib: integer
counts get integer noise, which avoids the floating-point attacks on a textbook Laplace sampler.
Rates are derived from the noisy counts (post-processing, no extra budget) and the median is not
published. Small-cell suppression is applied to the noisy distinct-subscriber count, never to the
exact one (which would leak through which cells are withheld): post-processing, it costs no
budget, and it keeps the positive noise of the many empty cells out of sums. The key set is data independent (every hour of the day x every region of the cell
reference, every phonenumbers region x number type), so which cells exist reveals nothing;
values outside it go to an `other` cell.

Why diffprivlib and not OpenDP: OpenDP (0.16, installable here) is the stronger library, but it
deliberately offers no way to seed its sampler, and the issue asks for outputs reproducible under
a fixed seed in tests. diffprivlib's mechanisms take a `random_state`: with None (the only value
the pipeline passes) they draw from `secrets.SystemRandom`, a CSPRNG; tests pass an int. There is
no setting that seeds production: the seed exists only as this module's function argument.

What the guarantee does not cover: a person over many days (budgets add up per day, not over a
lifetime), the callee side of a call (bounded per caller only), and the published key set's
reference data itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

OTHER = "other"
COUNT_MEASURES = ("calls", "answered_calls", "distinct_subscribers", "total_duration_seconds")
# Share of an output's epsilon per measure: the counts people read most get the most.
EPSILON_SHARES: dict[str, float] = {
    "calls": 0.3,
    "answered_calls": 0.2,
    "distinct_subscribers": 0.3,
    "total_duration_seconds": 0.2,
}
# Two floats that differ by less than this are the same spend (0.1 + 0.2 is not 0.3 in floats).
BUDGET_TOLERANCE = 1e-9


@dataclass(frozen=True)
class ContributionBounds:
    """How much one subscriber may contribute to one day of an aggregate (no defaults: the
    deployment's come from its settings)."""

    max_calls_per_cell: int
    max_cells_per_subscriber: int
    max_duration_seconds: int

    def __post_init__(self) -> None:
        if min(self.max_calls_per_cell, self.max_cells_per_subscriber) < 1:
            raise ValueError("contribution bounds must be at least 1 call and 1 cell")
        if self.max_duration_seconds < 1:
            raise ValueError("the duration clamp must be at least 1 second")

    def single_cell(self) -> ContributionBounds:
        """Bounds for an output whose keys are attributes of the caller (country, number type):
        each subscriber falls in one cell, so C = 1 and that cell may take the L x C calls the
        subscriber could spread over C cells elsewhere. Same calls per subscriber-day, a
        distinct-subscriber sensitivity of 1 instead of C."""
        return ContributionBounds(
            max_calls_per_cell=self.max_calls_per_cell * self.max_cells_per_subscriber,
            max_cells_per_subscriber=1,
            max_duration_seconds=self.max_duration_seconds,
        )

    def sensitivities(self) -> dict[str, int]:
        """L1 sensitivity of each measure over all cells of one day."""
        per_cells = self.max_calls_per_cell * self.max_cells_per_subscriber
        return {
            "calls": per_cells,
            "answered_calls": per_cells,
            "distinct_subscribers": self.max_cells_per_subscriber,
            "total_duration_seconds": per_cells * self.max_duration_seconds,
        }


@dataclass(frozen=True)
class PrivacySettings:
    """Which outputs are published under DP, with what epsilon per day, within what budget."""

    outputs: frozenset[str]
    epsilon: float
    budget_per_day: float
    bounds: ContributionBounds

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError("epsilon must be a positive number")
        if not (math.isfinite(self.budget_per_day) and self.budget_per_day > 0):
            raise ValueError("the privacy budget per day must be a positive number")

    def applies_to(self, output: str) -> bool:
        return output in self.outputs


def parse_outputs(text: str) -> frozenset[str]:
    """`a, b` -> {"a", "b"}; empty -> no output under DP."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def epsilon_split(epsilon: float, shares: Mapping[str, float] = EPSILON_SHARES) -> dict[str, float]:
    """Each measure's epsilon; they add up to `epsilon` (sequential composition)."""
    if not math.isclose(sum(shares.values()), 1.0):
        raise ValueError("epsilon shares must add up to 1")
    return {measure: epsilon * share for measure, share in shares.items()}


# --- bounding, in SQL -----------------------------------------------------------------------------


def remap_to_domain_sql(expression: str, domain_table: str, column: str) -> str:
    """`expression` if its value is in the domain's `column`, else the `other` cell."""
    return (
        f"CASE WHEN ({expression}) IN (SELECT {column} FROM {domain_table}) "
        f"THEN ({expression}) ELSE '{OTHER}' END"
    )


def bounding_values(bounds: ContributionBounds, salt: str) -> dict[str, object]:
    """The values `bounded_calls_sql` and `bound_violations_sql` name, to bind: the bounds (L,
    C, D) and the salt of the selection."""
    return {
        "max_calls_per_cell": int(bounds.max_calls_per_cell),
        "max_cells_per_subscriber": int(bounds.max_cells_per_subscriber),
        "max_duration_seconds": int(bounds.max_duration_seconds),
        "salt": salt,
    }


def bounded_calls_sql(source_sql: str, key_columns: Sequence[str]) -> str:
    """The calls kept after bounding: at most C cells per subscriber and L calls per subscriber
    and cell, durations clamped to D seconds (bound by `bounding_values`).

    `source_sql` yields one row per call with `caller_pseudonym`, the key columns,
    `duration_seconds` and `disposition`. Which cells and calls are kept is decided by an MD5 of
    the subscriber, the cell (or the call's whole row) and `$salt` (say, the day):
    deterministic, but not an order a subscriber can steer by the time or content of their calls.
    """
    keys = ", ".join(key_columns)
    key_text = ", ".join(f"CAST({key} AS VARCHAR)" for key in key_columns)
    same_cell = " AND ".join(f"kept.{key} IS NOT DISTINCT FROM calls.{key}" for key in key_columns)
    return f"""
        WITH calls AS ({source_sql}),
        ranked_cells AS (
            SELECT caller_pseudonym, {keys},
                   row_number() OVER (
                       PARTITION BY caller_pseudonym
                       ORDER BY md5(concat_ws('|', $salt, caller_pseudonym, {key_text}))
                   ) AS cell_rank
            FROM (SELECT DISTINCT caller_pseudonym, {keys} FROM calls)
        ),
        ranked_calls AS (
            SELECT calls.*,
                   row_number() OVER (
                       PARTITION BY calls.caller_pseudonym, {", ".join(f"calls.{k}" for k in key_columns)}
                       ORDER BY md5(concat_ws('|', $salt, CAST(calls AS VARCHAR)))
                   ) AS call_rank
            FROM calls
            SEMI JOIN (SELECT * FROM ranked_cells WHERE cell_rank <= $max_cells_per_subscriber)
              AS kept
              ON kept.caller_pseudonym = calls.caller_pseudonym AND {same_cell}
        )
        SELECT caller_pseudonym, {keys}, disposition,
               least(greatest(duration_seconds, 0), $max_duration_seconds) AS duration_seconds
        FROM ranked_calls
        WHERE call_rank <= $max_calls_per_cell
    """


def cell_figures_sql(bounded_calls: str, key_columns: Sequence[str]) -> str:
    """Per cell of already bounded calls (a table or a parenthesised SELECT): calls, answered
    calls, total (clamped) duration and distinct subscribers."""
    keys = ", ".join(key_columns)
    return f"""
        SELECT {keys},
               count(*) AS calls,
               count(*) FILTER (WHERE disposition = 'answered') AS answered_calls,
               sum(duration_seconds) AS total_duration_seconds,
               count(DISTINCT caller_pseudonym) AS distinct_subscribers
        FROM {bounded_calls}
        GROUP BY ALL
    """


def bounded_cells_sql(source_sql: str, key_columns: Sequence[str]) -> str:
    """`cell_figures_sql` over `bounded_calls_sql`: the exact figures noise is added to."""
    bounded = f"({bounded_calls_sql(source_sql, key_columns)})"
    return cell_figures_sql(bounded, key_columns)


def bound_violations_sql(bounded_calls: str, key_columns: Sequence[str]) -> str:
    """Counts of what bounding must have made impossible (all 0): subscriber-cells above L calls,
    subscribers in more than C cells, durations above the clamp (bound by `bounding_values`)."""
    keys = ", ".join(key_columns)
    return f"""
        SELECT
          (SELECT count(*) FROM (SELECT caller_pseudonym, {keys} FROM {bounded_calls}
             GROUP BY ALL HAVING count(*) > $max_calls_per_cell)),
          (SELECT count(*) FROM (SELECT caller_pseudonym FROM {bounded_calls} GROUP BY 1
             HAVING count(DISTINCT ({keys})) > $max_cells_per_subscriber)),
          (SELECT count(*) FROM {bounded_calls}
             WHERE duration_seconds > $max_duration_seconds)
    """


def cells_on_domain_sql(domain_sql: str, bounded_sql: str, key_columns: Sequence[str]) -> str:
    """Every key of the (data-independent) domain with its bounded figures, 0 where no call."""
    figures = ", ".join(
        f"coalesce(bounded.{measure}, 0)::BIGINT AS {measure}" for measure in COUNT_MEASURES
    )
    on = " AND ".join(f"domain.{key} IS NOT DISTINCT FROM bounded.{key}" for key in key_columns)
    keys = ", ".join(f"domain.{key}" for key in key_columns)
    return (
        f"SELECT {keys}, {figures} FROM ({domain_sql}) AS domain "
        f"LEFT JOIN ({bounded_sql}) AS bounded ON {on}"
    )


# --- noise ----------------------------------------------------------------------------------------


def geometric_noise(
    values: Sequence[int], epsilon: float, sensitivity: int, random_state: Any = None
) -> list[int]:
    """`values` plus two-sided geometric noise of scale sensitivity / epsilon (diffprivlib).

    `random_state` None draws from a CSPRNG; an int gives reproducible noise (tests only).
    """
    from diffprivlib.mechanisms import Geometric  # import costs about 1 s (scikit-learn)

    mechanism = Geometric(epsilon=epsilon, sensitivity=int(sensitivity), random_state=random_state)
    return [int(mechanism.randomise(int(value))) for value in values]


def noisy_figures(
    cells: pd.DataFrame,
    epsilon: float,
    bounds: ContributionBounds,
    random_state: Any = None,
    min_noisy_subscribers: int = 0,
) -> pd.DataFrame:
    """The published figures of bounded cells: noisy counts clipped at 0, answered calls at most
    the calls, the rate from the noisy counts within [0, 1], no median; cells whose *noisy*
    distinct subscribers fall below `min_noisy_subscribers` are withheld (`suppressed`, figures
    NULL). All of it is post-processing of the noisy counts: no extra budget, no exact count.

    `random_state` must stay None outside tests (see the module docstring).
    """
    import numpy as np

    epsilons = epsilon_split(epsilon)
    sensitivities = bounds.sensitivities()
    if random_state is not None and not isinstance(random_state, np.random.RandomState):
        # One generator for all measures: a fixed int seed must not give them the same noise.
        random_state = np.random.RandomState(random_state)
    published = cells.drop(columns=list(COUNT_MEASURES)).copy()
    noisy = {
        measure: np.maximum(
            0,
            np.asarray(
                geometric_noise(
                    cells[measure].tolist(), epsilons[measure], sensitivities[measure], random_state
                ),
                dtype="int64",
            ),
        )
        for measure in COUNT_MEASURES
    }
    noisy["answered_calls"] = np.minimum(noisy["answered_calls"], noisy["calls"])
    withheld = noisy["distinct_subscribers"] < int(min_noisy_subscribers)
    # Nullable types, so that withheld figures, "no rate" and "no median" reach DuckDB as NULL.
    for measure in COUNT_MEASURES:
        published[measure] = pd.array(noisy[measure], dtype="Int64")
        published.loc[withheld, measure] = pd.NA
    calls = published["calls"].astype("Float64")
    published["answered_rate"] = (published["answered_calls"].astype("Float64") / calls).where(
        calls > 0
    )
    published["median_duration_seconds"] = pd.Series(pd.NA, index=published.index, dtype="Float64")
    published["suppressed"] = withheld
    published["dp_epsilon"] = float(epsilon)
    return published


# What each column `noisy_figures` returns is computed from, among the columns of the cells it
# is given (column lineage): keys pass through, each count is its own noisy count (answered
# calls capped at the calls), the rate from both counts, withholding from the noisy subscribers;
# no median, and epsilon is a setting, no column.
NOISY_FIGURE_INPUTS: dict[str, tuple[str, ...]] = {
    "calls": ("calls", "distinct_subscribers"),
    "answered_calls": ("answered_calls", "calls", "distinct_subscribers"),
    "answered_rate": ("answered_calls", "calls", "distinct_subscribers"),
    "total_duration_seconds": ("total_duration_seconds", "distinct_subscribers"),
    "median_duration_seconds": (),
    "distinct_subscribers": ("distinct_subscribers",),
    "suppressed": ("distinct_subscribers",),
    "dp_epsilon": (),
}


# --- the budget ledger ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetDecision:
    allowed: bool
    spent_before: float
    spent_after: float  # what the period will have spent if the publication goes ahead
    budget: float

    @property
    def remaining_after(self) -> float:
        return self.budget - self.spent_after


def budget_decision(spent: float, next_epsilon: float, budget: float) -> BudgetDecision:
    """May a publication spending `next_epsilon` go ahead in a period that spent `spent`?

    Spends add up (sequential composition): every publication of any DP output of the day,
    re-runs of the same partition included, draws on the same subscriber-day budget.
    """
    if next_epsilon <= 0 or spent < 0:
        raise ValueError("spends are positive and a spent total is not negative")
    after = spent + next_epsilon
    return BudgetDecision(
        allowed=after <= budget + BUDGET_TOLERANCE,
        spent_before=spent,
        spent_after=after,
        budget=budget,
    )


def country_domain() -> list[str]:
    """Every region phonenumbers knows (and its non-geographic entity), unknown, other."""
    import phonenumbers

    return sorted(phonenumbers.SUPPORTED_REGIONS) + ["001", "unknown", OTHER]


def number_type_domain() -> list[str]:
    """Every number type name as domain/numbers.py writes it, unknown, other."""
    from phonenumbers import PhoneNumberType

    names = {
        name.lower()
        for name, value in vars(PhoneNumberType).items()
        if name.isupper() and isinstance(value, int)
    }
    return sorted(names | {"unknown"}) + [OTHER]
