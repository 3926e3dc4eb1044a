"""SQL kept where a reviewer reads it, with its values bound, never pasted.

A statement (as opposed to a builder that composes table names) lives in a `.sql` file in the
`sql/` folder beside the module that runs it (`statement(__file__, "name")`). Values (a day, a
limit, a threshold) appear in it as named parameters (`$call_date`); `bound` picks, from the
values a stage has, exactly those its statement names (DuckDB refuses both a missing and a
surplus named parameter), so one `values` mapping serves every statement of a stage. Identifiers
(table and column names) cannot be parameters: they come from the catalog, never from data.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only in signatures: the catalog, which uses statement(), needs no DuckDB
    import duckdb

SqlValues = Mapping[str, object]

# String literals and comments, whichever starts first: a `$` or an apostrophe inside either is
# not SQL (an apostrophe in a comment must not open a "string" that hides a parameter).
_NOT_CODE = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)
_PARAMETER = re.compile(r"(?<![\w$])\$([A-Za-z_]\w*)")


class SqlParameterError(KeyError):
    """A statement names a parameter the caller gave no value for."""


def parameter_names(sql: str) -> set[str]:
    """The named parameters (`$name`) of `sql`, outside its string literals and comments."""
    return set(_PARAMETER.findall(_NOT_CODE.sub(" ", sql)))


def bound(sql: str, values: SqlValues | None = None) -> dict[str, object]:
    """The values `sql` names, by name; raises naming any parameter without a value."""
    names = parameter_names(sql)
    given = values or {}
    missing = sorted(names - set(given))
    if missing:
        raise SqlParameterError(f"SQL parameter(s) without a value: {', '.join(missing)}")
    return {name: given[name] for name in names}


def run(
    con: duckdb.DuckDBPyConnection, sql: str, values: SqlValues | None = None
) -> duckdb.DuckDBPyConnection:
    """`con.execute(sql)` with the values it names bound as parameters."""
    return con.execute(sql, bound(sql, values))


@functools.cache
def statement(beside: str, name: str) -> str:
    """The statement in `sql/<name>.sql` beside the module file `beside` (pass `__file__`)."""
    return (Path(beside).parent / "sql" / f"{name}.sql").read_text(encoding="utf-8").strip()
