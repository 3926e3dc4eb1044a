"""Column lineage read from the SQL a stage runs (sqlglot, DuckDB dialect), never hand-kept.

Given the SELECT that fills a table (the very string the stage executes), it answers, for each
output column, which columns of which assets its value is computed from. What it follows:
- tables written by an asset: a leaf, named by that asset;
- staging and temporary tables filled by SQL: replaced by the SELECT that filled them;
- tables filled in Python (a pseudonym map, parsed numbers): each column's inputs are declared
  once next to the function that computes them (`Computed`). Read through an equality join on
  an input (`JOIN pseudonym_map AS caller ON caller.e164 = calls.caller_e164`), the value depends
  on what it was joined on: the caller's number, not the map;
- `count(*)`: it counts the rows of a group, so it depends on the columns forming the group
  (GROUP BY keys, WHERE filter), not on no column at all.
- table functions (`pg_timezone_names()`, `generate_series`): their columns are named as DuckDB
  describes them, and come from no table;
- a Python step over the rows of a SELECT (noisy figures, fairness flags, risk measures):
  `python_step_sql` stands for it, from the inputs stated beside the function.
Projection lineage (sqlglot's): a join or filter condition is not a source of a column's value.
A table the SQL reads that is none of the above, or SQL sqlglot cannot resolve, raises
`LineageError`: lineage that cannot be derived is an error, never a silent gap.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from phone_pipeline import catalog
from phone_pipeline.disk_cache import cache_key, keep, read_kept

if TYPE_CHECKING:
    from sqlglot import exp

DIALECT = "duckdb"
# The database unqualified table names resolve to (the restricted file, attached zones by name).
_MAIN = "main"

AssetT = TypeVar("AssetT", bound=Hashable)
# Per column of a table filled in Python: the columns of the same table its value is computed
# from (empty: the column is an input, as given).
Computed = Mapping[str, Sequence[str]]
ColumnDeps = dict[str, list[tuple[AssetT, str]]]


class LineageError(ValueError):
    """A column's lineage cannot be derived from the SQL."""


@functools.cache
def table_schema(table: str) -> tuple[str, ...]:
    """The column names of a warehouse table (`name` or `zone.name`), from the table catalog
    (types play no part in lineage)."""
    try:
        return tuple(catalog.column_types(table))
    except KeyError:
        raise LineageError(f"no schema for table {table!r}") from None


def derive_lineage(
    select_sql: str,
    assets: Mapping[str, AssetT],
    staged: Mapping[str, str] | None = None,
    computed: Mapping[str, Computed] | None = None,
) -> ColumnDeps[AssetT]:
    """Per output column of `select_sql`, the (asset, column) pairs its value is computed from,
    in a stable order; an empty list for a column computed from no column (a constant, `now()`,
    a bound parameter, a fixed domain).

    `assets`: table name as the SQL writes it (`consented_calls`, `analytics.calls_pseudonymized`)
    -> the asset that writes it. `staged`: staging/temp table -> the SELECT that filled it.
    `computed`: table filled in Python -> its columns' inputs (`Computed`).

    Values are bound as parameters (`$call_date`), never pasted, so a statement is the same
    string every day: it is derived once per process, and kept on disk (`disk_cache`)
    for the next process (parsing costs tenths of a second, 0.7 s of every run).
    """
    derived = _derive_cached(
        select_sql,
        tuple(sorted(assets)),
        tuple((staged or {}).items()),
        tuple(
            (table, tuple((column, tuple(inputs)) for column, inputs in columns.items()))
            for table, columns in (computed or {}).items()
        ),
    )
    result: ColumnDeps[AssetT] = {}
    for column, sources in derived:
        deps = list(dict.fromkeys((assets[table], name) for table, name in sources))
        result[column] = sorted(deps, key=lambda pair: (str(pair[0]), pair[1]))
    return result


