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
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from phone_pipeline.automation.run_recovery import (
    HOST_TAG,
    PID_START_TAG,
    PID_TAG,
    RunWorker,
    WorkerState,
    dead_run_reaper,
    guarded_in_process_executor,
    pool_waits,
    reap_dead_runs,
)
from phone_pipeline.instance import ensure_dagster_home
from phone_pipeline_synthetic import generate
from phone_pipeline_tests.conftest import TEST_KEY
from phone_pipeline_tests.pipeline_support import wait_for

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


# --- the daemon side: the executor of launched runs, the sensor ------------------------------------


@dg.op(pool=POOL)
def _pooled_step() -> int:
    return 1


def guarded_job() -> dg.JobDefinition:
    """A one-step job in the pool, with the executor the Definitions give launched runs."""

    @dg.job(executor_def=guarded_in_process_executor)
    def guarded() -> None:
        _pooled_step()

    return guarded


@pytest.mark.timeout(90)  # without the guard the run waits for the dead run's slot forever
def test_a_launched_run_records_its_process_and_reaps_a_dead_holder_at_start(
    pool_instance: dg.DagsterInstance,
) -> None:
    me = RunWorker.current()
    dead = _run_with_slot(pool_instance, RunWorker(me.host, me.boot_id, _dead_pid(), "1").tags(),
                          "consent_events")  # fmt: skip

    result = dg.execute_job(dg.reconstructable(guarded_job), instance=pool_instance)

    assert result.success
    assert RunWorker.from_tags(dict(result.dagster_run.tags)) == me
    record = pool_instance.get_run_by_id(dead.run_id)
    assert record is not None and record.status == dg.DagsterRunStatus.FAILURE
    engine = [event.message for event in pool_instance.all_logs(result.run_id)]
    assert any(f"run {dead.run_id[:8]}" in message and "is gone" in message
               for message in engine), engine  # fmt: skip
    assert _claimed(pool_instance) == []


@pytest.mark.timeout(90)  # without the guard the interrupt is swallowed and the run waits on
def test_a_launched_run_waiting_for_a_live_holder_stops_on_an_interrupt(
    pool_instance: dg.DagsterInstance,
) -> None:
    """What the UI's "Terminate" does to a launched run: SIGINT to the run worker's process."""
    holder = _run_with_slot(pool_instance, RunWorker.current().tags(), "consent_events")
    sent = threading.Event()

    def interrupt_once_waiting() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = [run for run in pool_instance.get_runs() if run.job_name == "guarded"]
            if runs and pool_waits(pool_instance, runs[0].run_id):
                os.kill(os.getpid(), signal.SIGINT)  # handled by Dagster while the run executes
                sent.set()
                return
            time.sleep(0.2)

    threading.Thread(target=interrupt_once_waiting, daemon=True).start()
    result = dg.execute_job(dg.reconstructable(guarded_job), instance=pool_instance)

    assert sent.is_set()
    assert not result.success
    assert result.dagster_run.status == dg.DagsterRunStatus.CANCELED
    info = pool_instance.event_log_storage.get_concurrency_info(POOL)
    assert result.run_id not in {step.run_id for step in info.pending_steps}
    assert _claimed(pool_instance) == [(holder.run_id, "consent_events")]  # the live one stays


def test_the_sensor_reaps_dead_runs_and_starts_none(pool_instance: dg.DagsterInstance) -> None:
    me = RunWorker.current()
    dead = _run_with_slot(pool_instance, RunWorker(me.host, me.boot_id, _dead_pid(), "1").tags(),
                          "consent_events")  # fmt: skip
    context = dg.build_sensor_context(instance=pool_instance)
    outcome = dead_run_reaper(context)
    assert isinstance(outcome, dg.SkipReason)
    assert f"run {dead.run_id[:8]}" in (outcome.skip_message or "")
    record = pool_instance.get_run_by_id(dead.run_id)
    assert record is not None and record.status == dg.DagsterRunStatus.FAILURE
    assert _claimed(pool_instance) == []


# --- the real CLI -----------------------------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PHONE_PIPELINE_") and name != "DAGSTER_HOME"
    }
    env.update(
        PHONE_PIPELINE_HOME=str(home),
        PHONE_PIPELINE_START_DATE=START_DATE,
        PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS="0",
        PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS="0",
        PHONE_PIPELINE_PSEUDONYM_KEY=TEST_KEY,
        PYTHONUNBUFFERED="1",
    )
    return env


