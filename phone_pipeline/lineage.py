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
Projection lineage (sqlglot's): a join or filter condition is not a source of a column's value.
A table the SQL reads that is none of the above, or SQL sqlglot cannot resolve, raises
`LineageError`: lineage that cannot be derived is an error, never a silent gap.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

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


def table_schema(table: str) -> dict[str, str]:
    """Column name -> type of a warehouse table (`name` or `zone.name`): the one place this
    module reads schemas from."""
    from phone_pipeline.warehouse import ATTACHED_ZONE_TABLES, RESTRICTED_TABLES, ddl_column_names

    zone, _, name = table.rpartition(".")
    tables = ATTACHED_ZONE_TABLES[zone] if zone and zone != _MAIN else RESTRICTED_TABLES
    if name not in tables:
        raise LineageError(f"no schema for table {table!r}")
    return dict.fromkeys(ddl_column_names(tables[name]), "UNKNOWN")


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
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.lineage import lineage
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    staged = dict(staged or {})
    computed = dict(computed or {})
    try:
        tree = sqlglot.parse_one(select_sql, dialect=DIALECT)
        if staged:
            tree = exp.expand(
                tree,
                {name: sqlglot.parse_one(sql, dialect=DIALECT) for name, sql in staged.items()},
                dialect=DIALECT,
            )
        schema = _schema_of(tree, assets, computed)
        tree = qualify(
            tree,
            dialect=DIALECT,
            schema=schema,
            db=_MAIN,
            validate_qualify_columns=True,
            identify=False,
        )
        _read_computed_through_joins(tree, computed)
        _count_rows_by_group(tree)
        scope = build_scope(tree)
        nodes = lineage(None, tree, schema, dialect=DIALECT, scope=scope)
    except SqlglotError as error:
        raise LineageError(f"cannot derive lineage: {error}") from error

    result: ColumnDeps[AssetT] = {}
    for column, node in nodes.items():
        deps: list[tuple[AssetT, str]] = []
        for leaf in node.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            table = _table_name(leaf.source)
            if table not in assets:
                raise LineageError(
                    f"column {column!r} reads {table!r}, which no asset writes "
                    "(name the asset, the SQL that stages it, or what computes it)"
                )
            dep = (assets[table], leaf.name.rsplit(".", 1)[-1])
            if dep not in deps:
                deps.append(dep)
        result[column] = sorted(deps, key=lambda pair: (str(pair[0]), pair[1]))
    return result


def _table_name(table: exp.Table) -> str:
    zone = table.catalog or table.db
    return table.name if not zone or zone == _MAIN else f"{zone}.{table.name}"


def _schema_of(
    tree: exp.Expr, assets: Mapping[str, object], computed: Mapping[str, Computed]
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
            name = _table_name(source)
            if name in computed:
                columns = dict.fromkeys(computed[name], "UNKNOWN")
            elif name in assets:
                columns = table_schema(name)
            else:
                raise LineageError(
                    f"the SQL reads {name!r}, which no asset writes "
                    "(name the asset, the SQL that stages it, or what computes it)"
                )
            schema.setdefault(source.db or _MAIN, {})[source.name] = columns
    return schema


def _read_computed_through_joins(tree: exp.Expr, computed: Mapping[str, Computed]) -> None:
    """Rewrite each column of a Python-computed table into a function of its inputs, and each
    input equated in its join condition into what it is joined on."""
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        for join in select.args.get("joins") or []:
            table = join.this
            if not isinstance(table, exp.Table) or _table_name(table) not in computed:
                continue
            inputs = computed[_table_name(table)]
            alias = table.alias_or_name
            joined_on = _equated_columns(join.args.get("on"), alias)

            for column in list(select.find_all(exp.Column)):
                if column.table != alias or column.name not in inputs:
                    continue
                if _inside(column, join) or column.find_ancestor(exp.Select) is not select:
                    continue
                sources = inputs[column.name]
                given = [_given(name, alias, joined_on) for name in sources or [column.name]]
                column.replace(
                    exp.Anonymous(this="computed", expressions=given) if sources else given[0]
                )


def _given(name: str, alias: str, joined_on: Mapping[str, exp.Expr]) -> exp.Expr:
    """An input column of a computed table: what the join equates it to, or itself."""
    from sqlglot import exp

    return (joined_on.get(name) or exp.column(name, table=alias)).copy()


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


def published_lineage(
    select_sql: str,
    assets: Mapping[str, AssetT],
    staged: Mapping[str, str] | None = None,
    computed: Mapping[str, Computed] | None = None,
) -> ColumnDeps[AssetT]:
    """`derive_lineage` without the columns computed from no column: what a lineage graph
    can draw (an edge needs a source column)."""
    derived = derive_lineage(select_sql, assets, staged, computed)
    return {column: deps for column, deps in derived.items() if deps}


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
    "published_lineage",
    "python_step_sql",
    "table_schema",
]
