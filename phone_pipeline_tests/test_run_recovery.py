"""Runs never wait forever (issue 13): dead runs are reaped, a wait for the DuckDB pool says for
whom and stops on SIGTERM, and two runs may open a new instance at the same moment.

The first tests judge processes and reap runs in a real test instance; the others start the real
`phone-pipeline run` as subprocesses on one small generated day, kill or stop them, and bound every
wait so that a regression fails instead of hanging.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from phone_pipeline.domain.synthetic import generate
from phone_pipeline.instance import ensure_dagster_home
from phone_pipeline.run_recovery import (
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    RunWorker,
    WorkerState,
    pool_waits,
    reap_dead_runs,
)
from phone_pipeline_tests.conftest import TEST_KEY

CLI = Path(sys.executable).with_name("phone-pipeline")
POOL = "duckdb"
DAY = dt.date(2026, 11, 1)
START_DATE = "2026-10-01"
SLOT_TIMEOUT = 90.0  # until the first run holds the pool
RUN_TIMEOUT = 150.0  # a 300-call day takes about 20 s alone
STOP_TIMEOUT = 20.0  # a waiting run told to stop


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _run_with_slot(instance: dg.DagsterInstance, tags: dict[str, str], step: str) -> dg.DagsterRun:
    """A STARTED run (as a killed run leaves it) holding the pool's one slot for `step`."""
    run = instance.create_run_for_job(dg.GraphDefinition("dummy").to_job(), tags=tags)
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, job_name=run.job_name),
    )
    status = instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, step)
    assert status.is_claimed, status
    return run


@pytest.fixture
def pool_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as inst:
        inst.event_log_storage.set_concurrency_slots(POOL, 1)
        yield inst


def _claimed(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [(slot.run_id, slot.step_key) for slot in info.claimed_slots]


# --- judging a process ----------------------------------------------------------------------------


def test_this_process_is_alive_and_a_finished_one_is_gone() -> None:
    me = RunWorker.current()
    assert me.state() is WorkerState.ALIVE
    assert RunWorker.from_tags(me.tags()) == me
    gone = RunWorker(me.host, me.boot_id, _dead_pid(), me.started)
    assert gone.state() is WorkerState.GONE


def test_a_reused_pid_is_not_the_recorded_process() -> None:
    me = RunWorker.current()
    assert me.started, "this host has /proc: the process start time is recorded"
    reused = RunWorker(me.host, me.boot_id, me.pid, str(int(me.started) - 1))
    assert reused.state() is WorkerState.GONE


def test_a_process_of_another_host_or_boot_is_judged_correctly() -> None:
    me = RunWorker.current()
    assert RunWorker("another-host", me.boot_id, me.pid, me.started).state() is (
        WorkerState.OTHER_HOST
    )
    if me.boot_id:
        rebooted = RunWorker(me.host, "not-this-boot", me.pid, me.started)
        assert rebooted.state() is WorkerState.GONE


# --- reaping in a real instance -------------------------------------------------------------------


def test_a_dead_run_holding_the_pool_is_failed_with_a_reason_and_its_slot_freed(
    pool_instance: dg.DagsterInstance,
) -> None:
    me = RunWorker.current()
    dead = RunWorker(me.host, me.boot_id, _dead_pid(), "1")
    run = _run_with_slot(pool_instance, dead.tags(), "consent_events")
    waiting = pool_instance.create_run_for_job(dg.GraphDefinition("dummy").to_job())
    blocked = pool_instance.event_log_storage.claim_concurrency_slot(POOL, waiting.run_id, "a")
    assert not blocked.is_claimed
    assert [wait.holders for wait in pool_waits(pool_instance, waiting.run_id)] == [(run.run_id,)]

    reaped = reap_dead_runs(pool_instance, by="the test")

    assert [outcome.run_id for outcome in reaped] == [run.run_id]
    record = pool_instance.get_run_by_id(run.run_id)
    assert record is not None and record.status == dg.DagsterRunStatus.FAILURE
    failures = pool_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert len(failures) == 1
    assert f"pid {dead.pid}" in failures[0].message and "is gone" in failures[0].message
    assert "the test" in failures[0].message
    assert run.run_id not in {run_id for run_id, _ in _claimed(pool_instance)}
    # The waiting run gets the slot now.
    assert pool_instance.event_log_storage.claim_concurrency_slot(
        POOL, waiting.run_id, "a"
    ).is_claimed


def test_live_and_other_host_runs_are_never_reaped(pool_instance: dg.DagsterInstance) -> None:
    me = RunWorker.current()
    pool_instance.event_log_storage.set_concurrency_slots(POOL, 2)
    alive = _run_with_slot(pool_instance, me.tags(), "a")
    elsewhere_tags = {**me.tags(), HOST_TAG: "another-host", PID_TAG: str(_dead_pid())}
    elsewhere = _run_with_slot(pool_instance, elsewhere_tags, "b")

    assert reap_dead_runs(pool_instance, by="the test") == []

    for run in (alive, elsewhere):
        record = pool_instance.get_run_by_id(run.run_id)
        assert record is not None and record.status == dg.DagsterRunStatus.STARTED
    assert sorted(_claimed(pool_instance)) == sorted([(alive.run_id, "a"), (elsewhere.run_id, "b")])


def test_a_run_without_a_recorded_process_is_left_alone_but_a_finished_one_frees_its_slot(
    pool_instance: dg.DagsterInstance,
) -> None:
    pool_instance.event_log_storage.set_concurrency_slots(POOL, 2)
    unknown = _run_with_slot(pool_instance, {}, "a")
    finished = _run_with_slot(pool_instance, {PID_START_TAG: "1"}, "b")
    pool_instance.report_run_failed(finished, message="failed elsewhere")

    reaped = reap_dead_runs(pool_instance, by="the test")

    assert [outcome.run_id for outcome in reaped] == [finished.run_id]
    assert _claimed(pool_instance) == [(unknown.run_id, "a")]
    record = pool_instance.get_run_by_id(unknown.run_id)
    assert record is not None and record.status == dg.DagsterRunStatus.STARTED
