"""The table catalog: complete (every column described), consistent with the column names, every
table holding people covered by erasure and retention, every writer a real asset, and the README's
copy of its tables current. The catalog's schemas against a warehouse the pipeline made are
compared in test_pipeline.py (on its full run)."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from phone_pipeline import catalog
from phone_pipeline.catalog import PSEUDONYMS, People, Retention
from phone_pipeline.domain.retention import NUMBER_CACHE, RETENTION_TABLES
from phone_pipeline.stages.erasure.assets import ERASURE_KEEPS, number_columns
from phone_pipeline.stages.erasure.register import (
    erase_subjects,
    pseudonym_removals,
    pseudonym_tables,
)
from phone_pipeline.warehouse import attach_zone, ensure_tables, prepare_restricted

README = Path(__file__).resolve().parents[1] / "README.md"
NUMBER_NAMES = re.compile(r"(^|_)(number|e164)$")
PSEUDONYM_NAMES = re.compile(r"(^|_)pseudonym$")


def erasure_coverage() -> dict[str, str]:
    """Qualified table -> how erasure covers it, as the pipeline derives it."""
    covered = {table: "numbers erased" for table in number_columns()}
    covered |= {f"{zone}.{table}": "pseudonyms erased" for zone, table, _ in pseudonym_tables()}
    covered |= {
        table.qualified: f"kept on purpose: {table.erasure_exempt}"
        for table in catalog.TABLES
        if table.erasure_exempt
    }
    return covered


def retention_coverage() -> dict[str, str]:
    """Qualified table -> how retention covers it, as the pipeline derives it."""
    covered = {
        table: f"swept by day ({zone})" for zone, tables in RETENTION_TABLES.items()
        for table in tables
    }  # fmt: skip
    covered[NUMBER_CACHE] = "entries nothing kept refers to are swept"
    covered |= {
        table.qualified: f"{table.retention.value}: {table.kept_because}"
        for table in catalog.TABLES
        if table.retention in (Retention.REGISTRY, Retention.KEPT) and table.kept_because
    }
    return covered


def uncovered_people_tables() -> list[str]:
    erased, retained = erasure_coverage(), retention_coverage()
    problems = []
    for table in catalog.people_tables():
        if table.qualified not in erased:
            problems.append(f"{table.qualified} ({table.people.label}): not covered by erasure")
        if table.qualified not in retained:
            problems.append(f"{table.qualified} ({table.people.label}): not covered by retention")
    return problems


def test_every_table_holding_people_is_covered_by_erasure_and_retention() -> None:
    assert len(catalog.people_tables()) >= 15
    assert uncovered_people_tables() == []


def test_a_people_table_without_coverage_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guarantee above fails when coverage goes missing: a pseudonym table kept without a
    sweep, and a restricted table naming people by pseudonym (erasure removes pseudonyms only
    outside the restricted zone)."""
    quiet_hours = catalog.table(catalog.COMPLIANCE, "quiet_hours")
    unswept = catalog.TABLES[:-1] + (
        replace(quiet_hours, name="quiet_hours_archive", retention=Retention.KEPT),
    )
    restricted_pseudonyms = replace(
        catalog.table(catalog.ANALYTICS, "calls_pseudonymized"), zone=catalog.RESTRICTED
    )
    monkeypatch.setattr(catalog, "TABLES", unswept + (restricted_pseudonyms,))
    problems = uncovered_people_tables()
    assert "compliance.quiet_hours_archive (callee_pseudonyms): not covered by retention" in (
        problems
    )
    assert any(p.startswith("calls_pseudonymized (") and "erasure" in p for p in problems)