# (table, column) read by each output column: what derivation finds, before tables are named by
# the assets that write them.
_Derived = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@functools.lru_cache(maxsize=256)
def _derive_cached(
    select_sql: str,
    tables: tuple[str, ...],
    staged: tuple[tuple[str, str], ...],
    computed: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...],
) -> _Derived:
    # Kept between processes under everything a derivation depends on: the statement and its
    # arguments, the catalog's tables, this module's code and the versions of sqlglot and DuckDB
    # (which describes table functions).
    key = cache_key(select_sql, tables, staged, computed, _code_fingerprint())
    found = _kept(key)
    if found is not None:
        return found
    derived = _derive(
        select_sql,
        frozenset(tables),
        dict(staged),
        {
            table: {column: list(inputs) for column, inputs in columns}
            for table, columns in computed
        },
    )
    result = tuple((column, tuple(sources)) for column, sources in derived.items())
    keep(CACHE_KIND, key, result)
    return result


CACHE_KIND = "lineage"  # table and column names only


@functools.cache
def _code_fingerprint() -> str:
    import duckdb
    import sqlglot

    code = Path(__file__).read_bytes()
    return cache_key(code, catalog.TABLES, sqlglot.__version__, duckdb.__version__)


def _kept(key: str) -> _Derived | None:
    stored = read_kept(CACHE_KIND, key)
    try:
        return tuple(
            (column, tuple((table, name) for table, name in sources)) for column, sources in stored
        )
    except (TypeError, ValueError):  # none kept (None), or not what this code writes
        return None


def _derive(
    select_sql: str,
    tables: frozenset[str],
    staged: Mapping[str, str],
    computed: Mapping[str, Computed],
) -> dict[str, list[tuple[str, str]]]:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    try:
        tree = sqlglot.parse_one(select_sql, dialect=DIALECT)
        if staged:
            tree = exp.expand(
                tree,
                {name: sqlglot.parse_one(sql, dialect=DIALECT) for name, sql in staged.items()},
                dialect=DIALECT,
            )
        _name_table_function_columns(tree)
        schema = _schema_of(tree, tables, computed)
        tree = qualify(
            tree,
            dialect=DIALECT,
            schema=schema,
            db=_MAIN,
            # DuckDB's table functions have no schema here: columns are checked below instead.
            validate_qualify_columns=False,
            identify=False,
        )
        _check_columns_resolved(tree)
        _read_computed_through_joins(tree, computed)
        _count_rows_by_group(tree)
        scope = build_scope(tree)
        # trim_selects copies each step's SELECT for display labels: most of the time, unused.
        nodes = lineage(None, tree, schema, dialect=DIALECT, scope=scope, trim_selects=False)
    except SqlglotError as error:
        raise LineageError(f"cannot derive lineage: {error}") from error

    result: dict[str, list[tuple[str, str]]] = {}
    for column, node in nodes.items():
        deps: list[tuple[str, str]] = []
        for leaf in node.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            if _is_table_function(leaf.source):
                # Rows made by a function (DuckDB's catalog of zones, generate_series): its
                # arguments are in the SQL, and its columns come from no table.
                continue
            table = _table_name(leaf.source)
            if table not in tables:
                raise LineageError(
                    f"column {column!r} reads {table!r}, which no asset writes "
                    "(name the asset, the SQL that stages it, or what computes it)"
                )
            name = leaf.name.rsplit(".", 1)[-1]
            if name not in schema[leaf.source.db or _MAIN][leaf.source.name]:
                raise LineageError(
                    f"column {column!r} reads {table}.{name}, which has no such column"
                )
            if (table, name) not in deps:
                deps.append((table, name))
        result[column] = deps
    return result


def _name_table_function_columns(tree: exp.Expr) -> None:
    """Give each table function (`pg_timezone_names()`) its column names, as DuckDB describes
    them, so that its columns resolve like a table's."""
    import duckdb
    from sqlglot import exp

    for index, table in enumerate(list(tree.find_all(exp.Table))):
        if not _is_table_function(table):
            continue
        alias = table.args.get("alias")
        if alias is not None and alias.columns:
            continue
        try:
            with duckdb.connect() as con:
                described = con.execute(
                    f"DESCRIBE SELECT * FROM {table.this.sql(dialect=DIALECT)}"
                ).fetchall()
        except duckdb.Error as error:
            raise LineageError(
                f"cannot describe {table.this.sql(dialect=DIALECT)}: {error}"
            ) from error
        name = alias.name if alias is not None and alias.name else f"table_function_{index}"
        table.set(
            "alias",
            exp.TableAlias(
                this=exp.to_identifier(name),
                columns=[exp.to_identifier(row[0]) for row in described],
            ),
        )


