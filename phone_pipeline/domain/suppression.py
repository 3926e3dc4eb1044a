"""Small-cell suppression for published aggregates.

A published figure must not describe fewer than `min_cell_size` distinct people: cells below the
threshold keep their key (so readers see that a cell exists and was withheld) but their figures are
set to NULL and `suppressed` is true. The rule is SQL so it runs where the data is.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_MIN_CELL_SIZE = 5


def suppression_values(min_cell_size: int) -> dict[str, int]:
    """The value `suppress_small_cells_sql` names (`$min_cell_size`), checked to be at least 1."""
    k = int(min_cell_size)
    if k < 1:
        raise ValueError("min_cell_size must be at least 1")
    return {"min_cell_size": k}


def suppress_small_cells_sql(
    source: str, key_columns: Sequence[str], figure_columns: Sequence[str]
) -> str:
    """SELECT over `source` (which has `distinct_subscribers`) withholding every cell with fewer
    than `$min_cell_size` subscribers (bind `suppression_values`)."""
    keys = ", ".join(key_columns)
    figures = ",\n       ".join(
        f"CASE WHEN distinct_subscribers >= $min_cell_size THEN {column} END AS {column}"
        for column in [*figure_columns, "distinct_subscribers"]
    )
    return (
        f"SELECT {keys},\n       {figures},\n"
        f"       NOT coalesce(distinct_subscribers >= $min_cell_size, false) AS suppressed\n"
        f"FROM {source}"
    )


def is_publishable(distinct_subscribers: int | None, min_cell_size: int) -> bool:
    """Reference rule used in tests: a cell may be published only with enough people in it."""
    return distinct_subscribers is not None and distinct_subscribers >= min_cell_size