def test_people_flags_agree_with_column_names() -> None:
    """What a column holds about people is declared, and a column named like a number or a
    pseudonym cannot be declared as holding none (nor the other way round)."""
    wrong = []
    for table in catalog.TABLES:
        for column in table.columns:
            named_number = bool(NUMBER_NAMES.search(column.name))
            named_pseudonym = bool(PSEUDONYM_NAMES.search(column.name))
            if named_number != bool(column.people & People.NUMBERS):
                wrong.append(f"{table.qualified}.{column.name}")
            if named_pseudonym != bool(column.people & PSEUDONYMS):
                wrong.append(f"{table.qualified}.{column.name}")
    assert wrong == []


def test_no_number_outside_the_restricted_zone() -> None:
    assert [
        t.qualified for t in catalog.people_tables(People.NUMBERS) if t.zone != "restricted"
    ] == []


def test_every_column_and_table_is_described() -> None:
    assert len(catalog.TABLES) == len({(t.zone, t.name) for t in catalog.TABLES})
    for table in catalog.TABLES:
        assert table.description.strip(), table.qualified
        assert table.writers, table.qualified
        for column in table.columns:
            assert column.description.strip(), f"{table.qualified}.{column.name}"
        if table.retention in (Retention.REGISTRY, Retention.KEPT):
            assert table.kept_because.strip(), table.qualified


def test_swept_tables_are_day_partitioned_and_shareable_tables_copy_analytics() -> None:
    for table in catalog.TABLES:
        if table.retention in catalog.SWEPT:
            assert table.partition == "call_date", table.qualified
        if table.zone == catalog.SHAREABLE:
            source = catalog.table(catalog.ANALYTICS, table.copy_of or "")
            assert (table.columns, table.primary_key) == (source.columns, source.primary_key)
            assert table.retention is source.retention
        else:
            assert table.copy_of is None


def test_every_writer_is_an_asset_of_the_definitions() -> None:
    from phone_pipeline.definitions import defs

    keys = {tuple(key.path) for key in defs.resolve_asset_graph().get_all_asset_keys()}
    missing = [
        f"{table.qualified}: {'/'.join(writer)}"
        for table in catalog.TABLES
        for writer in table.writers
        if writer not in keys
    ]
    assert missing == []


def test_column_types_name_tables_as_a_restricted_connection_does() -> None:
    assert catalog.column_types("raw_calls")["caller_number"] == "VARCHAR"
    assert catalog.column_types("main.raw_calls") == catalog.column_types("raw_calls")
    assert catalog.column_types("analytics.calls_pseudonymized")["call_hour"] == "TIMESTAMPTZ"
    assert catalog.column_types("shareable.call_volume_hourly") == (
        catalog.column_types("analytics.call_volume_hourly")
    )


def _value(kind: str, text: str) -> object:
    return {
        "VARCHAR": text,
        "BIGINT": 1,
        "INTEGER": 1,
        "DOUBLE": 0.5,
        "BOOLEAN": False,
        "DATE": dt.date(2026, 11, 1),
        "TIMESTAMPTZ": dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC),
        "VARCHAR[]": [text],
        "DATE[]": [dt.date(2026, 11, 1)],
    }[kind]


def _fill(con: duckdb.DuckDBPyConnection, table: catalog.Table, number: str, mark: str) -> None:
    """One row in which every column that holds people holds the subject (as a number or as a
    pseudonym), and every other column a value of its type."""
    values = []
    for column in table.columns:
        if column.people & People.NUMBERS:
            values.append(number)
        elif column.people & PSEUDONYMS:
            values.append(mark)
        else:
            values.append(_value(column.type, f"{column.name}-value"))
    placeholders = ", ".join("?" for _ in values)
    con.execute(f"INSERT INTO {table.qualified} VALUES ({placeholders})", values)


