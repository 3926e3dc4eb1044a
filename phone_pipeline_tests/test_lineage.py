"""Column lineage is derived from the SQL each stage runs (phone_pipeline/lineage.py), never
hand-kept: derivation on the stages' real SQL, refusals when it cannot be derived, and a real
run whose lineage metadata is what the SQL derives and covers every published column."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import dagster as dg
import pytest

from phone_pipeline import catalog, lineage
from phone_pipeline.domain.fairness import group_counts_sql
from phone_pipeline.domain.privacy import bounded_calls_sql, cell_figures_sql, cells_on_domain_sql
from phone_pipeline.domain.pseudonyms import PSEUDONYM_MAP_INPUTS
from phone_pipeline.domain.scrub import scrub_list_sql
from phone_pipeline.domain.suppression import suppress_small_cells_sql
from phone_pipeline.domain.validation import cleaned_calls_sql, quarantine_verdicts_sql
from phone_pipeline.lineage import LineageError, _derive_cached, derive_lineage
from phone_pipeline.sql import statement
from phone_pipeline.stages.aggregate import assets as aggregate_assets
from phone_pipeline.stages.aggregate.assets import (
    REGION_DOMAIN_SQL,
    aggregate_lineage,
    dp_aggregate_lineage,
    dp_calls_sql,
    staged_cells_sql,
)
from phone_pipeline.stages.aggregate.checks import (
    AGGREGATE_CELL_KEYS,
    CALL_VOLUME_BY_COUNTRY,
    CALL_VOLUME_HOURLY,
)
from phone_pipeline.stages.compliance.assets import (
    compliance_day_calls_sql,
    compliance_lineage,
    compliance_selects,
)
from phone_pipeline.stages.consent.assets import consent_lineage, consent_outcome_selects
from phone_pipeline.stages.consent.checks import CONSENT_EXCLUSIONS, CONSENTED_CALLS
from phone_pipeline.stages.fairness.assets import fairness_lineage
from phone_pipeline.stages.pseudonymize.assets import (
    pseudonymized_lineage,
    staged_pseudonymized_sql,
)
from phone_pipeline.stages.pseudonymize.checks import CALLS_PSEUDONYMIZED
from phone_pipeline.stages.risk.assets import risk_lineage
from phone_pipeline.stages.risk.checks import REIDENTIFICATION_RISK, SHAREABLE_PUBLICATIONS
from phone_pipeline.stages.scrub.assets import scrub_lineage
from phone_pipeline.stages.shareable.assets import publications_lineage
from phone_pipeline.stages.shared.assets import DerivedLineage, sql_lineage, table_metadata
from phone_pipeline.stages.validate.assets import validation_lineage, validation_selects
from phone_pipeline.stages.validate.checks import CALLS_QUARANTINE, CALLS_VALIDATED
from phone_pipeline_tests.pipeline_support import module_pipeline, step_failures

RAW = dg.AssetKey(["restricted", "raw_calls"])
CELLS = dg.AssetKey(["restricted", "cell_reference"])
EVENTS = dg.AssetKey(["restricted", "consent_events"])
DNC = dg.AssetKey(["restricted", "dnc_registry"])
FIGURES = ("calls", "answered_calls", "answered_rate", "total_duration_seconds",
           "median_duration_seconds")  # fmt: skip

# Published columns the SQL computes from no column, per table (what a graph cannot draw):
# checked to be exactly these, so that a column losing its source is seen.
NO_SOURCE_COLUMN: dict[str, set[str]] = {
    "call_volume_by_country": set(),
    "dnc_scrub_list": {"reason", "recorded_at"},  # a literal per rule; the run's instant
    "contact_pressure": {"call_date", "scope"},  # the partition's day; 'all' or 'campaign'
    "fairness_rates": {"call_date", "measure"},  # the partition's day; a literal per measure
    "reidentification_risk": {
        "call_date",
        "dataset",
        "measure",
        "parameter",
        "parameter_upper",
        "applicable",
        "recorded_at",
    },  # fmt: skip
    "shareable_publications": {"call_date", "recorded_at"},
}
# Published columns the SELECT does not fill (INSERT BY NAME leaves them NULL): the exact
# aggregates (the run below puts only call_volume_hourly under differential privacy).
NOT_FILLED: dict[str, set[str]] = {
    table.name: {"dp_epsilon"} for table in catalog.AGGREGATES if table.name != "call_volume_hourly"
}


def _validation() -> tuple[dict[str, str], str]:
    raw_sql = (
        "SELECT raw_calls.*, landing_files.load_order FROM raw_calls "
        "JOIN landing_files USING (content_hash) WHERE raw_calls.call_date = $call_date"
    )
    cleaned = cleaned_calls_sql(
        raw_sql,
        "day_numbers",
        callee_erased_sql="raw.callee_erased",
        internal_extension_sql="raw.internal_extension",
    )
    return validation_selects(raw_sql, cleaned), quarantine_verdicts_sql(cleaned)


def _exact_staged(keys: list[str], expressions: list[str]) -> dict[str, str]:
    return {
        "staged_cells": staged_cells_sql(keys, expressions),
        "staged_published": suppress_small_cells_sql("staged_cells", ["call_date", *keys], FIGURES),
    }


def _dp_hourly() -> DerivedLineage:
    keys = ["call_hour", "region"]
    domain_sql = statement(aggregate_assets.__file__, "hourly_key_domain")
    source_sql = dp_calls_sql(keys, keys, {"region": "dp_domain_region"})
    bounded = bounded_calls_sql(source_sql, keys)
    exact = cells_on_domain_sql(domain_sql, cell_figures_sql("dp_bounded_calls", keys), keys)
    return dp_aggregate_lineage(bounded, {"dp_domain_region": REGION_DOMAIN_SQL}, exact, keys)


def _compliance(table: str) -> DerivedLineage:
    return compliance_lineage(
        f"SELECT * FROM staged_{table}", compliance_selects(), compliance_day_calls_sql()
    )


def _scrub() -> DerivedLineage:
    listed = scrub_list_sql("calls_validated", "known_numbers", "consent_events", "dnc_registry")
    return scrub_lineage(f"SELECT *, $now AS recorded_at FROM ({listed})")


def _derived_by_asset() -> dict[dg.AssetKey, DerivedLineage]:
    """Each table asset's lineage from its stage's SQL builders (as the stage runs them)."""
    selects, verdicts = _validation()
    consent = consent_outcome_selects()
    keys = ["caller_country", "caller_number_type"]
    compliance = ("contact_pressure", "quiet_hours", "abandonment_rates", "dnc_call_findings")
    return {
        CALLS_VALIDATED: validation_lineage(selects, verdicts),
        CALLS_QUARANTINE: validation_lineage(selects, verdicts, "calls_quarantine"),
        CONSENTED_CALLS: consent_lineage(consent, "consented_calls"),
        CONSENT_EXCLUSIONS: consent_lineage(consent, "consent_exclusions"),
        CALLS_PSEUDONYMIZED: pseudonymized_lineage(staged_pseudonymized_sql()),
        # Every aggregate of the catalog, its cells keyed by the columns as they are (the
        # by-country cells name an unknown country or type 'unknown').
        **{
            key: aggregate_lineage(_exact_staged(list(cell_keys), list(cell_keys)))
            for key, cell_keys in AGGREGATE_CELL_KEYS.items()
        },
        CALL_VOLUME_BY_COUNTRY: aggregate_lineage(
            _exact_staged(keys, [f"coalesce({key}, 'unknown')" for key in keys])
        ),
        dg.AssetKey(["restricted", "dnc_scrub_list"]): _scrub(),
        **{dg.AssetKey(["compliance", table]): _compliance(table) for table in compliance},
        dg.AssetKey(["analytics", "fairness_rates"]): fairness_lineage(
            group_counts_sql("guessed_countries")
        ),
        REIDENTIFICATION_RISK: risk_lineage(),
        SHAREABLE_PUBLICATIONS: publications_lineage(),
        **{
            dg.AssetKey(["shareable", name]): sql_lineage(
                f"SELECT * FROM analytics.{name} WHERE call_date = $call_date",
                [dg.AssetKey(["analytics", name])],
            )
            for name in (table.copy_of for table in catalog.zone_tables(catalog.SHAREABLE))
        },
    }


# --- derivation on the stages' real SQL ----------------------------------------------------------


def test_pseudonyms_come_from_the_numbers_they_were_joined_on() -> None:
    deps = pseudonymized_lineage(staged_pseudonymized_sql()).deps_by_column
    assert deps["caller_pseudonym"] == [(CONSENTED_CALLS, "caller_e164")]
    assert deps["callee_pseudonym"] == [(CONSENTED_CALLS, "callee_e164")]
    assert deps["region"] == [(CELLS, "region"), (CONSENTED_CALLS, "caller_geo_region")]
    assert deps["call_hour"] == [(CONSENTED_CALLS, "started_at_utc")]


def test_every_day_shares_one_derivation_and_gets_the_same_lineage() -> None:
    """The day is a bound parameter, never pasted into a stage's SQL: every day runs the same
    text, derived once (sqlglot costs tenths of a second per statement, in every run)."""
    sql = staged_pseudonymized_sql()
    assert "$call_date" in sql and "DATE '" not in sql
    first = pseudonymized_lineage(sql)
    hits = _derive_cached.cache_info().hits
    second = pseudonymized_lineage(staged_pseudonymized_sql())
    assert _derive_cached.cache_info().hits == hits + 1
    assert second == first


def test_a_derivation_is_kept_for_the_next_process_and_only_for_the_same_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each run is a new process: what an earlier one derived is read back from the cache
    directory (0.7 s of every run), under a key of the statement, its tables and the code."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sql = staged_pseudonymized_sql()
    _derive_cached.cache_clear()
    first = pseudonymized_lineage(sql)
    kept = list((tmp_path / "phone_pipeline" / "lineage").iterdir())
    assert len(kept) == 1 and kept[0].suffix == ".json"
    assert "e164" in kept[0].read_text()  # column names only: no value is ever derived

    _derive_cached.cache_clear()  # as in a new process: sqlglot is not called again
    monkeypatch.setattr(lineage, "_derive", _must_not_derive)
    assert pseudonymized_lineage(sql) == first

    # Another statement is derived (and fails here), not answered from the kept one.
    _derive_cached.cache_clear()
    with pytest.raises(AssertionError, match="derived again"):
        pseudonymized_lineage(sql + " WHERE calls.caller_e164 IS NOT NULL")


def test_an_unreadable_or_unwritable_cache_is_derived_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sql = staged_pseudonymized_sql()
    _derive_cached.cache_clear()
    first = pseudonymized_lineage(sql)
    [kept] = (tmp_path / "phone_pipeline" / "lineage").iterdir()
    kept.write_text("{half a fi")
    _derive_cached.cache_clear()
    assert pseudonymized_lineage(sql) == first
    assert json.loads(kept.read_text())  # written whole again

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # not a directory
    _derive_cached.cache_clear()
    assert pseudonymized_lineage(sql) == first


def _must_not_derive(*args: object) -> NoReturn:
    raise AssertionError("derived again")


def test_parsed_numbers_come_from_the_raw_string_of_their_role() -> None:
    selects, verdicts = _validation()
    validated = validation_lineage(selects, verdicts).deps_by_column
    assert validated["caller_e164"] == [(RAW, "caller_number")]
    assert validated["callee_country"] == [(RAW, "callee_number")]
    assert validated["callee_erased"] == [(RAW, "callee_erased")]
    assert validated["started_at_utc"] == [(RAW, "started_at_utc")]
    quarantine = validation_lineage(selects, verdicts, "calls_quarantine").deps_by_column
    assert (RAW, "timestamp_status") in quarantine["reason"]
    assert (RAW, "internal_extension") in quarantine["detail"]
    assert quarantine["caller_number"] == [(RAW, "caller_number")]


def test_consent_decides_whether_a_callee_number_is_kept() -> None:
    consented = consent_lineage(consent_outcome_selects(), "consented_calls").deps_by_column
    assert consented["callee_e164"] == [(CALLS_VALIDATED, "callee_e164"), (EVENTS, "status")]
    assert consented["callee_identifiable"] == [(EVENTS, "status")]


def test_aggregate_figures_come_from_the_pseudonymised_rows() -> None:
    lineage = aggregate_lineage(_exact_staged(["call_hour", "region"], ["call_hour", "region"]))
    deps = lineage.deps_by_column
    assert deps["distinct_subscribers"] == [(CALLS_PSEUDONYMIZED, "caller_pseudonym")]
    assert (CALLS_PSEUDONYMIZED, "duration_seconds") in deps["total_duration_seconds"]
    # count(*) counts the rows of its cell: it depends on what forms the cell.
    cell = {(CALLS_PSEUDONYMIZED, key) for key in ("call_date", "call_hour", "region")}
    assert cell <= set(deps["calls"])
    # Exact figures set no dp_epsilon: it is not among the SELECT's columns at all.
    assert "dp_epsilon" not in deps and "dp_epsilon" not in lineage.no_source


def test_dp_keys_come_from_the_fixed_domain_not_the_calls() -> None:
    lineage = _dp_hourly()
    assert lineage.deps_by_column["region"] == [(CELLS, "region")]
    assert {"call_hour", "call_date", "dp_epsilon", "median_duration_seconds"} == set(
        lineage.no_source
    )
    assert (CALLS_PSEUDONYMIZED, "caller_pseudonym") in lineage.deps_by_column["calls"]


def test_compliance_findings_name_the_callee_they_were_computed_for() -> None:
    quiet = _compliance("quiet_hours").deps_by_column
    assert quiet["callee_pseudonym"] == [(CALLS_VALIDATED, "callee_e164")]
    # The window depends on the callee's time zones, which follow from the callee's number.
    assert quiet["window_status"] == [
        (CALLS_VALIDATED, "callee_e164"),
        (CALLS_VALIDATED, "started_at_utc"),
    ]
    assert _compliance("dnc_call_findings").deps_by_column["listed_since"] == [(DNC, "listed_at")]


def test_python_steps_are_traced_through_their_stated_inputs() -> None:
    fairness = fairness_lineage(group_counts_sql("guessed_countries"))
    # Unreadable callers are grouped by a country guessed from their raw string.
    assert (CALLS_QUARANTINE, "caller_number") in fairness.deps_by_column["country"]
    assert (CALL_VOLUME_HOURLY, "suppressed") in fairness.deps_by_column["flagged"]
    risk = risk_lineage().deps_by_column
    assert (CALLS_PSEUDONYMIZED, "caller_pseudonym") in risk["subscribers"]
    assert (REIDENTIFICATION_RISK, "value") in publications_lineage().deps_by_column["decision"]


# --- lineage that cannot be derived is an error ---------------------------------------------------


def test_a_table_no_asset_writes_is_an_error() -> None:
    selects, verdicts = _validation()
    # Without the statement of what computes the day's parsed numbers, their columns have no
    # source: derivation refuses instead of drawing a partial graph.
    with pytest.raises(LineageError, match="day_numbers"):
        derive_lineage(
            selects["calls_validated"],
            {"raw_calls": RAW, "landing_files": RAW},
            staged={"quarantine_verdicts": verdicts},
        )
    # A staging table whose SELECT is not given.
    with pytest.raises(LineageError, match="staged_published"):
        aggregate_lineage({"staged_cells": "SELECT 1 AS calls"})
    # A table the SQL reads that is not among the asset's deps.
    with pytest.raises(LineageError, match="cell_reference"):
        sql_lineage(
            staged_pseudonymized_sql(),
            [CONSENTED_CALLS],
            computed={"pseudonym_map": PSEUDONYM_MAP_INPUTS},
        )


def test_a_computed_value_not_joined_on_its_inputs_is_an_error() -> None:
    # A pseudonym read without joining the map on the number it is computed from.
    with pytest.raises(LineageError, match="pseudonym_map"):
        derive_lineage(
            "SELECT map.pseudonym AS caller_pseudonym FROM consented_calls AS calls "
            "CROSS JOIN pseudonym_map AS map",
            {"consented_calls": CONSENTED_CALLS},
            computed={"pseudonym_map": {"e164": (), "pseudonym": ("e164",)}},
        )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT no_such_column AS x FROM raw_calls",
        "SELECT r.no_such_column AS x FROM raw_calls AS r",
        "SELECT x FROM (SELECT call_id AS y FROM raw_calls)",
        "SELECT call_id FROM raw_calls WHERE",  # not SQL
    ],
)
def test_an_unresolvable_column_is_an_error(sql: str) -> None:
    with pytest.raises(LineageError):
        derive_lineage(sql, {"raw_calls": RAW})


def test_a_hand_written_dict_is_refused() -> None:
    with pytest.raises(TypeError, match="sql_lineage"):
        table_metadata(None, "raw_calls", None, {"call_id": [(RAW, "call_id")]})  # type: ignore[arg-type]


# --- a real run ------------------------------------------------------------------------------------


def test_run_lineage_is_what_the_sql_derives_and_covers_every_column(tmp_path: Path) -> None:
    """One small day (hourly figures under differential privacy, by-country exact): every
    materialised lineage equals the derivation from its stage's SQL (DP hourly: its own), and
    every column of every table published with lineage is derived, with a source column or
    as one computed from none."""
    with module_pipeline(tmp_path, dp_outputs="call_volume_hourly") as pipeline:
        pipeline.generate(rows=300)
        result = pipeline.run()
        assert not step_failures(result), step_failures(result)
        expected = {**_derived_by_asset(), CALL_VOLUME_HOURLY: _dp_hourly()}
        drawn_keys = set()
        for key in pipeline.instance.get_asset_keys():
            event = pipeline.instance.get_latest_materialization_event(key)
            metadata = event.asset_materialization.metadata if event else {}
            if "dagster/column_lineage" not in metadata:
                continue
            drawn_keys.add(key)
            drawn = {
                column: [(dep.asset_key, dep.column_name) for dep in deps]
                for column, deps in metadata["dagster/column_lineage"].value.deps_by_column.items()
            }
            derived = expected[key]
            assert drawn == derived.deps_by_column, key
            schema = {column.name for column in metadata["dagster/column_schema"].value.columns}
            without = NO_SOURCE_COLUMN.get(key.path[-1], set())
            if key == CALL_VOLUME_HOURLY:
                without = {"call_hour", "call_date", "dp_epsilon", "median_duration_seconds"}
            assert set(derived.no_source) == without, key
            assert set(drawn) | without | NOT_FILLED.get(key.path[-1], set()) == schema, key
        # Every table asset publishing rows from other assets drew its lineage.
        assert drawn_keys == set(expected)
