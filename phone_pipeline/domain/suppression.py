"""Small-cell suppression for published aggregates.

A published figure must not describe fewer than `min_cell_size` distinct people: cells below the
threshold keep their key (so readers see that a cell exists and was withheld) but their figures are
set to NULL and `suppressed` is true. The rule is SQL so it runs where the data is.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_MIN_CELL_SIZE = 5


def suppress_small_cells_sql(
    source: str, key_columns: Sequence[str], figure_columns: Sequence[str], min_cell_size: int
) -> str:
    """SELECT over `source` (which has `distinct_subscribers`) withholding every small cell.

    `min_cell_size` is an int validated here, so it is safe to inline.
    """
    if int(min_cell_size) < 1:
        raise ValueError("min_cell_size must be at least 1")
    k = int(min_cell_size)
    keys = ", ".join(key_columns)
    figures = ",\n       ".join(
        f"CASE WHEN distinct_subscribers >= {k} THEN {column} END AS {column}"
        for column in [*figure_columns, "distinct_subscribers"]
    )
    return (
        f"SELECT {keys},\n       {figures},\n"
        f"       NOT coalesce(distinct_subscribers >= {k}, false) AS suppressed\nFROM {source}"
    )


def is_publishable(distinct_subscribers: int | None, min_cell_size: int) -> bool:
    """Reference rule used in tests: a cell may be published only with enough people in it."""
    return distinct_subscribers is not None and distinct_subscribers >= min_cell_size
