"""SQL statements in `.sql` files, values bound as named parameters (phone_pipeline/sql.py)."""

from __future__ import annotations

import ast
import datetime as dt
import fnmatch
import tomllib
from pathlib import Path

import duckdb
import pytest

import phone_pipeline
from phone_pipeline.sql import SqlParameterError, bound, parameter_names, run, statement

PACKAGE = Path(phone_pipeline.__file__).parent
PROJECT = PACKAGE.parent


def test_bound_gives_a_statement_exactly_the_values_it_names() -> None:
    sql = "SELECT * FROM t WHERE call_date = $call_date AND note <> '$not_a_parameter'"
    assert parameter_names(sql) == {"call_date"}
    day = dt.date(2026, 11, 1)
    assert bound(sql, {"call_date": day, "limit": 5}) == {"call_date": day}
    with pytest.raises(SqlParameterError, match="call_date"):
        bound(sql, {"limit": 5})
    commented = (
        "-- the day's rows ($not_a_parameter either)\n"
        "SELECT '--' AS dashes /* it's $none */ FROM t WHERE call_date = $call_date -- it's\n"
        "AND n < $limit"
    )
    assert parameter_names(commented) == {"call_date", "limit"}


def test_run_binds_the_values_duckdb_would_refuse_in_surplus() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT DATE '2026-11-01' AS call_date, 1 AS n")
    values = {"call_date": dt.date(2026, 11, 1), "unused": 1}
    with pytest.raises(duckdb.InvalidInputException):  # what `run` spares its callers
        con.execute("SELECT sum(n) FROM t WHERE call_date = $call_date", values)
    assert run(con, "SELECT sum(n) FROM t WHERE call_date = $call_date", values).fetchone() == (1,)


def _statement_calls() -> list[tuple[Path, str]]:
    """(module, name) of every `statement(__file__, "<name>")` in the package."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "statement"
                and len(node.args) == 2
                and isinstance(node.args[1], ast.Constant)
            ):
                found.append((path, node.args[1].value))
    return found


def test_every_sql_file_is_run_and_every_statement_named_exists() -> None:
    calls = _statement_calls()
    named = {(path.parent / "sql" / f"{name}.sql").resolve() for path, name in calls}
    files = {path.resolve() for path in PACKAGE.rglob("sql/*.sql")}
    assert files, "no SQL statement files found"
    assert not files - named, f"SQL files nothing runs: {sorted(files - named)}"
    assert not named - files, f"statements without a file: {sorted(named - files)}"
    for path, name in calls:
        assert statement(str(path), name)


def test_every_sql_file_ships_in_the_package() -> None:
    config = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    for path in PACKAGE.rglob("sql/*.sql"):
        relative = path.relative_to(path.parent.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


_TYPED_LITERAL = ("DATE '", "TIMESTAMP '", "TIMESTAMPTZ '", "INTERVAL '")


def _pasted_literals(path: Path, root: Path = PROJECT) -> list[str]:
    """f-strings of `path` that paste a value into a typed SQL literal (`DATE '{day}'`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.JoinedStr):
            continue
        for before, after in zip(node.values, node.values[1:], strict=False):
            if (
                isinstance(before, ast.Constant)
                and isinstance(after, ast.FormattedValue)
                and str(before.value).upper().endswith(_TYPED_LITERAL)
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_date_or_time_is_pasted_into_sql() -> None:
    """Days, times and intervals reach DuckDB as bound parameters, in the product, the
    benchmark and the scripts alike."""
    sources = [
        path
        for folder in ("phone_pipeline", "phone_pipeline_bench", "benchmarks", "scripts")
        for path in (PROJECT / folder).rglob("*.py")
    ]
    assert len(sources) > 50
    pasted = [place for path in sources for place in _pasted_literals(path)]
    assert not pasted, f"values pasted into SQL literals: {pasted}"


def test_the_pasting_detector_finds_a_pasted_day(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("day = 1\nsql = f\"SELECT * FROM t WHERE call_date = DATE '{day}'\"\n")
    assert _pasted_literals(probe, tmp_path) == ["probe.py:2"]
