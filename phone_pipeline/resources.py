"""Resources: where the warehouse is, the pipeline's rules, the pseudonym key, Great Expectations."""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from phone_pipeline.domain.pseudonyms import (
    Keyring,
    Pseudonymizer,
    build_keyring,
    check_key_file_location,
)
from phone_pipeline.domain.risk import RiskLimits
from phone_pipeline.settings import SETTING, Settings


def _declared(name: str) -> Any:
    """A config field whose default and description are setting `name`'s declaration
    (settings.py): the resource repeats no default."""
    setting = SETTING[name]
    return Field(default=setting.default, description=f"{setting.description} ({setting.env})")


class PipelineConfig(dg.ConfigurableResource):
    """The data contract's knobs: where files land and the thresholds the gates enforce."""

    data_home: str
    default_region: str = _declared("default_region")
    min_cell_size: int = _declared("min_cell_size")
    max_quarantine_share: float = _declared("max_quarantine_share")
    max_call_seconds: int = _declared("max_call_seconds")
    partitions_start_date: str = _declared("partitions_start_date")
    retention_restricted_days: int = _declared("retention_restricted_days")
    retention_pseudonymized_days: int = _declared("retention_pseudonymized_days")
    retention_aggregates_days: int = _declared("retention_aggregates_days")
    # The shareable zone's risk gate: k (0: min_cell_size), limits, unicity sample size.
    risk_k: int = _declared("risk_k")
    max_share_below_k: float = _declared("max_share_below_k")
    max_unicity: float = _declared("max_unicity")
    unicity_sample_size: int = _declared("unicity_sample_size")

    # Differential privacy of the aggregates (domain/privacy.py); empty outputs: off.
    dp_outputs: str = _declared("dp_outputs")
    dp_epsilon: float = _declared("dp_epsilon")
    dp_budget_per_day: float = _declared("dp_budget_per_day")
    dp_max_calls_per_cell: int = _declared("dp_max_calls_per_cell")
    dp_max_cells_per_subscriber: int = _declared("dp_max_cells_per_subscriber")
    dp_max_duration_seconds: int = _declared("dp_max_duration_seconds")

    @property
    def risk_limits(self) -> RiskLimits:
        return RiskLimits(
            k=self.risk_k or self.min_cell_size,
            max_share_below_k=self.max_share_below_k,
            max_unicity=self.max_unicity,
        )

    @property
    def landing_calls(self) -> Path:
        return Path(self.data_home) / "landing" / "calls"

    @property
    def landing_consent(self) -> Path:
        return Path(self.data_home) / "landing" / "consent"

    @property
    def cells_file(self) -> Path:
        return Path(self.data_home) / "landing" / "cells.csv"

    @property
    def landing_dnc(self) -> Path:
        return Path(self.data_home) / "landing" / "dnc"

    @property
    def landing_erasure(self) -> Path:
        return Path(self.data_home) / "landing" / "erasure"

    @property
    def restricted_db(self) -> Path:
        """The restricted zone file (as `Settings.restricted_db`): what was ingested, and keys."""
        return Path(self.data_home) / "warehouse" / "restricted.duckdb"


class PseudonymKeyResource(dg.ConfigurableResource):
    """The HMAC keys (from the environment through `dg.EnvVar`) by version, and the primary one.

    Configured by several keys (`1:<hex>,2:<hex>`), a key file outside the data home and the
    repository (same format), and/or a single key with its version; the highest version is primary
    unless the primary version says otherwise (variables: settings.py). Keys are decoded only when
    asked for, and error messages never hold them.
    """

    key: str = _declared("key")
    key_version: int = _declared("key_version")
    versioned_keys: str = _declared("versioned_keys")  # not `keys`: a resource is also a mapping
    key_file: str = _declared("key_file")
    primary_version: int = _declared("primary_version")
    # A key file inside these folders is refused (the data home, the repository).
    forbidden_key_folders: list[str] = []
    # The restricted zone file whose recorded key fingerprints the keys must match ("": no check).
    warehouse_db: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """At run start, before any step writes: a weak key, or a key other than the one the
        warehouse was written with (outside a rotation), fails the run with the reason."""
        if self.warehouse_db:
            from phone_pipeline.key_check import verify_warehouse_key

            verify_warehouse_key(Path(self.warehouse_db), self.keyring())

    def keyring(self) -> Keyring:
        file_text = None
        if self.key_file:
            path = check_key_file_location(
                Path(self.key_file), [Path(folder) for folder in self.forbidden_key_folders]
            )
            file_text = path.read_text()
        return build_keyring(
            self.key or None,
            self.key_version,
            self.versioned_keys or None,
            file_text,
            self.primary_version,
        )

    def pseudonymizer(self) -> Pseudonymizer:
        """The primary key's: every new pseudonym is made with it."""
        return self.keyring().primary

    def pseudonymizers(self) -> dict[int, Pseudonymizer]:
        """Every configured key by version (the erasure register is kept under each)."""
        return self.keyring().pseudonymizers()


# Result format that carries counts only: GX's BASIC format copies unexpected values (phone
# numbers) into results, and those results end up in Dagster's event log.
COUNTS_ONLY_RESULT_FORMAT = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "exclude_unexpected_values": True,
    "include_unexpected_rows": False,
}
_NUMERIC_RESULT_KEYS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count")
# Only these expectations observe a count; others (max, mean, ...) observe a value of the data.
_COUNT_OBSERVING = (
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
    "expect_table_column_count_to_be_between",
    "expect_table_column_count_to_equal",
    "expect_column_unique_value_count_to_be_between",
)


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    counts: dict[str, float] = field(default_factory=dict)