def _check_columns_resolved(tree: exp.Expr) -> None:
    """Every column is resolved to a source, except in a scope reading a table function (whose
    columns sqlglot cannot know)."""
    from sqlglot import exp
    from sqlglot.optimizer.scope import traverse_scope

    for scope in traverse_scope(tree):
        if any(
            isinstance(source, exp.Table) and _is_table_function(source)
            for source in scope.sources.values()
        ):
            continue
        for column in scope.unqualified_columns:
            raise LineageError(f"cannot resolve column {column.sql(dialect=DIALECT)!r}")


def _is_table_function(table: exp.Table) -> bool:
    from sqlglot import exp

    return isinstance(table.this, exp.Func)


def _table_name(table: exp.Table) -> str:
    zone = table.catalog or table.db
    return table.name if not zone or zone == _MAIN else f"{zone}.{table.name}"


def _schema_of(
    tree: exp.Expr, tables: frozenset[str], computed: Mapping[str, Computed]
) -> dict[str, dict[str, dict[str, str]]]:
    """sqlglot's schema ({db: {table: {column: type}}}) of every base table `tree` reads."""
    from sqlglot import exp
    from sqlglot.optimizer.scope import traverse_scope

    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for scope in traverse_scope(tree):
        for source in scope.sources.values():
            if not isinstance(source, exp.Table) or source.name in ctes and not source.db:
                continue
            if _is_table_function(source):
                continue
            name = _table_name(source)
            if name in computed:
                columns = dict.fromkeys(computed[name], "UNKNOWN")
            elif name in tables:
                columns = dict.fromkeys(table_schema(name), "UNKNOWN")
            else:
                raise LineageError(
                    f"the SQL reads {name!r}, which no asset writes "
                    "(name the asset, the SQL that stages it, or what computes it)"
                )
            schema.setdefault(source.db or _MAIN, {})[source.name] = columns
    return schema


def _read_computed_through_joins(tree: exp.Expr, computed: Mapping[str, Computed]) -> None:
    """Rewrite each value read from a Python-computed table (joined directly, or through a
    subquery over it alone) into a function of what the join equates its inputs to. A value
    whose inputs are not all joined on is left: its lineage then ends in the computed table,
    which no asset writes, and derivation fails."""
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        for join in select.args.get("joins") or []:
            lookup = _lookup(join.this, computed)
            if lookup is None:
                continue
            alias, inputs, reads, keys = lookup
            joined_on = {
                keys[name]: other
                for name, other in _equated_columns(join.args.get("on"), alias).items()
                if name in keys
            }
            for column in list(select.find_all(exp.Column)):
                if column.table != alias or column.name not in reads:
                    continue
                if _inside(column, join) or column.find_ancestor(exp.Select) is not select:
                    continue
                used: list[str] = []
                if all(_computable(name, joined_on, inputs, used) for name in reads[column.name]):
                    given = [joined_on[name].copy() for name in used]
                    column.replace(
                        given[0]
                        if reads[column.name] == used and len(used) == 1
                        else exp.Anonymous(this="computed", expressions=given)
                    )