def _ignore_sigint() -> None:
    # Like a command started in the background by a non-interactive shell.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_run(home: Path, name: str, ignore_sigint: bool = False) -> subprocess.Popen:
    with (home.parent / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [str(CLI), "run"],
            env=_env(home),
            cwd=home.parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_sigint if ignore_sigint else None,
        )


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _log(home: Path, name: str) -> str:
    path = home.parent / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small generated day, copied into each test's fresh data home."""
    home = tmp_path_factory.mktemp("landing") / "data"
    generate(home, rows=300, days=1, seed=5, start_date=DAY)
    return home / "landing"


@pytest.fixture
def home(tmp_path: Path, landing: Path) -> Path:
    home = tmp_path / "data"
    shutil.copytree(landing, home / "landing")
    return home


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The instance the CLI uses (`<home>/dagster_home`), opened by the test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home / "dagster_home"))  # ensure_dagster_home sets it
        path = ensure_dagster_home(home / "dagster_home")
    with dg.DagsterInstance.from_config(str(path)) as opened:
        yield opened


def _holder(instance: dg.DagsterInstance) -> tuple[str, str] | None:
    claimed = _claimed(instance)
    return claimed[0] if claimed else None


def _sqlite_locked(dagster_home: Path) -> bool:
    """Whether some SQLite file of the instance is locked for writing. A process stopped inside
    a write would keep its lock: every other run would fail on "database is locked", which is
    what stopping it mid-write does, not what a run waiting on the pool does."""
    for path in dagster_home.rglob("*.db"):
        con = sqlite3.connect(path, timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.rollback()
        except sqlite3.OperationalError:
            return True
        finally:
            con.close()
    return False


def _stopped_while_holding(
    process: subprocess.Popen, instance: dg.DagsterInstance, home: Path, name: str
) -> tuple[str, str]:
    """SIGSTOP the run's process group at a moment it holds the pool and is not writing to the
    instance (both checked once stopped: a step may end between a look and the stop)."""
    deadline = time.monotonic() + SLOT_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, _log(home, name)
        if _holder(instance):
            os.killpg(process.pid, signal.SIGSTOP)
            held = _holder(instance)
            if held and not _sqlite_locked(home / "dagster_home"):
                return held
            os.killpg(process.pid, signal.SIGCONT)
        time.sleep(0.2)
    pytest.fail(f"{name} never held the duckdb pool within {SLOT_TIMEOUT:.0f} s:\n"
                f"{_log(home, name)}")  # fmt: skip


def test_a_run_after_a_killed_one_completes_and_the_dead_run_is_failed(
    home: Path, instance: dg.DagsterInstance
) -> None:
    first = _start_run(home, "first")
    try:
        run_id, step = _stopped_while_holding(first, instance, home, "first")
    finally:
        _kill_group(first)  # SIGKILL: no handler, no cleanup
    assert _claimed(instance) == [(run_id, step)], "the killed run's slot stays claimed"

    second = _start_run(home, "second")
    try:
        code = second.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_group(second)
        pytest.fail(
            f"the run after the killed one did not finish within {RUN_TIMEOUT:.0f} s (blocked "
            f"on the pool?):\n{_log(home, 'second')}"
        )
    output = _log(home, "second")
    assert code == 0, output
    assert f"{DAY}: run" in output and " ok" in output, output
    # It said what it did about the dead run.
    assert f"run {run_id[:8]}" in output and "is gone" in output, output

    dead = instance.get_run_by_id(run_id)
    assert dead is not None and dead.status == dg.DagsterRunStatus.FAILURE
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert len(failures) == 1 and "is gone" in failures[0].message, failures
    assert f"pid {first.pid}" in failures[0].message
    info = instance.event_log_storage.get_concurrency_info(POOL)
    assert info.claimed_slots == [] and info.pending_steps == [], info


@pytest.mark.parametrize(
    ("signum", "in_background"), [(signal.SIGTERM, True), (signal.SIGINT, False)]
)
def test_a_waiting_run_says_for_whom_and_stops_on_a_signal(
    home: Path, instance: dg.DagsterInstance, signum: signal.Signals, in_background: bool
) -> None:
    holder = _start_run(home, "holder")
    waiter = None
    try:
        # Alive, but it keeps the slot.
        holder_run, _ = _stopped_while_holding(holder, instance, home, "holder")
        waiter = _start_run(home, "waiter", ignore_sigint=in_background)
        wait_for(
            "the second run to say whom it waits for",
            lambda: f"held by run {holder_run[:8]}" in _log(home, "waiter"),
            SLOT_TIMEOUT,
            lambda: _log(home, "waiter"),
        )
        said = _log(home, "waiter")
        assert "waiting since" in said and "pool 'duckdb'" in said, said
        assert f"partition {DAY}" in said and "alive" in said, said
        # One message for all the steps waiting for the pool, not one per step.
        assert said.count("waiting since") == 1, said
        # Waiting, it sleeps between its claims (Dagster 1.13.27 alone spun a whole core).
        cpu_before, since = _cpu_seconds(waiter.pid), time.monotonic()
        time.sleep(3.0)
        busy = (_cpu_seconds(waiter.pid) - cpu_before) / (time.monotonic() - since)
        assert busy < 0.3, f"the waiting run used {busy:.0%} of a core"
        waiting = [
            run for run in instance.get_runs() if run.run_id != holder_run and not run.is_finished
        ]
        assert len(waiting) == 1, waiting
        waiting_run = waiting[0].run_id

        waiter.send_signal(signum)
        try:
            code = waiter.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the waiting run ignored {signum.name}:\n{_log(home, 'waiter')}")
        assert code == 128 + signum, _log(home, "waiter")
        assert f"stopped by {signum.name}" in _log(home, "waiter")
        stopped = instance.get_run_by_id(waiting_run)
        assert stopped is not None
        assert stopped.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)
        info = instance.event_log_storage.get_concurrency_info(POOL)
        assert waiting_run not in {slot.run_id for slot in info.claimed_slots}
        assert waiting_run not in {step.run_id for step in info.pending_steps}
        # The holder is alive (stopped) and untouched.
        assert _holder(instance) is not None and _holder(instance)[0] == holder_run
    finally:
        with_holder = [holder] + ([waiter] if waiter else [])
        for process in with_holder:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)
                _kill_group(process)


