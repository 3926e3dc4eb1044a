"""The frame a Great Expectations suite sees: each distinct combination of checked values once.

GX over pandas hashes every frame it loads and evaluates row by row: on a 10-million-row partition
that costs more time and memory than the pipeline itself. The expectations our gates use are
row-wise ("every value is not null / matches / lies between / is in a set"), and such a statement
holds for a table exactly when it holds for each distinct value (or distinct tuple, for
expectations over several columns). So DuckDB computes the distinct values where the data is, and
GX checks those: the same guarantee, a fraction of the rows.

Columns that no expectation reads are still present (all NULL) so that column-set expectations see
the table's schema, and the frame has at least one row exactly when the table has: a minimum row
count of 1 keeps its meaning. Uniqueness is not row-wise and is checked in SQL instead.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from phone_pipeline.sql import SqlValues, run

# For "not null" only one null and one non-null value can change the verdict.
NULLNESS_ONLY = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")
NOT_ROW_WISE = (
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_select_column_values_to_be_unique_within_record",
)


def _expectation_columns(expectation: Any) -> tuple[str, ...]:
    kwargs = expectation.configuration.kwargs
    if "column" in kwargs:
        return (kwargs["column"],)
    if "column_A" in kwargs:
        return (kwargs["column_A"], kwargs["column_B"])
    return tuple(kwargs.get("column_list") or ())


def column_groups(expectations: list[Any]) -> list[tuple[str, ...]]:
    """Columns that must stay aligned row by row: those read together by one expectation."""
    groups: list[set[str]] = []
    for expectation in expectations:
        if expectation.expectation_type in NOT_ROW_WISE:
            raise ValueError(f"{expectation.expectation_type} is not row-wise: check it in SQL")
        columns = set(_expectation_columns(expectation))
        if not columns:
            continue
        overlapping = [group for group in groups if group & columns]
        for group in overlapping:
            groups.remove(group)
            columns |= group
        groups.append(columns)
    return [tuple(sorted(group)) for group in groups]


def _group_sql(relation_sql: str, group: tuple[str, ...], expectations: list[Any]) -> str:
    reading = {
        expectation.expectation_type
        for expectation in expectations
        if set(_expectation_columns(expectation)) & set(group)
    }
    if len(group) == 1 and reading <= set(NULLNESS_ONLY):
        # A column with a million distinct ids needs only: is there a null, is there a value.
        (column,) = group
        # (An aggregate, not a window: no sort of the partition's rows.)
        return (
            f"SELECT any_value({column}) AS {column} FROM ({relation_sql}) "
            f"GROUP BY {column} IS NULL"
        )
    return f"SELECT DISTINCT {', '.join(group)} FROM ({relation_sql})"


def distinct_values_frame(
    con: duckdb.DuckDBPyConnection,
    relation_sql: str,
    expectations: list[Any],
    values: SqlValues | None = None,
) -> pd.DataFrame:
    """Each group's distinct rows side by side, shorter groups padded with their own first row."""
    schema = run(con, f"SELECT * FROM ({relation_sql}) LIMIT 0", values).df()
    parts = [
        run(con, _group_sql(relation_sql, group, expectations), values).df()
        for group in column_groups(expectations)
    ]
    length = max((len(part) for part in parts), default=0)
    if not parts:  # only table-level expectations: one row stands for a non-empty table
        length = min(1, run(con, f"SELECT count(*) FROM ({relation_sql})", values).fetchone()[0])
    padded = []
    for part in parts:
        if 0 < len(part) < length:
            # Repeating a row that is already there changes no row-wise verdict.
            filler = part.iloc[[0] * (length - len(part))]
            part = pd.concat([part, filler], ignore_index=True)
        padded.append(part.reset_index(drop=True))
    frame = pd.concat(padded, axis=1) if padded else pd.DataFrame(index=range(length))
    for column in schema.columns:
        if column not in frame.columns:
            frame[column] = pd.Series(
                [None] * length, dtype=schema[column].dtype if length == 0 else object
            )
    return frame[list(schema.columns)]
