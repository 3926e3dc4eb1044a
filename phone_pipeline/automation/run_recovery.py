"""Runs that never wait forever: dead runs are reaped, a wait on a pool says for whom, and a
waiting run stops on SIGINT/SIGTERM.

Every step touching the DuckDB files is in the pool "duckdb" (limit 1, see instance.py). Dagster
records a claimed slot in the instance (`concurrency_slots`) and frees it when the step ends; a run
whose process is killed (SIGKILL, OOM, power loss) never frees it, and Dagster's own daemon only
frees the slots of runs already *finished*. Its run monitoring cannot tell that the process of a
run started by `phone-pipeline run` (execute_in_process) is gone, so such a run stayed STARTED
with its slot forever and every later run waited for it.

What we do:
- Every run records its worker process as run tags (`RunWorker`: host, boot id, pid and the
  process's start time, so that a reused pid or a reboot is not taken for the same process).
- `reap_dead_runs` marks a run of this host whose process is gone as FAILURE with a reason (a run
  failure event the UI shows) and frees its pool slots; it also frees slots left by finished or
  deleted runs. Runs of another host are never judged from here.
- `RunGuard` watches a run while it executes in this process: at start and while the run waits for
  a pool it reaps dead holders, and it says which run holds the pool (run id, job, partition,
  since when, whether its process is alive).

Why a waiting run ignored SIGINT/SIGTERM (Dagster 1.13.27): `ExecuteRunWithPlanIterable` wraps the
whole execution in `capture_interrupts()`, which maps SIGINT and SIGTERM to a handler that only
sets a flag. The flag is turned into an exception only when the next step starts
(`raise_execution_interrupts`); the in-process executor's loop waiting for a pool slot
(`get_next_step` / `sleep_til_ready`) never starts one, so the signal was swallowed. `RunGuard`
learns of the signal through `signal.set_wakeup_fd` (written whichever Python handler is
installed), marks the run canceling, and when the run is still waiting for a pool interrupts the
main thread with SIGUSR1, whose handler raises Dagster's own `DagsterExecutionInterruptedError`:
Dagster then ends the run as canceled and frees its pending claims. `capture_interrupts` also
leaves SIGTERM with SIGINT's handler after the run, which is SIG_IGN in a background shell: the
guard installs its own handlers for both around each run and restores the originals after it.

A waiting run sleeps between its claims instead of spinning a core: see dagster_fixes.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import dagster as dg

import phone_pipeline.dagster_fixes  # noqa: F401  (a waiting run sleeps)

HOST_TAG = "phone_pipeline/worker_host"
BOOT_TAG = "phone_pipeline/worker_boot_id"
PID_TAG = "phone_pipeline/worker_pid"
PID_START_TAG = "phone_pipeline/worker_started"

# Statuses in which a run still has (or should have) a live process.
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


_PROC = Path("/proc")
_BOOT_ID = _PROC / "sys" / "kernel" / "random" / "boot_id"


class WorkerState(Enum):
    ALIVE = "alive"
    GONE = "gone"
    OTHER_HOST = "other host"


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, None if there is none."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # Fields after the command name "(...)": field 3 (state) ... field 22 (starttime).
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


@dataclass(frozen=True)
class RunWorker:
    """The process executing a run, as recorded in the run's tags."""

    host: str
    boot_id: str
    pid: int
    started: str  # clock ticks since boot ("" where /proc is missing)

    @classmethod
    def current(cls) -> RunWorker:
        pid = os.getpid()
        stat = _proc_stat(pid)
        return cls(socket.gethostname(), _boot_id(), pid, stat[1] if stat else "")

    def tags(self) -> dict[str, str]:
        return {
            HOST_TAG: self.host,
            BOOT_TAG: self.boot_id,
            PID_TAG: str(self.pid),
            PID_START_TAG: self.started,
        }

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> RunWorker | None:
        if HOST_TAG not in tags or not tags.get(PID_TAG, "").isdigit():
            return None
        return cls(tags[HOST_TAG], tags.get(BOOT_TAG, ""), int(tags[PID_TAG]),
                   tags.get(PID_START_TAG, ""))  # fmt: skip

    def state(self) -> WorkerState:
        if self.host != socket.gethostname():
            return WorkerState.OTHER_HOST  # never judged from here
        boot_id = _boot_id()
        if self.boot_id and boot_id and self.boot_id != boot_id:
            return WorkerState.GONE  # the machine rebooted since
        if not _PROC.is_dir():  # no /proc: a live pid counts as alive (never reap a live run)
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return WorkerState.GONE
            except PermissionError:
                pass
            return WorkerState.ALIVE
        stat = _proc_stat(self.pid)
        if stat is None:
            return WorkerState.GONE
        state, started = stat
        if state in ("Z", "X"):  # killed, not yet collected by its parent
            return WorkerState.GONE
        if self.started and started != self.started:
            return WorkerState.GONE  # the pid now belongs to another process
        return WorkerState.ALIVE

    def describe(self) -> str:
        state = self.state()
        if state is WorkerState.OTHER_HOST:
            return (
                f"pid {self.pid} on host {self.host}: cannot be checked from this host; if it is "
                "dead, stop or free it from that host or in the UI"
            )
        return f"pid {self.pid} on this host, {state.value}"


