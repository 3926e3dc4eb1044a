"""Unit tests for phone_pipeline.domain.suppression (small-cell suppression in SQL)."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from phone_pipeline.domain.suppression import (
    DEFAULT_MIN_CELL_SIZE,
    is_publishable,
    suppress_small_cells_sql,
    suppression_values,
)
from phone_pipeline.sql import run

KEYS = ["region", "call_hour"]
FIGURES = ["calls", "answered_rate", "total_duration_seconds"]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE cells (region VARCHAR, call_hour INTEGER, calls BIGINT, "
        "answered_rate DOUBLE, total_duration_seconds BIGINT, distinct_subscribers BIGINT)"
    )
    yield connection
    connection.close()


def fill(con: duckdb.DuckDBPyConnection, sizes: list[int | None]) -> None:
    """One cell per size, keyed ("r<i>", i); its figures are derived from the size, all non-null."""
    con.executemany(
        "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?)",
        [
            (f"r{index}", index, 10 * (size or 1) + 3, 0.5, 600 * (size or 1) + 7, size)
            for index, size in enumerate(sizes)
        ],
    )


def published(con: duckdb.DuckDBPyConnection, k: int) -> dict[tuple, dict]:
    result = run(con, suppress_small_cells_sql("cells", KEYS, FIGURES), suppression_values(k))
    names = [column[0] for column in result.description]
    rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    by_key = {(row["region"], row["call_hour"]): row for row in rows}
    assert len(by_key) == len(rows)
    return by_key


@pytest.mark.parametrize("k", [1, 2, DEFAULT_MIN_CELL_SIZE, 10])
def test_cells_around_the_threshold(con: duckdb.DuckDBPyConnection, k: int) -> None:
    sizes = sorted({max(size, 0) for size in (0, 1, k - 1, k, k + 1, 3 * k)})
    fill(con, sizes)
    source = {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT region, calls, answered_rate, total_duration_seconds, distinct_subscribers "
            "FROM cells"
        ).fetchall()
    }
    result = published(con, k)

    assert len(result) == len(sizes)  # every cell is kept, with its key
    for index, size in enumerate(sizes):
        row = result[(f"r{index}", index)]
        figures = (
            row["calls"],
            row["answered_rate"],
            row["total_duration_seconds"],
            row["distinct_subscribers"],
        )
        if size < k:
            assert row["suppressed"] is True, size
            assert figures == (None, None, None, None), size  # the count itself is withheld too
        else:
            assert row["suppressed"] is False, size
            assert figures == source[f"r{index}"], size


def test_output_columns(con: duckdb.DuckDBPyConnection) -> None:
    fill(con, [1, 5])
    result = run(con, suppress_small_cells_sql("cells", KEYS, FIGURES), suppression_values(5))
    assert [column[0] for column in result.description] == [
        *KEYS,
        *FIGURES,
        "distinct_subscribers",
        "suppressed",
    ]


def test_default_threshold_example(con: duckdb.DuckDBPyConnection) -> None:
    fill(con, [4, 5, 6])
    result = published(con, DEFAULT_MIN_CELL_SIZE)
    assert [result[(f"r{i}", i)]["suppressed"] for i in range(3)] == [True, False, False]
    assert result[("r0", 0)]["calls"] is None
    assert result[("r1", 1)]["calls"] == 53


def test_only_listed_figures_are_published(con: duckdb.DuckDBPyConnection) -> None:
    fill(con, [2, 7])
    sql = suppress_small_cells_sql("cells", ["region"], ["calls"])
    result = run(con, sql, suppression_values(5)).fetchall()
    assert sorted(result) == [("r0", None, None, True), ("r1", 73, 7, False)]


@pytest.mark.parametrize("k", [0, -1, -5])
def test_invalid_threshold_raises(k: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        suppression_values(k)


def test_non_integer_threshold_cannot_inject_sql(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError):
        suppression_values("5 OR TRUE")  # type: ignore[arg-type]
    # The threshold is a bound value, never SQL text: even unchecked, text cannot change the query.
    fill(con, [1, 5])
    sql = suppress_small_cells_sql("cells", KEYS, FIGURES)
    assert "$min_cell_size" in sql
    with pytest.raises(duckdb.ConversionException):
        run(con, sql, {"min_cell_size": "5 OR TRUE"}).fetchall()


@pytest.mark.parametrize("k", [1, 3, 5, 8])
def test_agrees_with_is_publishable(con: duckdb.DuckDBPyConnection, k: int) -> None:
    sizes = list(range(0, 12))
    fill(con, sizes)
    result = published(con, k)
    for index, size in enumerate(sizes):
        row = result[(f"r{index}", index)]
        assert row["suppressed"] is (not is_publishable(size, k))
        assert (row["calls"] is not None) is is_publishable(size, k)


def test_is_publishable_reference() -> None:
    assert not is_publishable(None, 5)
    assert not is_publishable(0, 5)
    assert not is_publishable(4, 5)
    assert is_publishable(5, 5)
    assert is_publishable(6, 5)
    assert is_publishable(1, 1)


def test_unknown_cell_size_is_suppressed(con: duckdb.DuckDBPyConnection) -> None:
    fill(con, [None])
    row = published(con, 5)[("r0", 0)]
    assert row["calls"] is None  # the figures are withheld either way
    assert row["suppressed"] is (not is_publishable(None, 5))
