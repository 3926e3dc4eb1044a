"""Shared fixtures: a data home in a temporary folder, the pipeline's resources pointed at it, and a
way to materialise one day partition through Dagster exactly as the job does."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from phone_pipeline.settings import Settings, load_settings


def _definitions_of_an_empty_home() -> dg.Definitions:
    """The definitions read their settings once, on import (the first partition among them):
    from an empty data home, never the developer's `./data`, whose `settings.toml` a demo wrote,
    so that every test sees the declared defaults."""
    with tempfile.TemporaryDirectory() as home, pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHONE_PIPELINE_HOME", home)
        from phone_pipeline.definitions import defs

        return defs


defs = _definitions_of_an_empty_home()

from phone_pipeline.resources import build_resources  # noqa: E402
from phone_pipeline_synthetic import GenerationSummary, generate  # noqa: E402

# A fixed random 256-bit test key (a pattern such as "7f" * 32 is refused as weak); real keys
# come from the environment.
TEST_KEY = "966bbd910326aabd2dd94c1961cc5a336658b453a87304e1b819724b4edada4c"
# Tests of the other stages publish every dataset to the shareable zone, so that every check of a
# run passes; test_shareable.py sets the re-identification risk limits it tests explicitly.
LENIENT_RISK_LIMITS = {"PHONE_PIPELINE_MAX_SHARE_BELOW_K": "1", "PHONE_PIPELINE_MAX_UNICITY": "1"}
DAY = dt.date(2026, 11, 1)
# The tests' fixed days age out of any retention as real time passes: tests keep every partition
# unless they test retention itself (test_retention.py sets its own).
NO_RETENTION = {
    "retention_restricted_days": 0,
    "retention_pseudonymized_days": 0,
    "retention_aggregates_days": 0,
}


# The files that take longest, longest first (CPU seconds of each alone, measured December 2026;
# test_dagster_dev mostly waits for its server, so it goes first). pytest-xdist hands out whole
# files in collection order (scripts/test.sh turns its own reordering by test count off, which
# put these few-test files last): started first, they end while the other worker still has
# short files to take, instead of one of them running alone at the end.
LONGEST_FILES = (
    "test_dagster_dev.py",  # about 45 s of CPU in the test process, over 2 minutes of waiting
    "test_cli.py",  # 155
    "test_run_recovery.py",  # 150
    "test_pipeline.py",  # 104
    "test_backfill.py",  # 74
    "test_erasure.py",  # 66
    "test_dg_cli.py",  # about 35 in its dg processes, with a minute of waiting for them
    "test_bench.py",  # 50
    "test_contact_contract.py",  # 45
    "test_retention.py",  # 44
    "test_gates.py",  # 43
    "test_rotation.py",  # 43
    "test_contact_compliance.py",  # 42
    "test_gate_failure_record.py",  # 41
    "test_shareable.py",  # 41
    "test_privacy_reruns.py",  # 38
    "test_privacy_leaks.py",  # 38
    "test_registry_files.py",  # 37
    "test_key_check.py",  # 32
    "test_erasure_zones.py",  # 32
    "test_scrub_list.py",  # 30
    "test_sensor.py",  # 30
    "test_disguised_numbers_pipeline.py",  # 29
    "test_ui_signals.py",  # 25
    "test_differential_privacy.py",  # 25
    "test_parse_worker.py",  # 24
    "test_example_numbers_pipeline.py",  # 23
    "test_record.py",  # 22
    "test_lineage.py",  # 21
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The LONGEST_FILES first, in that order; every other file after them as collected."""
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    here = Path(__file__).parent
    # Stable: the tests of a file keep their order.
    items.sort(key=lambda item: rank.get(item.path.relative_to(here).as_posix(), len(rank)))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("PHONE_PIPELINE_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name, value in LENIENT_RISK_LIMITS.items():
        monkeypatch.setenv(name, value)
    configured = replace(load_settings(), home=tmp_path / "data", **NO_RETENTION)
    configured.ensure_folders()
    return configured


@dataclass
class Pipeline:
    settings: Settings
    instance: dg.DagsterInstance

    def run(
        self, partition: dt.date | str = DAY, raise_on_error: bool = False
    ) -> dg.ExecuteInProcessResult:
        """One run of the `call_pipeline` job for a partition, with every blocking check."""
        job = defs.resolve_job_def("call_pipeline")
        key = partition.isoformat() if isinstance(partition, dt.date) else partition
        return job.execute_in_process(
            partition_key=key,
            instance=self.instance,
            resources=build_resources(self.settings),
            raise_on_error=raise_on_error,
        )

    def generate(self, **kwargs) -> GenerationSummary:
        options = {"rows": 2_000, "days": 1, "seed": 7, "start_date": DAY, **kwargs}
        return generate(self.settings.home, **options)

    def analytics(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.settings.analytics_db), read_only=True)

    def restricted(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.settings.restricted_db), read_only=True)


@contextmanager
def dagster_instance(persistent: bool = False) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance the pipeline tests run in.

    In memory by default: a real instance (runs, event log, asset and check records, sensors),
    whose run of the whole job takes about 40% less time than one in SQLite files, which opens a
    database engine and commits to disk for every event. `persistent=True` for a test that reads
    the instance's files (compute logs, storage) or hands the instance to another process.
    """
    if persistent:
        with dg.instance_for_test() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[Pipeline]:
    with dagster_instance() as instance:
        yield Pipeline(settings=settings, instance=instance)


@pytest.fixture
def persistent_pipeline(settings: Settings) -> Iterator[Pipeline]:
    """`pipeline` with a Dagster instance in files (see `dagster_instance`)."""
    with dagster_instance(persistent=True) as instance:
        yield Pipeline(settings=settings, instance=instance)


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """check name -> passed, for every check evaluated in the run."""
    return {
        event.event_specific_data.check_name: event.event_specific_data.passed
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        "/".join(event.asset_key.path)
        for event in result.all_events
        if event.event_type_value == "ASSET_MATERIALIZATION"
    }
