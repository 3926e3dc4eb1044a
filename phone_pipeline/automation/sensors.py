"""A sensor on landing/calls: new, complete files start a run for each day partition they touch."""

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from phone_pipeline.automation.jobs import call_pipeline_job, record_of_processing_job
from phone_pipeline.automation.partitions import partition_range
from phone_pipeline.domain.redaction import redact
from phone_pipeline.domain.retention import PSEUDONYMIZED, RESTRICTED
from phone_pipeline.landing import (
    LandingFileError,
    call_dates_in_file,
    content_hash,
    landing_name,
    list_call_files,
)
from phone_pipeline.resources import PipelineConfig
from phone_pipeline.settings import HOME_SETTINGS_FILE, env_name, load_settings
from phone_pipeline.sql import statement
from phone_pipeline.stages.consent.checks import CONSENT_EVENTS
from phone_pipeline.stages.erasure.checks import ERASURE_REGISTER
from phone_pipeline.stages.retention.assets import oldest_processed_day, retention_policy, today_utc
from phone_pipeline.warehouse import is_lock_conflict


@dataclass
class LandingPlan:
    """What one sensor tick decided: runs per partition, files still settling, the new cursor."""

    runs: dict[str, list[str]] = field(default_factory=dict)  # partition -> new content hashes
    settling: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    # file (redacted) -> its days before `first_date`: no run is requested for them
    too_old: dict[str, list[dt.date]] = field(default_factory=dict)
    cursor: dict = field(default_factory=dict)


def cursor_key(file_name: str) -> str:
    return hashlib.sha256(file_name.encode()).hexdigest()[:32]


class WarehouseBusy(RuntimeError):
    """The restricted zone file is held by a run: what it ingested cannot be read this tick."""


def already_ingested(restricted_db: Path, hashes: Collection[str]) -> dict[str, set[dt.date]]:
    """Of these content hashes, those some run already ingested (`restricted.landing_files`,
    whatever started that run: the CLI, a backfill, another sensor), each with the days of its
    rows that no run has validated yet (usually none: a file is loaded whole by the first run,
    whichever day it was for). Raises WarehouseBusy while another process writes the file."""
    if not hashes or not restricted_db.exists():
        return {}
    try:
        con = duckdb.connect(str(restricted_db), read_only=True)
    except duckdb.IOException as error:
        if not is_lock_conflict(error):
            raise  # a damaged file is an error to show, not a busy warehouse to wait for
        raise WarehouseBusy(str(error)) from None
    try:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        if not {"landing_files", "raw_calls", "calls_validated", "calls_quarantine"} <= tables:
            return {}
        con.execute("CREATE TEMP TABLE candidates (content_hash VARCHAR)")
        con.executemany("INSERT INTO candidates VALUES (?)", [[h] for h in hashes])
        rows = con.execute(statement(__file__, "unvalidated_days_of_loaded_files")).fetchall()
    finally:
        con.close()
    return {file_hash: set(days or []) for file_hash, days in rows}