# --- the instance's pools -------------------------------------------------------------------------


def _pool_infos(instance: dg.DagsterInstance) -> dict[str, Any]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    keys = sorted(storage.get_concurrency_keys())
    return dict(storage.get_concurrency_infos(keys)) if keys else {}


def _holders(info: Any, excluding: str | None = None) -> list[str]:
    """Runs that take a slot of a pool: a claimed slot, or a step assigned a slot not yet claimed
    (an assignment counts against the limit too)."""
    runs = [slot.run_id for slot in info.claimed_slots]
    runs += [step.run_id for step in info.pending_steps if step.assigned_timestamp]
    return [run_id for run_id in dict.fromkeys(runs) if run_id != excluding]


@dataclass(frozen=True)
class PoolWait:
    """A step of a run waiting for a slot of a pool."""

    pool: str
    limit: int | None
    step_key: str
    since: dt.datetime
    holders: tuple[str, ...]


def pool_waits(instance: dg.DagsterInstance, run_id: str) -> list[PoolWait]:
    waits = []
    for pool, info in _pool_infos(instance).items():
        claimed = {(slot.run_id, slot.step_key) for slot in info.claimed_slots}
        for step in info.pending_steps:
            if step.run_id == run_id and (run_id, step.step_key) not in claimed:
                waits.append(
                    PoolWait(
                        pool,
                        info.limit,
                        step.step_key,
                        step.enqueued_timestamp,
                        tuple(_holders(info, excluding=run_id)),
                    )  # fmt: skip
                )
    return waits


def describe_run(instance: dg.DagsterInstance, run_id: str) -> str:
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return f"run {run_id[:8]} (deleted)"
    run = record.dagster_run
    started = record.start_time or record.create_timestamp.timestamp()
    when = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    partition = run.tags.get("dagster/partition")
    worker = RunWorker.from_tags(dict(run.tags))
    process = (
        worker.describe()
        if worker
        else "its process is not recorded (started outside phone-pipeline): if it is dead, "
        "terminate it in the UI"
    )
    status = run.status.value.lower()
    state = f"started {when}" if status == "started" else f"{status}, created {when}"
    return (
        f"run {run_id[:8]} ({run.job_name}"
        + (f", partition {partition}" if partition else "")
        + f", {state}; {process})"
    )


def describe_wait(instance: dg.DagsterInstance, waits: list[PoolWait]) -> str:
    """One message for the steps of a run waiting for one pool."""
    first = waits[0]
    since = min(wait.since for wait in waits)
    steps = ", ".join(sorted(wait.step_key for wait in waits))
    holder_ids = dict.fromkeys(run_id for wait in waits for run_id in wait.holders)
    holders = "; ".join(describe_run(instance, run_id) for run_id in holder_ids) or "nobody yet"
    limit = f" (limit {first.limit})" if first.limit is not None else ""
    return (
        f"waiting since {since.astimezone(dt.UTC):%H:%M:%S} UTC for a slot of pool "
        f"'{first.pool}'{limit} (steps {steps}); held by {holders}. A holder whose process is "
        "gone is marked failed and its slot freed automatically; press Ctrl-C (or send SIGTERM) "
        "to stop waiting."
    )


# --- reaping --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reaped:
    run_id: str
    message: str


def _free(instance: dg.DagsterInstance, run_id: str) -> None:
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def reap_dead_runs(
    instance: dg.DagsterInstance, by: str, run_ids: Iterable[str] | None = None
) -> list[Reaped]:
    """Fail the unfinished runs of this host whose process is gone and free their pool slots;
    free the slots still held by finished or deleted runs. `run_ids` limits the runs looked at
    (default: every run holding or waiting for a slot, and every unfinished run of this host)."""
    slot_runs: set[str] = set()
    for info in _pool_infos(instance).values():
        slot_runs |= {slot.run_id for slot in info.claimed_slots}
        slot_runs |= {step.run_id for step in info.pending_steps}
    if run_ids is None:
        mine = instance.get_run_records(
            dg.RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: socket.gethostname()})
        )
        candidates = slot_runs | {record.dagster_run.run_id for record in mine}
    else:
        candidates = set(run_ids)
    reaped = []
    for run_id in sorted(candidates):
        outcome = _reap(instance, run_id, run_id in slot_runs, by)
        if outcome:
            reaped.append(outcome)
    return reaped


