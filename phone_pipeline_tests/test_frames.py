"""The distinct-values frame gives Great Expectations the same verdicts as the whole table."""

from __future__ import annotations

import duckdb
import great_expectations.expectations as gxe
import pandas as pd
import pytest

from phone_pipeline.resources import GreatExpectationsResource
from phone_pipeline.stages.shared.frames import column_groups, distinct_values_frame

E164 = r"^\+[1-9][0-9]{6,14}$"


def expectations() -> list:
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["number", "seconds", "status", "flag_a", "flag_b", "unread"],
            exact_match=True,
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="number"),
        gxe.ExpectColumnValuesToMatchRegex(column="number", regex=E164),
        gxe.ExpectColumnValuesToBeBetween(column="seconds", min_value=0, max_value=3600),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["answered", "busy"]),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="flag_a", column_B="flag_b"),
    ]


def table(rows: int = 400) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "number": [f"+1212555{100 + i % 40:04d}" for i in range(rows)],
            "seconds": [i % 90 for i in range(rows)],
            "status": ["answered" if i % 3 else "busy" for i in range(rows)],
            "flag_a": [i % 2 == 0 for i in range(rows)],
            "flag_b": [i % 2 == 0 for i in range(rows)],
            "unread": [f"row {i}" for i in range(rows)],
        }
    )


def broken(column: str, value) -> pd.DataFrame:
    frame = table()
    frame.loc[137, column] = value
    return frame


CASES = {
    "clean": table(),
    "null number": broken("number", None),
    "number not E.164": broken("number", "212-555-0100"),
    "negative seconds": broken("seconds", -1),
    "too long": broken("seconds", 3601),
    "unknown status": broken("status", "hung_up"),
    "flags disagree": broken("flag_b", not table().loc[137, "flag_a"]),
    "empty": table().iloc[0:0],
}


@pytest.fixture(scope="module")
def gx() -> GreatExpectationsResource:
    return GreatExpectationsResource()


@pytest.mark.parametrize("case", list(CASES))
def test_same_verdict_per_expectation_as_the_whole_table(gx, case: str) -> None:
    full = CASES[case]
    con = duckdb.connect()
    con.register("calls", full)
    frame = distinct_values_frame(con, "SELECT * FROM calls", expectations())
    whole = gx.validate("whole", full, expectations())
    distinct = gx.validate("distinct", frame, expectations())
    assert [item.success for item in distinct.expectations] == [
        item.success for item in whole.expectations
    ]
    assert distinct.success == whole.success == (case == "clean")
    assert len(frame) <= len(full)
    if case == "clean":
        assert len(frame) == 90  # the most distinct values of one group (seconds), not 400 rows


def test_pairs_stay_aligned_and_unread_columns_are_empty() -> None:
    con = duckdb.connect()
    con.register("calls", table())
    frame = distinct_values_frame(con, "SELECT * FROM calls", expectations())
    assert list(frame.columns) == list(table().columns)
    assert (frame["flag_a"] == frame["flag_b"]).all()
    assert frame["unread"].isna().all()


def test_groups_join_columns_read_together() -> None:
    groups = column_groups(
        [
            gxe.ExpectColumnPairValuesToBeEqual(column_A="a", column_B="b"),
            gxe.ExpectColumnValuesToNotBeNull(column="b"),
            gxe.ExpectColumnPairValuesToBeEqual(column_A="b", column_B="c"),
            gxe.ExpectColumnValuesToNotBeNull(column="d"),
        ]
    )
    assert sorted(groups) == [("a", "b", "c"), ("d",)]


@pytest.mark.parametrize(
    "expectation",
    [
        gxe.ExpectColumnValuesToBeUnique(column="number"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["number", "status"]),
    ],
)
def test_uniqueness_is_refused(expectation) -> None:
    con = duckdb.connect()
    con.register("calls", table())
    with pytest.raises(ValueError, match="not row-wise"):
        distinct_values_frame(con, "SELECT * FROM calls", [expectation])


def test_a_column_checked_only_for_nulls_needs_two_values(gx) -> None:
    ids = pd.DataFrame({"call_id": [f"c-{i}" for i in range(5000)]})
    with_null = ids.copy()
    with_null.loc[4321, "call_id"] = None
    checks = [gxe.ExpectColumnValuesToNotBeNull(column="call_id")]
    for full, passes in ((ids, True), (with_null, False)):
        con = duckdb.connect()
        con.register("calls", full)
        frame = distinct_values_frame(con, "SELECT * FROM calls", checks)
        assert len(frame) == (1 if passes else 2)
        assert gx.validate("nulls", frame, checks).success is passes
