"""Tests of phone_pipeline.landing with real files in a temporary folder and a real DuckDB file.

Only fictional numbers: NANP 212-555-01xx and the UK drama block +44 20 7946 0xxx.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phone_pipeline.domain.contract import CALL_REQUIRED_COLUMNS
from phone_pipeline.landing import (
    RegistryRead,
    call_dates_in_file,
    content_hash,
    ingest_new_files,
    list_landing_files,
    stage_registry_files,
)
from phone_pipeline.warehouse import prepare_restricted

FIRST = dt.date(2026, 11, 1)
LAST = dt.date(2026, 11, 30)
NOV = {day: dt.date(2026, 11, day) for day in range(1, 31)}
HEADER = ",".join(CALL_REQUIRED_COLUMNS)

Row = tuple[
    str, str, str, str, str, str
]  # call_id, caller, callee, started_at, duration, disposition


def call(
    call_id: str,
    started_at: str = "2026-11-01T10:00:00Z",
    caller: str = "212-555-0101",
    callee: str = "+44 20 7946 0102",
    duration: str = "60",
    disposition: str = "answered",
) -> Row:
    return (call_id, caller, callee, started_at, duration, disposition)


def csv_text(rows: Sequence[Row], header: str = HEADER) -> str:
    return header + "\n" + "".join(",".join(row) + "\n" for row in rows)


def write_csv(path: Path, rows: Sequence[Row], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(rows, header))
    return path


def write_csv_gz(path: Path, rows: Sequence[Row]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write(csv_text(rows))
    return path


def write_parquet(path: Path, rows: Sequence[Row]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(CALL_REQUIRED_COLUMNS)}
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing" / "calls"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "restricted.duckdb"))
    prepare_restricted(connection)
    yield connection
    connection.close()


def ingest(con: duckdb.DuckDBPyConnection, folder: Path):
    return ingest_new_files(con, folder, FIRST, LAST)


def raw_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT source_file, call_id, caller_number, callee_number, started_at, duration_seconds, "
        "disposition FROM raw_calls ORDER BY source_file, source_row"
    ).fetchall()


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# --- loading once -------------------------------------------------------------------------------


def test_csv_is_loaded_once(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    path = write_csv(landing / "calls_a.csv", [call("c1"), call("c2"), call("c3")])

    first = ingest(con, landing)
    assert first.loaded == ["calls_a.csv"]
    assert first.already_loaded == []
    assert first.rejected == {}
    assert first.rows_loaded == 3
    assert count(con, "raw_calls") == 3
    registered = con.execute(
        "SELECT content_hash, file_name, file_size, rows, anchor_date, load_order FROM landing_files"
    ).fetchall()
    assert registered == [(content_hash(path), "calls_a.csv", path.stat().st_size, 3, NOV[1], 1)]

    second = ingest(con, landing)
    assert second.loaded == []
    assert second.already_loaded == ["calls_a.csv"]
    assert second.rows_loaded == 0
    assert count(con, "raw_calls") == 3
    assert count(con, "landing_files") == 1


def test_load_survives_reopening_the_database(tmp_path: Path, landing: Path) -> None:
    write_csv(landing / "a.csv", [call("c1")])
    database = tmp_path / "restricted.duckdb"
    with duckdb.connect(str(database)) as first:
        prepare_restricted(first)
        assert ingest(first, landing).loaded == ["a.csv"]
    with duckdb.connect(str(database)) as second:
        prepare_restricted(second)
        report = ingest(second, landing)
        assert report.already_loaded == ["a.csv"]
        assert count(second, "raw_calls") == 1


def test_same_content_under_another_name_is_not_loaded_again(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    original = write_csv(landing / "a.csv", [call("c1"), call("c2")])
    ingest(con, landing)
    shutil.copy(original, landing / "a_copy.csv")
    report = ingest(con, landing)
    assert report.loaded == []
    assert sorted(report.already_loaded) == ["a.csv", "a_copy.csv"]
    assert count(con, "raw_calls") == 2


def test_identical_files_arriving_together_are_loaded_once(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = [call("c1"), call("c2")]
    write_csv(landing / "x.csv", rows)
    write_csv(landing / "y.csv", rows)
    report = ingest(con, landing)
    assert report.loaded == ["x.csv"]
    assert report.already_loaded == ["y.csv"]
    assert count(con, "raw_calls") == 2


def test_load_order_increases_per_file(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing / "a.csv", [call("c1")])
    ingest(con, landing)
    write_csv(landing / "b.csv", [call("c2")])
    write_csv(landing / "c.csv", [call("c3")])
    ingest(con, landing)
    orders = dict(con.execute("SELECT file_name, load_order FROM landing_files").fetchall())
    assert orders == {"a.csv": 1, "b.csv": 2, "c.csv": 3}


# --- which files are landing files --------------------------------------------------------------


def test_partial_and_foreign_files_are_ignored(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = [call("c1")]
    partial = write_csv(landing / "calls.csv.part", rows)
    write_csv(landing / "calls2.csv.tmp", [call("c2")])
    write_csv(landing / "calls3.csv.partial", [call("c3")])
    write_csv(landing / "calls4.csv.crdownload", [call("c4")])
    write_csv(landing / ".hidden.csv", [call("c5")])
    write_csv(landing / "notes.txt", [call("c6")])
    (landing / "folder.csv").mkdir()

    assert list_landing_files(landing) == []
    report = ingest(con, landing)
    assert (report.loaded, report.already_loaded, report.rejected) == ([], [], {})
    assert count(con, "raw_calls") == 0

    # Once the writer renames it, the file is picked up.
    partial.rename(landing / "calls.csv")
    assert ingest(con, landing).loaded == ["calls.csv"]
    assert [row[1] for row in raw_rows(con)] == ["c1"]


def test_missing_landing_folder_is_empty(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    assert list_landing_files(tmp_path / "nowhere") == []
    assert ingest(con, tmp_path / "nowhere").loaded == []


def test_csv_gz_and_parquet_are_accepted(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv_gz(landing / "zipped.csv.gz", [call("gz1"), call("gz2")])
    write_parquet(landing / "columnar.parquet", [call("pq1"), call("pq2", caller="02079460103")])
    write_csv(landing / "UPPER.CSV", [call("up1")])
    report = ingest(con, landing)
    assert sorted(report.loaded) == ["UPPER.CSV", "columnar.parquet", "zipped.csv.gz"]
    assert report.rejected == {}
    assert report.rows_loaded == 5
    rows = raw_rows(con)
    assert sorted((row[0], row[1]) for row in rows) == [
        ("UPPER.CSV", "up1"),
        ("columnar.parquet", "pq1"),
        ("columnar.parquet", "pq2"),
        ("zipped.csv.gz", "gz1"),
        ("zipped.csv.gz", "gz2"),
    ]
    by_id = {row[1]: row for row in rows}
    assert by_id["pq2"][2] == "02079460103"
    assert by_id["gz1"][2:] == call("gz1")[1:]


def test_parquet_with_typed_columns_is_read_as_text(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    table = pa.table(
        {
            "call_id": ["t1"],
            "caller_number": ["+12125550101"],
            "callee_number": ["02079460102"],
            "started_at": ["2026-11-02T10:00:00Z"],
            "duration_seconds": pa.array([75], pa.int64()),
            "disposition": ["busy"],
            "cell_id": ["CELL-7"],
        }
    )
    pq.write_table(table, landing / "typed.parquet")
    assert ingest(con, landing).loaded == ["typed.parquet"]
    assert con.execute(
        "SELECT duration_seconds, cell_id, call_date, callee_number FROM raw_calls"
    ).fetchall() == [("75", "CELL-7", NOV[2], "02079460102")]


# --- values are kept as text --------------------------------------------------------------------


def test_digits_only_numbers_keep_leading_zero_and_plus(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = [
        call("007", caller="02079460101", callee="+442079460102", duration="0060"),
        call("008", caller="+12125550103", callee="0012125550104", duration="N/A"),
        call("009", caller="2125550105", callee="00442079460106", duration="1e3"),
    ]
    write_csv(landing / "digits.csv", rows)
    ingest(con, landing)
    stored = con.execute(
        "SELECT call_id, caller_number, callee_number, duration_seconds FROM raw_calls "
        "ORDER BY source_row"
    ).fetchall()
    assert stored == [(row[0], row[1], row[2], row[4]) for row in rows]
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'raw_calls'"
        ).fetchall()
    )
    assert types["caller_number"] == types["callee_number"] == "VARCHAR"


def test_columns_matched_case_insensitively_and_extras_dropped(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    header = (
        "Call_ID,CALLER_NUMBER,callee_number,Started_At,duration_seconds,Disposition,cell_id,notes"
    )
    path = landing / "mixed.csv"
    path.write_text(
        header + "\n" + "m1,212-555-0101,212-555-0102,2026-11-01T10:00:00Z,5,busy,C9,free text\n"
    )
    assert ingest(con, landing).loaded == ["mixed.csv"]
    row = con.execute("SELECT call_id, caller_number, cell_id FROM raw_calls").fetchone()
    assert row == ("m1", "212-555-0101", "C9")
    assert "notes" not in [name for name, *_ in con.execute("DESCRIBE raw_calls").fetchall()]


def test_optional_cell_id_may_be_absent(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    write_csv(landing / "a.csv", [call("c1")])
    ingest(con, landing)
    assert con.execute("SELECT cell_id FROM raw_calls").fetchall() == [(None,)]


# --- rejected files -----------------------------------------------------------------------------


def test_file_missing_a_required_column_is_rejected(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_csv(landing / "good.csv", [call("g1"), call("g2")])
    ingest(con, landing)
    before = (raw_rows(con), con.execute("SELECT * FROM landing_files").fetchall())

    header = ",".join(name for name in CALL_REQUIRED_COLUMNS if name != "disposition")
    bad = landing / "no_disposition.csv"
    bad.write_text(header + "\nb1,212-555-0101,212-555-0102,2026-11-01T10:00:00Z,60\n")
    report = ingest(con, landing)

    assert report.loaded == []
    assert report.already_loaded == ["good.csv"]
    assert list(report.rejected) == ["no_disposition.csv"]
    message = report.rejected["no_disposition.csv"]
    assert "no_disposition.csv" in message
    assert "disposition" in message.replace("no_disposition.csv", "")
    assert "call_id" not in message.split("missing")[1].split(";")[0]  # only the missing one
    assert (raw_rows(con), con.execute("SELECT * FROM landing_files").fetchall()) == before

    # Not registered: a corrected file is picked up next time, the old version stays out.
    write_csv(bad, [call("b1")])
    again = ingest(con, landing)
    assert again.loaded == ["no_disposition.csv"]
    assert again.rejected == {}
    assert [row[1] for row in raw_rows(con)] == ["g1", "g2", "b1"]


def _many_good_rows(n: int) -> list[Row]:
    return [call(f"ok{i}", started_at=f"2026-11-01T{i % 24:02d}:00:00Z") for i in range(n)]


SECRET_CALLER = "212-555-0177"
SECRET_CALLEE = "+44 20 7946 0999"


@pytest.mark.parametrize(
    "bad_line_at",
    [
        "sniffed",  # in the part DuckDB samples to detect the dialect
        "late",  # far past the sample: DuckDB quotes the offending line in its error
    ],
)
@pytest.mark.parametrize("shape", ["too_few", "too_many"])
def test_malformed_csv_is_rejected_with_a_redacted_message(
    con: duckdb.DuckDBPyConnection, landing: Path, bad_line_at: str, shape: str
) -> None:
    write_csv(landing / "a_good.csv", [call("g1")])
    ingest(con, landing)
    before = raw_rows(con)

    good = _many_good_rows(30 if bad_line_at == "sniffed" else 25_000)
    if shape == "too_few":
        bad_line = f"bad,{SECRET_CALLER},2026-11-01T10:00:00Z"
    else:
        bad_line = (
            f"bad,{SECRET_CALLER},{SECRET_CALLEE},2026-11-01T10:00:00Z,60,answered,{SECRET_CALLEE}"
        )
    middle = len(good) - 5
    text = csv_text(good[:middle]) + bad_line + "\n" + csv_text(good[middle:], header="")[1:]
    (landing / "broken.csv").write_text(text)

    report = ingest(con, landing)
    assert report.loaded == []
    assert list(report.rejected) == ["broken.csv"]
    message = report.rejected["broken.csv"]
    assert message.startswith("broken.csv:")
    for secret in (SECRET_CALLER, SECRET_CALLEE, "0177", "0999", "7946"):
        assert secret not in message
    assert raw_rows(con) == before
    assert count(con, "landing_files") == 1


def test_short_csv_with_a_wide_last_line_does_not_leak_numbers(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    bad_line = f"bad,{SECRET_CALLER},212-555-0188,2026-11-01T10:00:00Z,60,answered,{SECRET_CALLEE}"
    (landing / "short.csv").write_text(csv_text([call("g1"), call("g2")]) + bad_line + "\n")
    report = ingest(con, landing)
    message = report.rejected["short.csv"]
    for secret in (SECRET_CALLER, SECRET_CALLEE, "0177", "0999"):
        assert secret not in message


def test_headerless_csv_does_not_leak_numbers(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    (landing / "headerless.csv").write_text(
        f"c1,{SECRET_CALLER},{SECRET_CALLEE},2026-11-01T10:00:00Z,60,answered\n"
    )
    report = ingest(con, landing)
    assert list(report.rejected) == ["headerless.csv"]
    message = report.rejected["headerless.csv"]
    for secret in (SECRET_CALLER, SECRET_CALLEE, "0177", "0999"):
        assert secret not in message


def test_unreadable_parquet_is_rejected(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    (landing / "fake.parquet").write_text(f"not parquet at all {SECRET_CALLER}\n")
    report = ingest(con, landing)
    assert list(report.rejected) == ["fake.parquet"]
    assert report.rejected["fake.parquet"].startswith("fake.parquet:")
    assert "0177" not in report.rejected["fake.parquet"]
    assert count(con, "raw_calls") == 0


def test_every_rejected_file_is_reported(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    for day in ("2026-11-01", "2026-11-02"):
        (landing / f"calls_{day}.csv").write_text("call_id\nx\n")
    report = ingest(con, landing)
    assert len(report.rejected) == 2


# --- timestamps and partitions ------------------------------------------------------------------


def test_unreadable_and_out_of_range_rows_land_on_the_earliest_readable_date(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = [
        call("late_ok", started_at="2026-11-03T10:00:00Z"),
        # 01:30 at +03:00 on the 2nd is 22:30 UTC on the 1st: the file's earliest readable date.
        call("early_ok", started_at="2026-11-02T01:30:00+03:00"),
        call("garbage", started_at="yesterday"),
        call("date_only", started_at="2026-11-02"),
        call("impossible", started_at="2026-11-31T10:00:00Z"),
        call("us_style", started_at="11/02/2026 10:00"),
        call("empty", started_at=""),
        call("too_late", started_at="2026-12-01T00:00:00Z"),
        call("too_early", started_at="2026-10-31T23:59:59Z"),
        call("edge_last", started_at="2026-11-30T23:59:59Z"),
    ]
    write_csv(landing / "mixed.csv", rows)
    report = ingest(con, landing)
    assert report.loaded == ["mixed.csv"]
    stored = {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT call_id, call_date, timestamp_status, started_at_utc IS NULL FROM raw_calls"
        ).fetchall()
    }
    assert stored == {
        "late_ok": (NOV[3], "ok", False),
        "early_ok": (NOV[1], "ok", False),
        "garbage": (NOV[1], "unreadable", True),
        "date_only": (NOV[1], "unreadable", True),
        "impossible": (NOV[1], "unreadable", True),
        "us_style": (NOV[1], "unreadable", True),
        "empty": (NOV[1], "unreadable", True),
        "too_late": (NOV[1], "out_of_range", False),
        "too_early": (NOV[1], "out_of_range", False),
        "edge_last": (NOV[30], "ok", False),
    }
    anchor = con.execute("SELECT anchor_date FROM landing_files").fetchone()[0]
    assert anchor == NOV[1]


def test_file_without_a_readable_date_is_rejected(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = [
        call("a", started_at="not a time"),
        call("b", started_at="2026-12-05T10:00:00Z"),  # readable, but outside the partitions
        call("c", started_at="2026-11-05"),
    ]
    write_csv(landing / "undated.csv", rows)
    report = ingest(con, landing)
    assert report.loaded == []
    assert list(report.rejected) == ["undated.csv"]
    assert "undated.csv" in report.rejected["undated.csv"]
    assert count(con, "raw_calls") == 0
    assert count(con, "landing_files") == 0


def test_call_dates_in_file_are_utc_dates(landing: Path) -> None:
    rows = [
        call("a", started_at="2026-11-01T23:30:00-02:00"),  # 01:30 UTC on the 2nd
        call("b", started_at="2026-11-01T23:59:59"),  # naive: UTC
        call("c", started_at="2026-11-04T00:30:00+01:00"),  # 23:30 UTC on the 3rd
        call("d", started_at="2026-11-05 00:00:00Z"),
        call("e", started_at="2026-11-07T12:00:00+14:00"),  # 22:00 UTC on the 6th
        call("f", started_at="garbage"),
        call("g", started_at="2026-12-02T00:00:00Z"),  # out of range
    ]
    path = write_csv(landing / "zones.csv", rows)
    expected = {NOV[2], NOV[1], NOV[3], NOV[5], NOV[6]}
    assert call_dates_in_file(path, FIRST, LAST) == expected
    # A narrower range leaves out the other dates.
    assert call_dates_in_file(path, NOV[2], NOV[3]) == {NOV[2], NOV[3]}


def test_call_dates_in_file_agree_with_where_rows_land(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    rows = [
        call("a", started_at="2026-11-01T23:30:00-02:00"),
        call("b", started_at="2026-11-07T08:00:00+09:00"),
        call("c", started_at="2026-11-07T08:00:00-09:00"),
        call("d", started_at="n/a"),
    ]
    path = write_parquet(landing / "calls.parquet", rows)
    dates = call_dates_in_file(path, FIRST, LAST)
    assert dates == {NOV[2], NOV[6], NOV[7]}
    ingest(con, landing)
    landed = {row[0] for row in con.execute("SELECT DISTINCT call_date FROM raw_calls").fetchall()}
    assert landed == dates


def test_call_dates_in_file_does_not_depend_on_the_local_time_zone(
    landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        path = write_csv(landing / "tz.csv", [call("a", started_at="2026-11-01T23:00:00")])
        assert call_dates_in_file(path, FIRST, LAST) == {NOV[1]}
    finally:
        monkeypatch.undo()
        time.tzset()


# --- row identity and completeness ----------------------------------------------------------------


def test_source_row_is_unique_per_file_and_follows_the_file(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    write_csv(landing / "a.csv", [call(f"a{i}") for i in range(1, 51)])
    write_csv_gz(landing / "b.csv.gz", [call(f"b{i}") for i in range(1, 21)])
    write_parquet(landing / "c.parquet", [call(f"c{i}") for i in range(1, 11)])
    ingest(con, landing)
    per_file = con.execute(
        "SELECT source_file, count(*), count(DISTINCT source_row), min(source_row), max(source_row) "
        "FROM raw_calls GROUP BY source_file ORDER BY source_file"
    ).fetchall()
    assert per_file == [
        ("a.csv", 50, 50, 1, 50),
        ("b.csv.gz", 20, 20, 1, 20),
        ("c.parquet", 10, 10, 1, 10),
    ]
    # source_row points back at the row in the file (1 = first data row).
    mismatched = con.execute(
        "SELECT count(*) FROM raw_calls "
        "WHERE call_id <> substr(source_file, 1, 1) || CAST(source_row AS VARCHAR)"
    ).fetchone()[0]
    assert mismatched == 0


def test_source_row_follows_a_file_read_in_parallel(
    con: duckdb.DuckDBPyConnection, landing: Path
) -> None:
    # 400,000 rows (about 40 MB): several CSV buffers and row groups read by several threads.
    con.execute("SET threads = 4")
    rows = 400_000
    write_csv(landing / "big.csv", [call(f"r{i}") for i in range(1, rows + 1)])
    ingest(con, landing)
    assert con.execute(
        "SELECT count(*), count(*) FILTER (WHERE call_id = 'r' || CAST(source_row AS VARCHAR)) "
        "FROM raw_calls"
    ).fetchone() == (rows, rows)


def test_every_input_row_lands_exactly_once(con: duckdb.DuckDBPyConnection, landing: Path) -> None:
    files = {
        "day1.csv": [call(f"d1-{i}", started_at=f"2026-11-01T{i:02d}:15:00Z") for i in range(24)],
        "mixed.csv.gz": [
            call("m1", started_at="2026-11-02T10:00:00Z"),
            call("m2", started_at="2026-11-05T23:30:00-03:00"),
            call("m3", started_at="broken"),
            call("m4", started_at="2027-01-01T00:00:00Z"),
            call("m1", started_at="2026-11-02T10:00:00Z"),  # a duplicate row is still a row
        ],
        "more.parquet": [
            call(f"p{i}", started_at=f"2026-11-{10 + i:02d}T12:00:00+02:00", duration=str(i))
            for i in range(15)
        ],
    }
    write_csv(landing / "day1.csv", files["day1.csv"])
    write_csv_gz(landing / "mixed.csv.gz", files["mixed.csv.gz"])
    write_parquet(landing / "more.parquet", files["more.parquet"])
    report = ingest(con, landing)
    assert report.rejected == {}
    total = sum(len(rows) for rows in files.values())
    assert report.rows_loaded == total

    expected = Counter((name, *row) for name, rows in files.items() for row in rows)
    actual = Counter(raw_rows(con))
    assert actual == expected
    assert count(con, "raw_calls") == total
    assert dict(con.execute("SELECT file_name, rows FROM landing_files").fetchall()) == {
        name: len(rows) for name, rows in files.items()
    }
    # Each row is in exactly one partition: (file, source_row) is a key of raw_calls.
    assert (
        con.execute(
            "SELECT count(*) FROM (SELECT source_file, source_row FROM raw_calls "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
        == 0
    )


def test_files_seen_before_are_not_hashed_again(
    con: duckdb.DuckDBPyConnection, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phone_pipeline import landing as landing_module

    path = landing / "calls_2026-11-01.csv"
    path.write_text(HEADER + "\nc1,+12125550101,+12125550102,2026-11-01T10:00:00Z,60,answered\n")
    assert ingest(con, landing).loaded == [path.name]

    hashed: list[str] = []
    real_hash = landing_module.content_hash
    monkeypatch.setattr(
        landing_module, "content_hash", lambda p: hashed.append(p.name) or real_hash(p)
    )
    again = ingest(con, landing)
    assert again.already_loaded == [path.name] and hashed == []  # known by name, size, mtime

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched
    touched = ingest(con, landing)
    assert touched.already_loaded == [path.name] and hashed == [path.name]  # same content
    assert count(con, "raw_calls") == 1


# --- registry files (consent, do-not-call, erasure): read row by row ------------------------------

REGISTRY_COLUMNS = ("phone_number", "listed_at")


def stage_registry(folder: Path) -> tuple[RegistryRead, list[tuple], list[tuple]]:
    with duckdb.connect() as connection:
        connection.execute(
            "CREATE TEMP TABLE staged (source_file VARCHAR, source_row BIGINT, "
            "phone_number VARCHAR, listed_at VARCHAR)"
        )
        read = stage_registry_files(connection, folder, "staged", REGISTRY_COLUMNS)
        staged = connection.execute("SELECT * FROM staged ORDER BY ALL").fetchall()
        malformed = connection.execute("SELECT * FROM staged_malformed ORDER BY ALL").fetchall()
    return read, staged, malformed


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("rows_before", [2, 25_000])  # in DuckDB's sample, or far past it
def test_a_malformed_registry_row_is_set_aside_and_the_others_read(
    landing: Path, compressed: bool, rows_before: int
) -> None:
    good = [f"+1212555{i % 100:04d},2026-01-01T00:00:00Z" for i in range(rows_before)]
    lines = [
        "phone_number,listed_at",
        *good,
        f"{SECRET_CALLER}",  # too few fields
        f'"{SECRET_CALLEE}","2026-01-01"x',  # broken quoting
        f"{SECRET_CALLEE},2026-01-01T00:00:00Z,{SECRET_CALLER}",  # too many
        "",  # a blank line is no row
        "+12125550199,2026-01-02T00:00:00Z",
    ]
    text = "\n".join(lines) + "\n"
    path = landing / ("dnc.csv.gz" if compressed else "dnc.csv")
    path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())
    read, staged, malformed = stage_registry(landing)
    assert read.unreadable == {} and read.malformed_rows == 3
    n = rows_before
    assert [row[2] for row in malformed] == ["too_few_fields", "unparsable_row", "too_many_fields"]
    assert [row[:2] for row in malformed] == [
        (path.name, n + 1),
        (path.name, n + 2),
        (path.name, n + 3),
    ]
    assert len(staged) == n + 1
    assert staged[-1] == (path.name, n + 4, "+12125550199", "2026-01-02T00:00:00Z")
    for _, _, _, detail in malformed:  # what the row held stays in the file
        assert SECRET_CALLER not in detail and SECRET_CALLEE not in detail


def test_a_wide_row_of_a_small_registry_file_is_not_taken_for_its_header(landing: Path) -> None:
    (landing / "dnc.csv").write_text(
        "phone_number,listed_at\n+12125550101,2026-01-01T00:00:00Z\n"
        f"{SECRET_CALLEE},2026-01-01T00:00:00Z,{SECRET_CALLER},x\n"
    )
    read, staged, malformed = stage_registry(landing)
    assert read.unreadable == {}
    assert staged == [("dnc.csv", 1, "+12125550101", "2026-01-01T00:00:00Z")]
    assert malformed == [("dnc.csv", 2, "too_many_fields", "4 fields, the header has 2")]


def test_a_well_formed_registry_file_is_read_as_before(landing: Path) -> None:
    (landing / "dnc.csv").write_text(
        "\ufeffListed_At,Phone_Number,extra\n2026-01-01T00:00:00Z,+12125550101,a\n"
        ',"",b\n\n2026-01-02T00:00:00Z,0044 20 7946 0999,c\n'
    )
    read, staged, malformed = stage_registry(landing)
    assert read == RegistryRead() and malformed == []
    assert staged == [
        ("dnc.csv", 1, "+12125550101", "2026-01-01T00:00:00Z"),
        ("dnc.csv", 2, None, None),
        ("dnc.csv", 3, "0044 20 7946 0999", "2026-01-02T00:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "dnc_2125550177.csv",
            "phone_number,listed_at\n+1212,caf\xe9\n".encode("latin-1"),
            "not UTF-8",
        ),
        ("dnc_2125550177.csv", gzip.compress(b"phone_number,listed_at\n", mtime=0), "not UTF-8"),
        ("dnc_2125550177.csv", b"", "empty file"),
        ("dnc_2125550177.csv", b"\n\n", "empty file"),
        ("dnc_2125550177.csv", b"number,listed_at\n+12125550101,x\n", "missing required column"),
        ("dnc_2125550177.csv.gz", b"phone_number,listed_at\n", "not readable"),
    ],
)
def test_an_unreadable_registry_file_is_reported_redacted_and_the_others_read(
    landing: Path, name: str, content: bytes, problem: str
) -> None:
    (landing / name).write_bytes(content)
    (landing / "good.csv").write_text("phone_number,listed_at\n+12125550101,2026-01-01\n")
    read, staged, malformed = stage_registry(landing)
    [(redacted, message)] = read.unreadable.items()
    assert redacted == name.replace("2125550177", "<redacted>")
    assert problem in message and "2125550177" not in message
    assert staged == [("good.csv", 1, "+12125550101", "2026-01-01")] and malformed == []