def _reap(instance: dg.DagsterInstance, run_id: str, holds_slots: bool, by: str) -> Reaped | None:
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        if not holds_slots:
            return None
        _free(instance, run_id)
        state = "deleted" if run is None else run.status.value.lower()
        return Reaped(run_id, f"freed the pool slots still held by {state} run {run_id[:8]}")
    worker = RunWorker.from_tags(dict(run.tags))
    if worker is None or worker.state() is not WorkerState.GONE:
        return None
    current = instance.get_run_by_id(run_id)  # it may have finished just before its process exited
    if current is None or current.is_finished:
        _free(instance, run_id)
        return None
    message = (
        f"The process of this run (pid {worker.pid} on {worker.host}) is gone: it was killed or "
        f"crashed while the run was {current.status.value.lower()}. Marked failed by {by}, and "
        "its pool slots were freed so that other runs can go on. Re-run the partition."
    )
    instance.report_run_failed(current, message=message, job_failure_data=_failure_data())
    _free(instance, run_id)
    return Reaped(run_id, f"run {run_id[:8]} ({current.job_name}): {message}")


def _failure_data() -> object | None:
    try:  # the reason the UI shows ("unexpected termination"); private in Dagster 1.13
        from dagster._core.events import JobFailureData, RunFailureReason
    except ImportError:
        return None
    return JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)


# --- guarding a run in this process ---------------------------------------------------------------


