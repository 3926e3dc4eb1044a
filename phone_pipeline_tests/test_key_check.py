"""A run under a key other than the one the warehouse was written with is refused before it writes
anything, from the pipeline itself (UI, sensor, `execute_in_process`) and from `phone-pipeline run`;
the same key passes, and so does a rotation keyring that holds the old key."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest

from phone_pipeline.cli import main
from phone_pipeline.domain.pseudonyms import KeyMismatchError, build_keyring, key_fingerprint
from phone_pipeline.key_check import (
    fingerprints_path,
    recorded_fingerprints,
    verify_warehouse_key,
)
from phone_pipeline_tests.conftest import DAY, TEST_KEY, Pipeline
from phone_pipeline_tests.pipeline_support import module_pipeline, snapshot, step_outcomes
from phone_pipeline_tests.pipeline_support import write_csv_atomically as write
from phone_pipeline_tests.test_erasure import analytics_consent, call

OTHER_KEY = "f586fa71769c079d58b18230ddfaf78398677f02e671628971f51a3cce5809f9"
NUMBERS = [f"+1212555{n:04d}" for n in range(140, 144)]
CALLS = pd.DataFrame(
    [
        call("1", NUMBERS[0], NUMBERS[1], f"{DAY}T09:00:00Z"),
        call("2", NUMBERS[2], NUMBERS[3], f"{DAY}T10:00:00Z"),
    ]
)


def warehouse(pipeline: Pipeline) -> dict[str, dict[str, list[tuple]]]:
    zones = {}
    for zone in ("restricted", "analytics", "compliance", "shareable"):
        path = pipeline.settings.home / "warehouse" / f"{zone}.duckdb"
        with duckdb.connect(str(path), read_only=True) as con:
            zones[zone] = snapshot(con)
    return zones


def run_failure_message(result) -> str:
    """The run's failure, with its causes (what the UI shows on the run page)."""
    messages = []
    for event in result.all_events:
        if event.event_type_value in ("RESOURCE_INIT_FAILURE", "PIPELINE_FAILURE"):
            error = getattr(event.event_specific_data, "error", None)
            messages.append(event.message or "")
            while error is not None:
                messages.append(f"{error.cls_name}: {error.message}")
                error = error.cause or error.context
    return "\n".join(messages)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    """A warehouse written under TEST_KEY (version 1)."""
    with module_pipeline(tmp_path_factory.mktemp("key_check")) as pipeline:
        write(CALLS, pipeline.settings.landing_calls / "calls.csv")
        write(analytics_consent(NUMBERS), pipeline.settings.landing_consent / "consent.csv")
        assert pipeline.run(DAY).success
        yield pipeline


def test_the_warehouse_records_a_fingerprint_never_the_key(written: Pipeline) -> None:
    recorded = recorded_fingerprints(written.settings.restricted_db)
    assert recorded == {1: key_fingerprint(bytes.fromhex(TEST_KEY))}
    stored = fingerprints_path(written.settings.restricted_db).read_text()
    assert TEST_KEY[:16] not in stored


def test_a_run_under_another_key_is_refused_before_writing(written: Pipeline) -> None:
    before = warehouse(written)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", OTHER_KEY)
        result = written.run(DAY)
    assert not result.success
    # Refused when the run starts: no step ran, nothing changed in any zone.
    assert step_outcomes(result) == {}
    assert warehouse(written) == before
    message = run_failure_message(result)
    assert "pseudonym key version 1 is not the key this warehouse was written with" in message
    assert "rotate-keys" in message
    assert OTHER_KEY not in message and TEST_KEY not in message


def test_a_new_key_under_a_new_version_alone_is_refused(written: Pipeline) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", OTHER_KEY)
        patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY_VERSION", "2")
        result = written.run(DAY)
    assert not result.success and step_outcomes(result) == {}
    assert "none of which is configured" in run_failure_message(result)


def test_the_same_key_passes(written: Pipeline) -> None:
    assert written.run(DAY).success


def test_cli_refuses_another_key_before_dagster(
    written: Pipeline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHONE_PIPELINE_HOME", str(written.settings.home))
    monkeypatch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", OTHER_KEY)
    assert main(["run", "--partition", DAY.isoformat()]) == 2
    output = capsys.readouterr()
    assert "is not the key this warehouse was written with" in output.err
    assert "Troubleshooting" in output.err
    assert OTHER_KEY not in output.out + output.err and TEST_KEY not in output.out + output.err
    assert output.out == ""  # no run started


def test_a_rotation_keyring_with_the_old_key_passes_and_records_the_new_version(
    written: Pipeline,
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEYS", f"1:{TEST_KEY},2:{OTHER_KEY}")
        patch.delenv("PHONE_PIPELINE_PSEUDONYM_KEY")
        assert written.run(DAY).success
    assert recorded_fingerprints(written.settings.restricted_db) == {
        1: key_fingerprint(bytes.fromhex(TEST_KEY)),
        2: key_fingerprint(bytes.fromhex(OTHER_KEY)),
    }
    # The rotation done, the new key alone fits; the first key alone still does too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY", OTHER_KEY)
        patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY_VERSION", "2")
        assert written.run(DAY).success


def test_the_check_does_not_wait_for_a_run_that_holds_the_warehouse(tmp_path) -> None:
    """Runs overlap (steps queue for the DuckDB pool, run starts do not): the check at a run's
    start must not wait for another run's write lock on restricted.duckdb, or the run would wait
    where it can neither say for whom nor be stopped like a run waiting for the pool."""
    restricted_db = tmp_path / "restricted.duckdb"
    keyring = build_keyring(TEST_KEY)
    assert verify_warehouse_key(restricted_db, keyring) == keyring.fingerprints()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(restricted_db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert verify_warehouse_key(restricted_db, keyring) == {}
        with pytest.raises(KeyMismatchError):
            verify_warehouse_key(restricted_db, build_keyring(OTHER_KEY))
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