def test_two_runs_started_together_on_a_new_home_both_succeed(home: Path) -> None:
    assert not (home / "dagster_home").exists()
    runs = [_start_run(home, name) for name in ("one", "two")]
    try:
        codes = [process.wait(timeout=2 * RUN_TIMEOUT) for process in runs]
    finally:
        for process in runs:
            _kill_group(process)
    logs = {name: _log(home, name) for name in ("one", "two")}
    if codes != [0, 0]:  # both logs whole: an assertion's repr would cut them
        pytest.fail(f"exit codes {codes}:\n" + "\n".join(f"--- {n}:\n{t}" for n, t in logs.items()))
    assert not any("already exists" in text for text in logs.values()), logs


RACE_SCRIPT = """
import sys, time
from pathlib import Path
import dagster as dg
from phone_pipeline.instance import ensure_dagster_home
print("imported", flush=True)
start = float(sys.stdin.readline())  # the moment, once every process has imported dagster
# Asleep until just before the moment (spinning all the way would take the cores the other
# processes need to get there), then spinning so that all leave within a millisecond or so.
time.sleep(max(0.0, start - time.time() - 0.05))
while time.time() < start:
    pass
ensure_dagster_home(Path(sys.argv[1]))
with dg.DagsterInstance.get() as instance:
    instance.get_runs(limit=1)
"""


def test_processes_opening_a_new_instance_at_the_same_moment_all_succeed(tmp_path: Path) -> None:
    """What `run`, `rotate-keys` and `ui` do first, by several processes released together (the
    CLI test above races only sometimes: its processes take different times to import)."""
    env = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
    for attempt in range(2):
        home = tmp_path / f"dagster_home_{attempt}"
        processes = [
            subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(home)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for _ in range(3)
        ]  # fmt: skip
        # Released together once all have imported (a fixed delay waited 6 s for the slowest).
        ready = [process.stdout.readline() for process in processes]
        start = time.time() + 0.5
        for process in processes:
            if process.poll() is None:
                process.stdin.write(f"{start}\n")
                process.stdin.flush()
        outputs = [line + process.communicate(timeout=60)[0]
                   for line, process in zip(ready, processes, strict=True)]  # fmt: skip
        codes = [process.returncode for process in processes]
        assert codes == [0, 0, 0], "\n".join(outputs)