def _lookup(
    source: exp.Expr, computed: Mapping[str, Computed]
) -> tuple[str, Computed, dict[str, list[str]], dict[str, str]] | None:
    """For a joined source that is a computed table, or a subquery over one computed table
    alone: its alias, the table's inputs, per visible column the table columns its value reads,
    and per visible column that is a table column as is, that column."""
    from sqlglot import exp

    if isinstance(source, exp.Table) and _table_name(source) in computed:
        inputs = computed[_table_name(source)]
        return source.alias_or_name, inputs, {c: [c] for c in inputs}, {c: c for c in inputs}
    if not isinstance(source, exp.Subquery) or not isinstance(source.this, exp.Select):
        return None
    inner = source.this
    origin = inner.args.get("from_")
    if inner.args.get("joins") or origin is None or not isinstance(origin.this, exp.Table):
        return None
    if _table_name(origin.this) not in computed:
        return None
    inputs = computed[_table_name(origin.this)]
    reads: dict[str, list[str]] = {}
    keys: dict[str, str] = {}
    for projection in inner.selects:
        columns = [c.name for c in projection.find_all(exp.Column)]
        reads[projection.alias_or_name] = list(dict.fromkeys(columns))
        if isinstance(projection.unalias(), exp.Column):
            keys[projection.alias_or_name] = projection.unalias().name
    return source.alias_or_name, inputs, reads, keys


def _computable(
    name: str, joined_on: Mapping[str, exp.Expr], inputs: Computed, used: list[str], depth: int = 0
) -> bool:
    """Whether a computed table's column follows from the columns the join equates (recorded
    in `used`): it is one of them, or every input it is computed from is."""
    if name in joined_on:
        if name not in used:
            used.append(name)
        return True
    sources = inputs.get(name, ())
    return (
        bool(sources)
        and depth < len(inputs)
        and all(_computable(source, joined_on, inputs, used, depth + 1) for source in sources)
    )


def _equated_columns(condition: exp.Expr | None, alias: str) -> dict[str, exp.Expr]:
    """Columns of `alias` that the join condition equates to an expression of other tables."""
    from sqlglot import exp

    equated: dict[str, exp.Expr] = {}
    if condition is None:
        return equated
    for part in condition.flatten() if isinstance(condition, exp.And) else [condition]:
        if not isinstance(part, exp.EQ):
            continue
        for mine, other in ((part.this, part.expression), (part.expression, part.this)):
            if (
                isinstance(mine, exp.Column)
                and mine.table == alias
                and all(col.table != alias for col in other.find_all(exp.Column))
            ):
                equated[mine.name] = other
    return equated


def _inside(node: exp.Expr, ancestor: exp.Expr) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False


def _count_rows_by_group(tree: exp.Expr) -> None:
    """`count(*)` -> a count of the columns that form its group (GROUP BY keys, including
    DuckDB's GROUP BY ALL, and the WHERE filter), so that a row count has a lineage."""
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        counts = [
            count
            for count in select.find_all(exp.Count)
            if isinstance(count.this, exp.Star) and count.find_ancestor(exp.Select) is select
        ]
        if not counts:
            continue
        group = select.args.get("group")
        keys: list[exp.Expr] = []
        if group is not None and group.args.get("all"):
            keys = [
                projection.unalias()
                for projection in select.selects
                if not projection.find(exp.AggFunc)
            ]
        elif group is not None:
            keys = list(group.expressions)
        where = select.args.get("where")
        columns: list[exp.Expr] = []
        for key in [*keys, *([where.this] if where is not None else [])]:
            for column in key.find_all(exp.Column):
                if column.find_ancestor(exp.Select) is select and not any(
                    column == seen for seen in columns
                ):
                    columns.append(column)
        if columns:
            for count in counts:
                count.this.replace(exp.Tuple(expressions=[c.copy() for c in columns]))


def python_step_sql(
    source_sql: str, outputs: Mapping[str, Sequence[str]], passthrough: Sequence[str] = ()
) -> str:
    """A SELECT standing for a Python step over the rows of `source_sql`, for lineage only:
    `passthrough` columns as they are, each column of `outputs` computed from its inputs
    (a column with none is set from no column). Never executed."""
    computed = [
        f"computed({', '.join(inputs)}) AS {column}" if inputs else f"NULL AS {column}"
        for column, inputs in outputs.items()
    ]
    return f"SELECT {', '.join([*passthrough, *computed])} FROM ({source_sql}) AS python_step"


__all__ = [
    "Computed",
    "LineageError",
    "derive_lineage",
    "python_step_sql",
    "table_schema",
]