class RunGuard:
    """Watches one run executed by this process (see the module docstring).

    Use around `execute_in_process(run_id=...)` (or an executor's execution) with the tags of
    `RunWorker.current()` on the run. `interrupted` is the signal that stopped the run, if any.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        run_id: str,
        announce: Callable[[str], None],
        by: str = "phone-pipeline",
        poll_seconds: float = 0.5,
        announce_after_seconds: float = 2.0,
        repeat_seconds: float = 60.0,
        reap_every_seconds: float = 2.0,
        handle_signals: bool = True,
    ) -> None:
        self.instance = instance
        self.run_id = run_id
        self.announce = announce
        self.by = by
        self.poll_seconds = poll_seconds
        self.announce_after_seconds = announce_after_seconds
        self.repeat_seconds = repeat_seconds
        self.reap_every_seconds = reap_every_seconds
        self.handle_signals = handle_signals
        self.interrupted: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_main = False
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._saved: dict[int, object] = {}
        self._saved_wakeup = -1
        self._breaking = False
        self._watcher_instance: dg.DagsterInstance | None = None

    # main thread --------------------------------------------------------------------------------

    def __enter__(self) -> RunGuard:
        self._reap("at run start")
        self._on_main = threading.current_thread() is threading.main_thread()
        if self._on_main:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._sockets = (reader, writer)
            self._saved_wakeup = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            handled = (signal.SIGINT, signal.SIGTERM) if self.handle_signals else ()
            for signum in (*handled, signal.SIGUSR1):
                self._saved[signum] = signal.getsignal(signum)
            for signum in handled:
                signal.signal(signum, self._on_signal)
            signal.signal(signal.SIGUSR1, self._on_break)
        # The watcher thread reads and writes the instance through its own storage connections.
        if self.instance.is_persistent:
            self._watcher_instance = dg.DagsterInstance.from_ref(self.instance.get_ref())
        self._thread = threading.Thread(target=self._watch, name="run-guard", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        if self._on_main and self._sockets:
            self._drain()
            signal.set_wakeup_fd(self._saved_wakeup)
            for signum, handler in self._saved.items():
                signal.signal(signum, handler)  # type: ignore[arg-type]
            for sock in self._sockets:
                sock.close()
        if self._watcher_instance is not None:
            self._watcher_instance.dispose()
        # The run's execution is over in this process: nothing it claimed may stay claimed (an
        # interrupted step keeps its slot in Dagster 1.13).
        with contextlib.suppress(Exception):
            _free(self.instance, self.run_id)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Outside Dagster's own handling (before the run starts executing, or after it).
        self.interrupted = self.interrupted or signum
        raise KeyboardInterrupt

    def _on_break(self, signum: int, frame: FrameType | None) -> None:
        if self._breaking:
            self._breaking = False
            raise dg.DagsterExecutionInterruptedError(
                f"Stopped by {signal.Signals(self.interrupted or signal.SIGINT).name} while "
                "waiting for a pool slot."
            )

    # watcher thread ------------------------------------------------------------------------------

    def _drain(self) -> None:
        if not self._sockets:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            for signum in self._sockets[0].recv(256):
                if signum in (signal.SIGINT, signal.SIGTERM) and self.interrupted is None:
                    self.interrupted = signum

    def _reap(self, when: str) -> None:
        try:
            reaped = reap_dead_runs(self.instance, by=f"{self.by} ({when}, run {self.run_id[:8]})")
        except Exception as error:  # never let the watcher stop the run
            self.announce(f"could not check the runs holding pool slots: {error}")
            return
        for outcome in reaped:
            self.announce(outcome.message)

    def _watch(self) -> None:
        instance = self._watcher_instance or self.instance
        announced: dict[str, float] = {}
        interrupted_at: float | None = None
        canceled = False
        last_reap = time.monotonic()
        last_break = 0.0
        while not self._stop.wait(self.poll_seconds):
            try:
                self._drain()
                now = time.monotonic()
                if self.interrupted and interrupted_at is None:
                    interrupted_at = now
                    name = signal.Signals(self.interrupted).name
                    self.announce(f"{name} received: stopping run {self.run_id[:8]}.")
                if self.interrupted and not canceled:
                    canceled = True
                    run = instance.get_run_by_id(self.run_id)
                    if run and not run.is_finished:
                        instance.report_run_canceling(
                            run, message=f"{signal.Signals(self.interrupted).name} received."
                        )
                waits = pool_waits(instance, self.run_id)
                if not waits:
                    continue
                if interrupted_at is not None:
                    # Dagster only looks at the signal when a step starts: end the wait ourselves.
                    if self._on_main and now - last_break > 5.0:
                        last_break = now
                        self._breaking = True
                        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]
                    continue
                if now - last_reap >= self.reap_every_seconds:
                    last_reap = now
                    holders = {run_id for wait in waits for run_id in wait.holders}
                    for outcome in reap_dead_runs(instance, by=self.by, run_ids=holders):
                        self.announce(outcome.message)
                by_pool: dict[str, list[PoolWait]] = {}
                for wait in waits:
                    by_pool.setdefault(wait.pool, []).append(wait)
                for pool, group in by_pool.items():
                    since = min(wait.since for wait in group)
                    waited = (dt.datetime.now(dt.UTC) - since).total_seconds()
                    key = f"{pool}/{sorted({h for wait in group for h in wait.holders})}"
                    if waited >= self.announce_after_seconds and (
                        key not in announced or now - announced[key] >= self.repeat_seconds
                    ):
                        announced[key] = now
                        self.announce(describe_wait(instance, group))
            except Exception as error:  # never let the watcher stop the run
                self.announce(f"run guard: {type(error).__name__}: {error}")


# --- the daemon side (`phone-pipeline ui`) --------------------------------------------------------


@dg.sensor(
    name="dead_run_reaper",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks failed the runs of this host whose process is gone (killed or crashed) and frees "
        "the DuckDB pool slots they held, so that no run waits for them forever. Starts no run."
    ),
)
def dead_run_reaper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    reaped = reap_dead_runs(context.instance, by="the dead_run_reaper sensor")
    for outcome in reaped:
        context.log.warning(outcome.message)
    return dg.SkipReason(
        "; ".join(outcome.message for outcome in reaped) or "no dead run holds a pool slot"
    )


class _GuardedExecutor(dg.Executor):
    """The in-process executor, with the run's worker recorded and the run guarded (RunGuard)."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        instance = plan_context.instance
        run = plan_context.dagster_run
        instance.add_run_tags(run.run_id, RunWorker.current().tags())
        # The guard's thread writes its messages through storage connections of its own.
        with contextlib.ExitStack() as stack:
            reporter = (
                stack.enter_context(dg.DagsterInstance.from_ref(instance.get_ref()))
                if instance.is_persistent
                else instance
            )

            def say(message: str) -> None:
                reporter.report_engine_event(message, run)  # shown in the run's log in the UI

            # Dagster's own interrupt handling stays in place here (handle_signals=False): the
            # guard only ends a wait for a pool on SIGINT/SIGTERM (the UI's "Terminate" is one).
            stack.enter_context(
                RunGuard(
                    instance,
                    run.run_id,
                    announce=say,
                    by="phone-pipeline (run worker)",
                    handle_signals=False,
                )  # fmt: skip
            )
            yield from self._inner.execute(plan_context, execution_plan)


@dg.executor(name="in_process", config_schema=dg.in_process_executor.config_schema)
def guarded_in_process_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's in-process executor for runs the daemon launches, guarded like the CLI's runs."""
    creation = dg.in_process_executor.executor_creation_fn
    assert creation is not None
    return _GuardedExecutor(creation(init_context))