def plan_landing_runs(
    folder: Path,
    cursor: dict,
    settle_seconds: float,
    first_date: dt.date,
    last_date: dt.date,
    now: float | None = None,
    ingested: Callable[[Collection[str]], dict[str, set[dt.date]]] | None = None,
) -> LandingPlan:
    """Decide runs for new complete files, remembering what was seen in the cursor.

    A file is complete once its size and mtime did not change since the previous tick, or it has
    not been modified for `settle_seconds`; `.part`/`.tmp` names are never read. Files are known
    by content hash, so a copy under another name starts nothing. A file some run already
    ingested (`ingested`: hash -> its days not validated yet) starts runs only for those days:
    the cursor alone does not know what `phone-pipeline run` or a backfill loaded.
    """
    now = time.time() if now is None else now
    seen: dict[str, list] = cursor.get("files", {})
    handled: set[str] = set(cursor.get("hashes", []))
    plan = LandingPlan()
    files: dict[str, list] = {}
    candidates: list[tuple[Path, str, str]] = []  # path, its landing name, its hash
    # Files in landing/calls and in its profile folders (landing/calls/<profile>/).
    for path in list_call_files(folder):
        # The cursor is stored in the instance and shown in the UI: key it by a digest of the
        # name, since a file name may hold a phone number.
        name = landing_name(folder, path)
        name_key = cursor_key(name)
        stat = path.stat()
        signature = [stat.st_size, stat.st_mtime_ns]
        previous = seen.get(name_key)
        if previous and previous[:2] == signature and previous[2]:
            files[name_key] = previous  # unchanged and already hashed
            continue
        stable = previous is not None and previous[:2] == signature
        if not stable and now - stat.st_mtime < settle_seconds:
            files[name_key] = [*signature, None]
            plan.settling.append(redact(name))
            continue
        file_hash = content_hash(path)
        files[name_key] = [*signature, file_hash]
        if file_hash in handled:
            continue
        handled.add(file_hash)
        candidates.append((path, name, file_hash))
    # Asked once per tick, and only when there is a file the cursor does not know.
    loaded = (
        ingested([file_hash for *_, file_hash in candidates]) if ingested and candidates else {}
    )
    for path, name, file_hash in candidates:
        if file_hash in loaded:
            dates = {day for day in loaded[file_hash] if first_date <= day <= last_date}
        else:
            try:
                dates = call_dates_in_file(path, dt.date.min, last_date, folder)
            except LandingFileError as error:
                plan.unreadable[redact(name)] = str(error)
                continue
            if too_old := sorted(day for day in dates if day < first_date):
                plan.too_old[redact(name)] = too_old
            dates = {day for day in dates if day >= first_date}
        for day in dates:
            plan.runs.setdefault(day.isoformat(), []).append(file_hash)
    plan.cursor = {"files": files, "hashes": sorted(handled)}
    return plan


def too_old_warning(
    file_name: str, days: list[dt.date], first_date: dt.date, start: dt.date, oldest: dt.date | None
) -> str:
    """Why a file's days before `first_date` start no run, and what to do (names redacted)."""
    if first_date == start:
        why = (
            f"the first partition is {start} ({env_name('partitions_start_date')}, from the "
            f"environment or the data home's {HOME_SETTINGS_FILE}): set an earlier date there, "
            "reload the definitions, and materialise those days"
        )
    else:
        why = (
            f"every zone's retention has passed them (the oldest day a run may process is {oldest})"
        )
    return (
        f"{file_name}: calls on {len(days)} day(s) from {days[0]} to {days[-1]} are not "
        f"processed: {why}"
    )


def run_key(partition: str, hashes: list[str]) -> str:
    return f"{partition}:" + hashlib.sha256("".join(sorted(hashes)).encode()).hexdigest()[:24]


@dg.sensor(
    job=call_pipeline_job,
    minimum_interval_seconds=load_settings().sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches landing/calls and its profile folders (landing/calls/<profile>/) for new "
        "call-log files (.csv, .csv.gz, .parquet). Files still being "
        "written (.part/.tmp names, or changed since the last tick) wait; a complete new file "
        "starts one run per day partition it touches."
    ),
)
def landing_calls_sensor(context: dg.SensorEvaluationContext, pipeline_config: PipelineConfig):
    cursor = json.loads(context.cursor) if context.cursor else {}
    first_date, last_date = partition_range()
    start = first_date
    # Days older than every zone's retention would keep nothing: no run is requested for them
    # (days past only the restricted retention are a backfill: their run sweeps them at its end).
    oldest = oldest_processed_day(pipeline_config)
    if oldest is not None:
        first_date = max(first_date, oldest)
    restricted_db = pipeline_config.restricted_db
    try:
        plan = plan_landing_runs(
            pipeline_config.landing_calls,
            cursor,
            load_settings().settle_seconds,
            first_date,
            last_date,
            ingested=lambda hashes: already_ingested(restricted_db, hashes),
        )
    except WarehouseBusy:
        # Cursor kept: the new files are looked at again next tick, when the file is free.
        return dg.SensorResult(
            cursor=context.cursor,
            skip_reason="new call-log files wait: the warehouse is in use by a run, so which "
            "files were already ingested cannot be read this tick",
        )
    for problem in plan.unreadable.values():
        context.log.warning(f"Not starting a run for an unreadable file: {redact(problem)}")
    for name, days in plan.too_old.items():
        context.log.warning(too_old_warning(name, days, first_date, start, oldest))
    requests = [
        dg.RunRequest(run_key=run_key(partition, hashes), partition_key=partition,
                      tags={"phone_pipeline/trigger": "landing_file"})
        for partition, hashes in sorted(plan.runs.items())
    ]  # fmt: skip
    skip_reason = None
    if not requests:
        skip_reason = (
            f"{len(plan.settling)} file(s) still being written"
            if plan.settling
            else "no new call-log files"
        )
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps(plan.cursor), skip_reason=skip_reason
    )