def test_erasure_removes_the_subject_from_every_table_of_the_catalog(tmp_path: Path) -> None:
    """Every table of every zone, one row naming the subject in each people column: after the
    erasure, only the tables the catalog keeps on purpose still name them."""
    number, mark = "+14155550123", "v1:" + "ab" * 16
    with duckdb.connect(str(tmp_path / "restricted.duckdb")) as con:
        prepare_restricted(con)
        for zone in (catalog.ANALYTICS, catalog.COMPLIANCE, catalog.SHAREABLE):
            attach_zone(con, zone, tmp_path / f"{zone}.duckdb")
        ensure_tables(con, None, catalog.ddl_by_table(catalog.RESTRICTED))
        for table in catalog.people_tables():
            _fill(con, table, number, mark)
        erase_subjects(con, [number], "US", {mark})
        left = {}
        for table in catalog.people_tables():
            people = [c.name for c in table.columns if c.people]
            naming = " OR ".join(f"{column} IN (?, ?)" for column in people)
            rows = con.execute(
                f"SELECT count(*) FROM {table.qualified} WHERE {naming}",
                [number, mark] * len(people),
            ).fetchone()[0]
            if rows:
                left[table.qualified] = rows
    kept = {t.qualified for t in catalog.TABLES if t.erasure_exempt}
    assert kept == {*ERASURE_KEEPS, "erasure_register"}
    assert set(left) == kept


def test_erasure_removal_sql_covers_every_pseudonym_table() -> None:
    removed = {(zone, table) for zone, table, _, _ in pseudonym_removals("(SELECT 1)")}
    holding = {
        (table.zone, table.name)
        for table in catalog.people_tables(People.CALLER_PSEUDONYMS | People.CALLEE_PSEUDONYMS)
        if table.zone != catalog.RESTRICTED
    }
    assert removed == holding


def test_readme_tables_are_the_catalog() -> None:
    """The README's copies are generated: `python -m phone_pipeline.catalog --update-readme
    README.md` rewrites them."""
    text = README.read_text(encoding="utf-8")
    for name, block in catalog.readme_blocks().items():
        assert catalog.readme_block(text, name) == block, f"README block {name} is stale"


def test_update_readme_rewrites_a_stale_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- catalog:tables begin (generated) -->\n| old |\n<!-- catalog:tables end -->\n"
        "<!-- catalog:retention begin -->\n<!-- catalog:retention end -->\nend\n",
        encoding="utf-8",
    )
    subprocess.run(
        [sys.executable, "-m", "phone_pipeline.catalog", "--update-readme", str(readme)],
        check=True,
    )
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("end\n") and "| old |" not in text
    assert catalog.readme_block(text, "tables") == catalog.render_markdown()
    assert catalog.readme_block(text, "retention") == catalog.render_retention_markdown()


def test_the_catalog_prints_from_the_command_line() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "phone_pipeline.catalog"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for table in catalog.TABLES:
        assert f"{table.zone}.{table.name}: {table.description}" in printed
    assert "caller_pseudonym" in printed and "written by: analytics/calls_pseudonymized" in printed
    markdown = subprocess.run(
        [sys.executable, "-m", "phone_pipeline.catalog", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert catalog.render_markdown() in markdown


def test_the_catalog_imports_no_dagster_and_no_duckdb() -> None:
    """Plain Python: the domain and the lineage derivation read it without Dagster."""
    probe = (
        "import sys, phone_pipeline.catalog as c; c.render_retention_markdown(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'duckdb')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_every_aggregate_table_is_declared_with_its_cell_keys() -> None:
    """Row accounting checks that every published row sits in one cell of each aggregate, and
    differential privacy can cover each: both follow AGGREGATE_CELL_KEYS, so an aggregate table
    missing from it would be published unaccounted."""
    from phone_pipeline.stages.aggregate.checks import AGGREGATE_CELL_KEYS

    aggregate_tables = {
        table.writer
        for table in catalog.zone_tables(catalog.ANALYTICS)
        if "suppressed" in table.column_names
    }
    assert aggregate_tables == {tuple(key.path) for key in AGGREGATE_CELL_KEYS}
    for key, keys in AGGREGATE_CELL_KEYS.items():
        assert set(keys) <= set(catalog.lookup(".".join(key.path)).column_names)