@dataclass
class SuiteOutcome:
    suite: str
    success: bool
    rows: int
    expectations: list[ExpectationOutcome]

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [outcome for outcome in self.expectations if not outcome.success]


_gx_lock = threading.Lock()
_gx_batch_definition: Any = None


def _batch_definition() -> Any:
    """One ephemeral GX context per process: building one costs seconds, and file mode writes a
    `gx/` folder. Imported lazily because importing GX costs about 2-3 s."""
    global _gx_batch_definition
    with _gx_lock:
        if _gx_batch_definition is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            source = context.data_sources.add_pandas("phone_pipeline")
            asset = source.add_dataframe_asset("stage_frames")
            _gx_batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        return _gx_batch_definition


class GreatExpectationsResource(dg.ConfigurableResource):
    """Runs a Great Expectations 1.x suite on a DataFrame and returns counts, never values.

    `dagster-ge` only supports GX < 1.0, hence this small resource of our own.
    """

    def validate(
        self, suite_name: str, frame: pd.DataFrame, expectations: list[Any]
    ) -> SuiteOutcome:
        import great_expectations as gx

        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(
            name=f"{suite_name}-{uuid.uuid4().hex[:8]}", expectations=expectations
        )
        result = batch.validate(suite, result_format=COUNTS_ONLY_RESULT_FORMAT)
        outcomes = []
        for item in result.results:
            config = item.expectation_config
            counts = {
                key: float(value)
                for key, value in (item.result or {}).items()
                if key in _NUMERIC_RESULT_KEYS and isinstance(value, int | float)
            }
            observed = (item.result or {}).get("observed_value")
            if config.type in _COUNT_OBSERVING and isinstance(observed, int | float):
                counts["observed_value"] = float(observed)
            outcomes.append(
                ExpectationOutcome(
                    expectation=config.type,
                    column=config.kwargs.get("column"),
                    success=bool(item.success),
                    counts=counts,
                )
            )
        return SuiteOutcome(
            suite=suite_name, success=bool(result.success), rows=len(frame), expectations=outcomes
        )


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pseudonym_key_resource(settings: Settings) -> PseudonymKeyResource:
    """Secrets as `dg.EnvVar` (never values in config); the single key stays required unless
    several keys or a key file are configured."""
    env = os.environ
    key, version, keys, key_file, primary = (
        SETTING[name]
        for name in ("key", "key_version", "versioned_keys", "key_file", "primary_version")
    )
    several = bool(env.get(keys.env) or env.get(key_file.env))
    options: dict[str, Any] = {
        "key_file": env.get(key_file.env, key_file.default),
        "forbidden_key_folders": [str(settings.home), str(PROJECT_ROOT)],
        "warehouse_db": str(settings.restricted_db),
    }
    if env.get(key.env) or not several:
        options["key"] = dg.EnvVar(key.env)
    if env.get(version.env):
        options["key_version"] = dg.EnvVar.int(version.env)
    if env.get(keys.env):
        options["versioned_keys"] = dg.EnvVar(keys.env)
    if env.get(primary.env):
        options["primary_version"] = dg.EnvVar.int(primary.env)
    return PseudonymKeyResource(**options)


def _from_settings(
    resource: type[dg.ConfigurableResource], settings: Settings, **overrides: Any
) -> Any:
    """A config resource filled from the settings of the same names (and `overrides`); a field
    with no such setting fails here rather than silently keeping its default."""
    unknown = set(resource.model_fields) - {f.name for f in fields(settings)} - set(overrides)
    if unknown:
        raise TypeError(f"{resource.__name__} fields without a setting: {sorted(unknown)}")
    values = {name: getattr(settings, name) for name in set(resource.model_fields) - set(overrides)}
    return resource(**{**values, **overrides})


def build_resources(settings: Settings) -> dict[str, Any]:
    """Resources for a deployment described by `settings` (the Definitions and the tests use it)."""
    # One resource per zone file; stages attach the others to a restricted connection.
    zone_files = {
        "restricted_warehouse": settings.restricted_db,
        "analytics_warehouse": settings.analytics_db,
        "compliance_warehouse": settings.compliance_db,
        "shareable_warehouse": settings.shareable_db,
    }
    return {
        **{
            name: DuckDBResource(
                database=str(path),
                connection_config={"memory_limit": settings.duckdb_memory_limit},
            )
            for name, path in zone_files.items()
        },
        "pipeline_config": _from_settings(
            PipelineConfig, settings, data_home=str(settings.home), risk_k=settings.risk_k or 0
        ),
        "pseudonym_key": pseudonym_key_resource(settings),
        "gx": GreatExpectationsResource(),
        "contact_rules": _from_settings(ContactRules, settings),
    }


class ContactRules(dg.ConfigurableResource):
    """Responsible-contact rules (defaults: settings.py): frequency caps, the permitted window
    in the callee's local time, the abandonment limit, and when the fairness report flags a group."""

    # More than max_calls_24h / max_calls_7d calls to one callee is flagged; the window is local
    # time, start inclusive, end exclusive; a campaign-day strictly above the rate is a finding.
    max_calls_24h: int = _declared("max_calls_24h")
    max_calls_7d: int = _declared("max_calls_7d")
    permitted_window: str = _declared("permitted_window")
    max_abandonment_rate: float = _declared("max_abandonment_rate")
    fairness_ratio: float = _declared("fairness_ratio")
    fairness_min_group_rows: int = _declared("fairness_min_group_rows")