@dg.run_failure_sensor(
    monitored_jobs=[call_pipeline_job],
    request_job=record_of_processing_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "A failed gate stops a run before its last step, the record of processing: this "
        "regenerates the record so that it shows the failure as the latest evidence."
    ),
)
def record_after_failed_run(context: dg.RunFailureSensorContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=context.dagster_run.run_id)


# --- re-runs after an erasure or a consent change -------------------------------------------------

# Assets whose materializations name, in `affected_partitions`, the dates they changed.
PRIVACY_SOURCES = {
    ERASURE_REGISTER: "erasure",
    CONSENT_EVENTS: "consent_change",
}


def plan_privacy_reruns(
    changes: list[tuple[str, int, list[str]]], first_date: dt.date, last_date: dt.date
) -> dict[str, list[str]]:
    """partition -> the changes (`<source>:<storage id>`) that affect it, from (source, storage
    id, affected partitions) of new materializations; dates outside the partitions are left out."""
    runs: dict[str, list[str]] = {}
    for source, storage_id, partitions in changes:
        for partition in partitions:
            if first_date <= dt.date.fromisoformat(partition) <= last_date:
                runs.setdefault(partition, []).append(f"{source}:{storage_id}")
    return runs


def rerun_retention_cutoffs(config: PipelineConfig) -> list[dt.date]:
    """The cutoffs (oldest kept day) of the zones a partition run rebuilds and refuses past."""
    policy = retention_policy(config)
    today = today_utc()
    cutoffs = (policy.cutoff(zone, today) for zone in (RESTRICTED, PSEUDONYMIZED))
    return [cutoff for cutoff in cutoffs if cutoff is not None]


@dg.sensor(
    job=call_pipeline_job,
    minimum_interval_seconds=load_settings().sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Re-runs the partitions an erasure or a consent change affected (listed in the "
        "`affected_partitions` metadata of erasure_register and consent_events), published ones "
        "included, so that their rows and aggregates are rebuilt with the change applied. A "
        "re-run changes nothing new, so it starts no further run; run keys name the change, so a "
        "partition is re-run once per change. Partitions past the restricted or pseudonymised "
        "retention are skipped (their runs would be refused: the sweep deleted their rows)."
    ),
)
def privacy_rerun_sensor(context: dg.SensorEvaluationContext, pipeline_config: PipelineConfig):
    cursor = json.loads(context.cursor) if context.cursor else {}
    changes: list[tuple[str, int, list[str]]] = []
    for asset_key, source in PRIVACY_SOURCES.items():
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, after_storage_id=cursor.get(source)),
            limit=1000,
            ascending=True,
        ).records
        for record in records:
            entry = record.asset_materialization.metadata.get("affected_partitions")
            partitions = list(entry.value) if entry is not None else []
            changes.append((source, record.storage_id, partitions))
            cursor[source] = record.storage_id
    first_date, last_date = partition_range()
    # A run of a partition past retention is refused (raw_calls, calls_pseudonymized): skip it.
    first_date = max([first_date, *rerun_retention_cutoffs(pipeline_config)])
    runs = plan_privacy_reruns(changes, first_date, last_date)
    requests = [
        dg.RunRequest(
            run_key=f"privacy:{partition}:"
            + hashlib.sha256(" ".join(ids).encode()).hexdigest()[:24],
            partition_key=partition,
            tags={"phone_pipeline/trigger": ",".join(sorted({i.split(":")[0] for i in ids}))},
        )
        for partition, ids in sorted(runs.items())
    ]
    return dg.SensorResult(
        run_requests=requests,
        cursor=json.dumps(cursor),
        skip_reason=None if requests else "no erasure or consent change affects a partition",
    )
