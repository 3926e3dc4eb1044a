"""`phone-pipeline bench`: how fast the pipeline handles a realistic day, against a floor and a
naive baseline, on this machine.

One run:

1. prepare: `generate()` writes two consecutive days of N calls each from one call (same seed, so
   the same fictional subscribers, with fresh draws of who calls whom and how the number is
   spelled). A share of the calls gets numbers of every region phonenumbers knows (the example
   numbers libphonenumber publishes), interleaved through the file, with consent grants for them.
2. regions: phonenumbers on that many-region set alone, interleaved vs grouped by country.
3. floor: DuckDB alone loading day 1 (`CREATE TABLE AS SELECT * FROM read_csv(...)`).
4. naive: pandas `read_csv` plus a row-wise `apply` of phonenumbers on a sample, scaled to N.
5. cold: the `call_pipeline` job through Dagster for day 1 on an empty warehouse (empty number
   cache); warm: the same job for day 2, with day 1's warehouse and number cache kept.

Every phase runs in a child process (`python -m phone_pipeline_bench <phase> <spec.json>`), so that
its peak resident memory (the child and its descendants) is measured on its own and one phase's
imports and caches do not help the next. Results are printed and written as JSON.

Where a stage's time goes (inside Great Expectations suites, inside number parsing) is read from
the metadata the stages themselves record (`suite_seconds` on each suite's check result,
`parse_seconds` on the materialisations of the stages that parse numbers): the benchmark measures
the product as it ships, it patches nothing.

No Dagster import at module level: only the pipeline phases import it, in their child process.
Not part of the product package: `phone-pipeline bench` imports it only when asked.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from phone_pipeline.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROWS = 1_000_000
DEFAULT_SEED = 42
# Fixed days, so that runs of different dates compare; both lie in the benchmark's partitions.
COLD_DAY = dt.date(2025, 3, 4)
WARM_DAY = COLD_DAY + dt.timedelta(days=1)
PARTITIONS_START = "2025-01-01"
DEFAULT_REGION = "US"
JUNK_SHARE = 0.03
# Share of the calls whose caller (and half as many callees) is a many-region example number.
MANY_COUNTRY_CALLER_SHARE = 0.05
MANY_COUNTRY_CALLEE_SHARE = 0.025
MANY_COUNTRY_PARSE_ROUNDS = 5
NAIVE_SAMPLE_ROWS = 50_000
# Published documentation examples of these types, for every region phonenumbers supports.
EXAMPLE_TYPES = ("FIXED_LINE", "MOBILE", "TOLL_FREE", "VOIP", "PREMIUM_RATE")
STAGE_ORDER = (
    "ingest",
    "reference",
    "validate",
    "consent",
    "pseudonymize",
    "aggregate",
    "accounting",
)
TARGETS = {
    "cold_over_floor": ("<=", 5.0),
    "warm_over_floor": ("<=", 2.5),
    "naive_over_cold": (">=", 20.0),
    "pipeline_peak_rss_gib": ("<=", 4.0),
}
_MARKER = ".phone-pipeline-bench"
_GIB = 1024**3
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# --- the parent: orchestrates phases, measures children, reports ----------------------------------


def main(argv: list[str] | None = None) -> int:
    """`phone-pipeline bench [options]`: the CLI hands this command's arguments over unparsed."""
    parser = argparse.ArgumentParser(
        prog="phone-pipeline bench",
        description="Benchmark a day of calls against a floor and a naive baseline "
        "(see benchmarks/README.md).",
    )
    add_arguments(parser)
    return main_from_args(parser.parse_args(argv))


def main_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark with the options of `add_arguments`."""
    return run_benchmark(
        rows=args.rows,
        seed=args.seed,
        many_countries=args.many_countries,
        home=args.home,
        output=args.output,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="calls per day (1M)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--many-countries",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="mix example numbers of every supported region into the calls (default: on)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="work folder, kept afterwards (default: a temporary folder under /tmp, removed)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="folder for the JSON results (default: benchmarks/results)",
    )


def run_benchmark(
    *,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    many_countries: bool = True,
    home: Path | None = None,
    output: Path | None = None,
) -> int:
    """Run every phase, print the table, write the JSON. 0 when both pipeline runs succeeded."""
    if rows < 1_000:
        print("error: --rows must be at least 1000", file=sys.stderr)
        return 2
    key_problem = _check_key()
    if key_problem:
        print(f"error: {key_problem}", file=sys.stderr)
        return 2
    keep = home is not None
    try:
        work = _prepare_home(home)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = Path(output) if output is not None else _default_output()
    output.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    env = _child_env(work)

    report: dict[str, Any] = {
        "schema": 1,
        "started_utc": started.isoformat(timespec="seconds"),
        "status": "running",
        "machine": machine_info(),
        "code": code_version(),
        "parameters": {
            "rows": rows,
            "seed": seed,
            "many_countries": many_countries,
            "many_country_caller_share": MANY_COUNTRY_CALLER_SHARE if many_countries else 0.0,
            "many_country_callee_share": MANY_COUNTRY_CALLEE_SHARE if many_countries else 0.0,
            "junk_share": JUNK_SHARE,
            "default_region": DEFAULT_REGION,
            "duckdb_memory_limit": load_settings().duckdb_memory_limit,
            "cold_partition": COLD_DAY.isoformat(),
            "warm_partition": WARM_DAY.isoformat(),
            "naive_sample_rows": min(rows, NAIVE_SAMPLE_ROWS),
            "home": str(work),
        },
    }
    print(
        f"phone_pipeline benchmark: {rows:,} calls per day, seed {seed}, "
        f"{'with' if many_countries else 'without'} the many-country mix; work folder {work}",
        flush=True,
    )
    common = {"rows": rows, "seed": seed, "many_countries": many_countries, "home": str(work)}
    try:
        prepared = _phase(work, env, "prepare", common, report, "generating two days of calls")
        if prepared["status"] != "ok":
            return _finish(report, output, started, "failed", keep, work)
        report["data"] = prepared["result"]
        day1 = prepared["result"]["cold_file"]
        if many_countries:
            _phase(work, env, "regions", common, report, "phonenumbers on the many-region set")
        _phase(work, env, "floor", {**common, "file": day1}, report, "floor: DuckDB CTAS")
        _phase(work, env, "naive", {**common, "file": day1}, report, "naive: pandas + apply")
        cold = _phase(
            work,
            env,
            "cold",
            {**common, "partition": COLD_DAY.isoformat()},
            report,
            "pipeline, cold (empty number cache)",
        )
        # The next day lands only now, so the cold run could not ingest it.
        warm_file = prepared["result"]["warm_file"]
        landed = Path(prepared["result"]["landing_calls"]) / Path(warm_file).name
        os.replace(warm_file, landed)
        report["data"]["warm_file"] = str(landed)
        warm = _phase(
            work,
            env,
            "warm",
            {**common, "partition": WARM_DAY.isoformat()},
            report,
            "pipeline, warm (next day, number cache kept)",
        )
        ok = cold.get("result", {}).get("status") == "success"
        ok = ok and warm.get("result", {}).get("status") == "success"
        status = "ok" if ok else "failed"
    except KeyboardInterrupt:
        status = "interrupted"
    return _finish(report, output, started, status, keep, work)


def _finish(
    report: dict[str, Any],
    output: Path,
    started: dt.datetime,
    status: str,
    keep: bool,
    work: Path,
) -> int:
    report["status"] = status
    report["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _derive(report)
    print_report(report)
    rows = report["parameters"]["rows"]
    path = output / f"{started:%Y%m%dT%H%M%SZ}-{rows}.json"
    tmp = path.with_name(path.name + ".tmp")  # ignored by git until complete
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    print(f"\nResults written to {path}")
    if keep:
        print(f"Work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if status == "ok" else 1


def _check_key() -> str | None:
    from phone_pipeline.domain.pseudonyms import PseudonymKeyError, decode_key

    secret = os.environ.get("PHONE_PIPELINE_PSEUDONYM_KEY")
    if not secret:
        return None  # a throwaway key is made for the children
    try:
        decode_key(secret)
    except PseudonymKeyError as error:
        return str(error)
    return None


def _default_output() -> Path:
    if (PROJECT_ROOT / "benchmarks").is_dir():
        return PROJECT_ROOT / "benchmarks" / "results"
    return Path.cwd() / "benchmarks" / "results"


def _prepare_home(home: Path | None) -> Path:
    """An empty work folder, or one this benchmark made before (then emptied)."""
    if home is None:
        work = Path(tempfile.mkdtemp(prefix="phone-pipeline-bench-"))
    else:
        work = Path(home).resolve()
        work.mkdir(parents=True, exist_ok=True)
        entries = list(work.iterdir())
        if entries and not (work / _MARKER).exists():
            raise ValueError(f"{work} is not empty and was not made by this benchmark")
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    (work / _MARKER).write_text("made by phone-pipeline bench; emptied on the next run\n")
    return work


def _child_env(work: Path) -> dict[str, str]:
    """The children's environment: this benchmark's data home and settings, nothing inherited
    from a deployment (thresholds, start date, region), and a pseudonym key."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PHONE_PIPELINE_", "DAGSTER_HOME"))
    }
    env["PHONE_PIPELINE_HOME"] = str(work / "pipeline")
    env["PHONE_PIPELINE_START_DATE"] = PARTITIONS_START
    env["PHONE_PIPELINE_DEFAULT_REGION"] = DEFAULT_REGION
    # The benchmark's fixed days are older than any retention period: keep them.
    env["PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS"] = "0"
    env["PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS"] = "0"
    env["DAGSTER_HOME"] = str(work / "dagster_home")
    env["GX_ANALYTICS_ENABLED"] = "False"
    env["PYTHONUNBUFFERED"] = "1"
    # The benchmark's days are fixed, so that figures compare over time; they would soon be past
    # any retention, which is not what it measures.
    for zone in ("RESTRICTED", "PSEUDONYMIZED", "AGGREGATES"):
        env[f"PHONE_PIPELINE_RETENTION_{zone}_DAYS"] = "0"
    # Kept: the key, and DuckDB's memory limit, a resource knob worth benchmarking.
    for name in (
        "PHONE_PIPELINE_PSEUDONYM_KEY",
        "PHONE_PIPELINE_PSEUDONYM_KEY_VERSION",
        "PHONE_PIPELINE_DUCKDB_MEMORY_LIMIT",
    ):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if "PHONE_PIPELINE_PSEUDONYM_KEY" not in env:
        # Throwaway key for this benchmark's children only: never written or printed.
        env["PHONE_PIPELINE_PSEUDONYM_KEY"] = secrets.token_hex(32)
    return env


def _phase(
    work: Path,
    env: dict[str, str],
    phase: str,
    spec: dict[str, Any],
    report: dict[str, Any],
    label: str,
) -> dict[str, Any]:
    """Run one phase in a child; record wall time, peak RSS and its result under report[phase]."""
    print(f"  {label} ...", end="", flush=True)
    outcome = run_child(work, env, phase, spec)
    report.setdefault("phases", {})[phase] = {
        key: value for key, value in outcome.items() if key != "result"
    }
    result = outcome.get("result")
    if result is not None and phase != "prepare":
        report[phase] = {**result, "peak_rss_bytes": outcome["peak_rss_bytes"]}
        if phase in ("cold", "warm"):
            # Wall time of the whole child: interpreter start, imports, run.
            report[phase]["process_seconds"] = outcome["wall_seconds"]
    if outcome["status"] == "ok":
        print(f" {outcome['wall_seconds']:.1f} s", flush=True)
    else:
        print(f" FAILED (exit {outcome['exit_code']}); log: {outcome['log']}", flush=True)
        for line in outcome.get("log_tail", []):
            print(f"    | {line}")
    return outcome


def run_child(work: Path, env: dict[str, str], phase: str, spec: dict[str, Any]) -> dict[str, Any]:
    """`python -m phone_pipeline_bench <phase> <spec>` with its peak memory: the largest sum of
    RSS over the child and its descendants (polled from /proc), or the kernel's own high-water mark
    of the largest process (wait4), whichever is larger."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    spec_path = logs / f"{phase}.spec.json"
    result_path = logs / f"{phase}.result.json"
    log_path = logs / f"{phase}.log"
    result_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps({**spec, "result": str(result_path)}))
    command = [sys.executable, "-m", "phone_pipeline_bench", phase, str(spec_path)]
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak_tree = 0
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                peak_tree = max(peak_tree, tree_rss_bytes(proc.pid))
                time.sleep(0.05)
        except BaseException:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
    wall = time.perf_counter() - started
    exit_code = os.waitstatus_to_exitcode(status)
    proc.returncode = exit_code
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    kernel_peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    outcome: dict[str, Any] = {
        "status": "ok" if exit_code == 0 and result_path.exists() else "failed",
        "exit_code": exit_code,
        "wall_seconds": round(wall, 3),
        "peak_rss_bytes": max(peak_tree, kernel_peak),
        "peak_rss_tree_polled_bytes": peak_tree,
        "peak_rss_largest_process_bytes": kernel_peak,
        "log": str(log_path),
    }
    if result_path.exists():
        outcome["result"] = json.loads(result_path.read_text())
    if outcome["status"] != "ok":
        text = log_path.read_text(errors="replace").strip().splitlines()
        outcome["log_tail"] = text[-15:]
    return outcome


def tree_rss_bytes(pid: int) -> int:
    """Sum of the resident memory of `pid` and all its descendants (Linux /proc; 0 elsewhere)."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    total = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * page
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    stack += [int(child) for child in handle.read().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def machine_info() -> dict[str, Any]:
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    memory = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_bytes": memory,
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in (
                "dagster",
                "dagster-duckdb",
                "duckdb",
                "phonenumbers",
                "pandas",
                "pyarrow",
                "great-expectations",
            )
        },
    }


# --- derived figures, targets, printing -------------------------------------------------------------


def _get(report: dict[str, Any], *path: str) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return round(a / b, 3)


def _derive(report: dict[str, Any]) -> None:
    """Ratios, targets and the flat `figures` dict (what to compare over time)."""
    floor = _get(report, "floor", "seconds")
    naive = _get(report, "naive", "estimated_seconds")
    cold = _get(report, "cold", "end_to_end_seconds")
    warm = _get(report, "warm", "end_to_end_seconds")
    if _get(report, "cold", "status") != "success":
        cold = None
    if _get(report, "warm", "status") != "success":
        warm = None
    peaks = [
        _get(report, phase, "peak_rss_bytes")
        for phase in ("cold", "warm")
        if _get(report, phase, "peak_rss_bytes")
    ]
    pipeline_peak = max(peaks) if peaks else None
    ratios = {
        "cold_over_floor": _ratio(cold, floor),
        "warm_over_floor": _ratio(warm, floor),
        "naive_over_cold": _ratio(naive, cold),
        "naive_over_warm": _ratio(naive, warm),
        "pipeline_peak_rss_gib": round(pipeline_peak / _GIB, 3) if pipeline_peak else None,
    }
    report["ratios"] = ratios
    targets = []
    for name, (op, limit) in TARGETS.items():
        value = ratios.get(name)
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        targets.append({"name": name, "target": f"{op} {limit:g}", "value": value, "met": met})
    report["targets"] = targets

    figures: dict[str, Any] = {
        "floor_seconds": floor,
        "floor_rows_per_second": _get(report, "floor", "rows_per_second"),
        "naive_estimated_seconds": naive,
        "naive_rows_per_second": _get(report, "naive", "rows_per_second"),
        "cold_end_to_end_seconds": cold,
        "cold_rows_per_second": _get(report, "cold", "rows_per_second"),
        "warm_end_to_end_seconds": warm,
        "warm_rows_per_second": _get(report, "warm", "rows_per_second"),
        "floor_peak_rss_bytes": _get(report, "floor", "peak_rss_bytes"),
        "naive_peak_rss_bytes": _get(report, "naive", "peak_rss_bytes"),
        "cold_peak_rss_bytes": _get(report, "cold", "peak_rss_bytes"),
        "warm_peak_rss_bytes": _get(report, "warm", "peak_rss_bytes"),
        "cold_numbers_parsed": _get(report, "cold", "numbers_parsed", "calls"),
        "warm_numbers_parsed": _get(report, "warm", "numbers_parsed", "calls"),
        "distinct_raw_numbers": _get(report, "data", "distinct_raw_numbers_cold"),
    }
    for phase in ("cold", "warm"):
        for stage, figures_of_stage in (_get(report, phase, "stages") or {}).items():
            figures[f"{phase}_{stage}_seconds"] = figures_of_stage.get("seconds")
    if report["parameters"]["many_countries"]:
        figures["many_region_interleaved_us"] = _get(report, "regions", "interleaved_us_per_number")
        figures["many_region_grouped_us"] = _get(report, "regions", "grouped_us_per_number")
        figures["many_region_regions"] = _get(report, "regions", "regions")
    figures.update({name: value for name, value in ratios.items() if value is not None})
    report["figures"] = figures


def _s(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _rate(value: float | None) -> str:
    return "-" if not value else f"{value:,.0f}"


def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / 1024**2:,.0f} MiB"


def print_report(report: dict[str, Any]) -> None:
    p = report["parameters"]
    m = report["machine"]
    data = report.get("data", {})
    print()
    print(
        f"== phone_pipeline benchmark: {p['rows']:,} calls, seed {p['seed']}, "
        f"{m['cpu_count']} CPUs, {(m['memory_bytes'] or 0) / _GIB:.1f} GiB, Python {m['python']}, "
        f"dagster {m['versions']['dagster']}, duckdb {m['versions']['duckdb']}, "
        f"phonenumbers {m['versions']['phonenumbers']} =="
    )
    if data:
        mix = data.get("many_country") or {}
        line = (
            f"data: {_n(data.get('subscribers'))} fictional subscribers, "
            f"{_n(data.get('distinct_raw_numbers_cold'))} distinct raw number strings on day 1, "
            f"{_n(data.get('new_raw_numbers_warm'))} new on day 2; junk {p['junk_share']:.0%}"
        )
        if mix:
            line += (
                f"; many-country mix: {mix.get('caller_rows', 0):,} callers + "
                f"{mix.get('callee_rows', 0):,} callees from {mix.get('strings', 0):,} example "
                f"strings of {mix.get('regions', 0)} regions ({mix.get('regions_in_cold_file', 0)} "
                "in day 1's file)"
            )
        print(line)
    regions = report.get("regions")
    if regions:
        print(
            f"many-region parse ({regions['strings']:,} strings, {regions['regions']} regions, "
            f"{regions['rounds']} rounds): interleaved {regions['interleaved_us_per_number']:.0f} "
            f"us/number, grouped by country {regions['grouped_us_per_number']:.0f} us/number "
            f"({regions['interleaved_over_grouped']:.1f}x)"
        )
    print()
    print(f"{'phase':44} {'seconds':>10} {'rows/s':>12} {'peak RSS':>11}")
    floor = report.get("floor") or {}
    naive = report.get("naive") or {}
    print(
        f"{'floor: DuckDB CREATE TABLE AS read_csv':44} {_s(floor.get('seconds'), 2):>10} "
        f"{_rate(floor.get('rows_per_second')):>12} {_mib(floor.get('peak_rss_bytes')):>11}"
    )
    if naive:
        print(
            f"{'naive: pandas read_csv + apply (SCALED est.)':44} "
            f"{_s(naive.get('estimated_seconds')):>10} {_rate(naive.get('rows_per_second')):>12} "
            f"{_mib(naive.get('peak_rss_bytes')):>11}"
        )
        print(
            f"{'':6}read_csv {naive['read_csv_seconds']:.1f} s (measured) + apply "
            f"{naive['apply_us_per_row']:.0f} us/row measured on {naive['sample_rows']:,} rows "
            f"x {naive['rows']:,} rows"
        )
    for phase, label in (("cold", "pipeline cold (empty number cache)"),
                         ("warm", "pipeline warm (next day, cache kept)")):  # fmt: skip
        run = report.get(phase)
        if not run:
            continue
        status = "" if run.get("status") == "success" else "  FAILED"
        print(
            f"{label:44} {_s(run.get('end_to_end_seconds')):>10} "
            f"{_rate(run.get('rows_per_second')):>12} {_mib(run.get('peak_rss_bytes')):>11}{status}"
        )
    cold, warm = report.get("cold") or {}, report.get("warm") or {}
    if cold or warm:
        print()
        print(
            f"{'stage':14} {'cold s':>8} {'rows/s':>11} {'GX s':>6} {'parse s':>8}"
            f" {'warm s':>8} {'rows/s':>11} {'GX s':>6} {'parse s':>8}"
        )
        stages = [s for s in STAGE_ORDER if s in (cold.get("stages") or {})]
        stages += [
            s
            for s in {**(cold.get("stages") or {}), **(warm.get("stages") or {})}
            if s not in stages
        ]
        for stage in stages:
            c = (cold.get("stages") or {}).get(stage, {})
            w = (warm.get("stages") or {}).get(stage, {})
            print(
                f"{stage:14} {_s(c.get('seconds'), 2):>8} {_rate(c.get('rows_per_second')):>11}"
                f" {_s(c.get('gx_seconds'), 1):>6} {_s(c.get('parse_seconds'), 1):>8}"
                f" {_s(w.get('seconds'), 2):>8} {_rate(w.get('rows_per_second')):>11}"
                f" {_s(w.get('gx_seconds'), 1):>6} {_s(w.get('parse_seconds'), 1):>8}"
            )
        print(
            f"{'outside steps':14} {_s(cold.get('outside_steps_seconds'), 2):>8} {'':>27}"
            f" {_s(warm.get('outside_steps_seconds'), 2):>8}"
        )
        for name, run in (("cold", cold), ("warm", warm)):
            if not run:
                continue
            parsed = run.get("numbers_parsed") or {}
            print(
                f"{name}: numbers parsed {_n(parsed.get('calls'))} (calls) + "
                f"{_n(parsed.get('consent'))} (consent); number cache "
                f"{_n(run.get('number_cache_rows'))} rows; checks passed "
                f"{run.get('checks_passed', 0)}, failed {len(run.get('checks_failed', []))}, "
                f"warnings {len(run.get('checks_warned', []))}; "
                f"process incl. imports {_s(run.get('process_seconds'))} s"
            )
            for failure in run.get("failed_steps", []):
                print(f"  FAILED step {failure['step']} ({failure['stage']}): {failure['error']}")
            for check in run.get("checks_failed", []):
                print(f"  failed check: {check}")
            for check in run.get("checks_warned", []):
                print(f"  warning (not a failure): {check}")
    print()
    ratios = report.get("ratios", {})
    print(
        f"ratios: cold/floor {_s(ratios.get('cold_over_floor'))}x, warm/floor "
        f"{_s(ratios.get('warm_over_floor'))}x, naive/cold {_s(ratios.get('naive_over_cold'))}x, "
        f"naive/warm {_s(ratios.get('naive_over_warm'))}x"
    )
    for target in report.get("targets", []):
        met = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        value = "-" if target["value"] is None else f"{target['value']:,.2f}"
        print(f"  target {target['name']:22} {target['target']:>7}: {value:>8}  {met}")
    print(f"status: {report['status']}")


# --- the children: one function per phase ---------------------------------------------------------


def _phase_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Two days from one generate() call, moved into a fresh pipeline home (day 2 held back)."""
    from phone_pipeline_synthetic import generate

    rows, seed = int(spec["rows"]), int(spec["seed"])
    work = Path(spec["home"])
    source = work / "source"
    started = time.perf_counter()
    summary = generate(
        source,
        rows=2 * rows,
        days=2,
        seed=seed,
        start_date=COLD_DAY,
        default_region=DEFAULT_REGION,
        junk_share=JUNK_SHARE,
    )
    generate_seconds = time.perf_counter() - started
    cold_file, warm_file = summary.call_files
    result: dict[str, Any] = {
        "generate_seconds": round(generate_seconds, 3),
        "subscribers": summary.subscribers,
        "junk_rows_two_days": summary.junk_rows,
    }

    landing = work / "pipeline" / "landing"
    (landing / "calls").mkdir(parents=True, exist_ok=True)
    (landing / "consent").mkdir(parents=True, exist_ok=True)
    if spec["many_countries"]:
        examples = many_region_examples()
        started = time.perf_counter()
        cold_mix = mix_many_regions(cold_file, examples, seed)
        warm_mix = mix_many_regions(warm_file, examples, seed + 1)
        consent = landing / "consent" / "consent_many_regions.csv"
        write_example_consent(consent, examples, COLD_DAY)
        result["many_country"] = {
            "strings": len(examples["strings"]),
            "numbers": len(examples["e164"]),
            "regions": len(examples["regions"]),
            "types": list(EXAMPLE_TYPES),
            "caller_rows": cold_mix["caller_rows"],
            "callee_rows": cold_mix["callee_rows"],
            "regions_in_cold_file": cold_mix["regions"],
            "regions_in_warm_file": warm_mix["regions"],
            "consent_events_added": len(examples["e164"]),
            "mix_seconds": round(time.perf_counter() - started, 3),
        }

    counts = _distinct_numbers(cold_file, warm_file)
    result.update(counts)
    result["rows_cold"] = counts.pop("rows_cold")
    result["file_bytes_cold"] = cold_file.stat().st_size
    shutil.copy2(summary.cells_file, landing / "cells.csv")
    shutil.copy2(summary.consent_file, landing / "consent" / summary.consent_file.name)
    landed = landing / "calls" / cold_file.name
    os.replace(cold_file, landed)
    result["cold_file"] = str(landed)
    result["warm_file"] = str(warm_file)
    result["landing_calls"] = str(landing / "calls")
    return result


def many_region_examples() -> dict[str, Any]:
    """Example numbers libphonenumber publishes for every supported region and several types, in
    E.164 and international format, ordered so that consecutive strings come from different
    regions (a round-robin over a shuffled region order)."""
    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    by_region: dict[str, list[str]] = {}
    seen: set[str] = set()
    e164_numbers: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for type_name in EXAMPLE_TYPES:
            number = phonenumbers.example_number_for_type(
                region, getattr(PhoneNumberType, type_name)
            )
            if number is None or not phonenumbers.is_valid_number(number):
                continue
            e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
            if e164 in seen:
                continue
            seen.add(e164)
            e164_numbers.append(e164)
            intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
            by_region.setdefault(region, []).extend([e164, intl])
    rng = random.Random(20260108)
    regions = sorted(by_region)
    rng.shuffle(regions)
    for region in regions:
        rng.shuffle(by_region[region])
    strings: list[str] = []
    region_of: list[str] = []
    for k in range(max(len(v) for v in by_region.values())):
        for region in regions:
            if k < len(by_region[region]):
                strings.append(by_region[region][k])
                region_of.append(region)
    return {"strings": strings, "region_of": region_of, "e164": e164_numbers, "regions": regions}


def mix_many_regions(path: Path, examples: dict[str, Any], seed: int) -> dict[str, Any]:
    """Give a share of the calls of `path` a many-region caller (and half as many a many-region
    callee), in place, streaming; call ids, order and every other byte of a row are unchanged.
    Deliberate junk numbers are left alone."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from phone_pipeline_synthetic import JUNK_NUMBERS, atomic_csv

    strings = pa.array(examples["strings"], pa.string())
    region_codes = {region: i for i, region in enumerate(examples["regions"])}
    region_of = np.array([region_codes[r] for r in examples["region_of"]])
    junk = pa.array(JUNK_NUMBERS, pa.string())
    rng = np.random.default_rng(seed)
    column_types = {
        name: pa.string()
        for name in ("call_id", "caller_number", "callee_number", "started_at", "disposition")
    }
    column_types |= {"cell_id": pa.string(), "duration_seconds": pa.int64()}
    reader = pacsv.open_csv(
        str(path),
        read_options=pacsv.ReadOptions(block_size=64 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            strings_can_be_null=True,  # an empty unquoted cell_id stays null, "" stays ""
            quoted_strings_can_be_null=False,
        ),
    )
    counter = 0
    caller_rows = callee_rows = 0
    regions_used: set[int] = set()
    with atomic_csv(path) as write:
        for batch in reader:
            n = batch.num_rows
            columns = {name: batch.column(name) for name in batch.schema.names}
            for column, share in (("caller_number", MANY_COUNTRY_CALLER_SHARE),
                                  ("callee_number", MANY_COUNTRY_CALLEE_SHARE)):  # fmt: skip
                original = columns[column]
                not_junk = pc.invert(pc.fill_null(pc.is_in(original, value_set=junk), True))
                chosen = (rng.random(n) < share) & not_junk.to_numpy(zero_copy_only=False)
                k = int(chosen.sum())
                index = (counter + np.arange(k)) % len(strings)
                counter += k
                regions_used.update(np.unique(region_of[index]).tolist())
                # Fill the chosen rows, in row order, with the next example strings.
                replacement = np.zeros(n, dtype=np.int64)
                replacement[chosen] = index
                columns[column] = pc.if_else(
                    pa.array(chosen), pc.take(strings, pa.array(replacement)), original
                )
                if column == "caller_number":
                    caller_rows += k
                else:
                    callee_rows += k
            table = pa.table(columns)
            write(table)
    return {"caller_rows": caller_rows, "callee_rows": callee_rows, "regions": len(regions_used)}


def write_example_consent(path: Path, examples: dict[str, Any], first_day: dt.date) -> None:
    """An `analytics` grant for every example number, a month before the first day."""
    import pyarrow as pa

    from phone_pipeline_synthetic import atomic_csv

    when = dt.datetime.combine(first_day - dt.timedelta(days=30), dt.time(9), dt.UTC)
    n = len(examples["e164"])
    table = pa.table(
        {
            "phone_number": pa.array(examples["e164"], pa.string()),
            "purpose": pa.array(["analytics"] * n, pa.string()),
            "status": pa.array(["granted"] * n, pa.string()),
            "recorded_at": pa.array([when.strftime("%Y-%m-%dT%H:%M:%SZ")] * n, pa.string()),
            "source": pa.array(["web-form"] * n, pa.string()),
        }
    )
    with atomic_csv(path) as write:
        write(table)


def _sql_text(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _distinct_numbers(cold_file: Path, warm_file: Path) -> dict[str, int]:
    import duckdb

    def numbers(path: Path) -> str:
        source = f"read_csv({_sql_text(path)}, all_varchar = true)"
        return f"SELECT caller_number AS n FROM {source} UNION SELECT callee_number FROM {source}"

    with duckdb.connect() as con:
        rows = con.execute(f"SELECT count(*) FROM read_csv({_sql_text(cold_file)})").fetchone()[0]
        cold = con.execute(f"SELECT count(*) FROM ({numbers(cold_file)})").fetchone()[0]
        warm = con.execute(f"SELECT count(*) FROM ({numbers(warm_file)})").fetchone()[0]
        new = con.execute(
            f"SELECT count(*) FROM ({numbers(warm_file)}) AS w ANTI JOIN ({numbers(cold_file)}) "
            "AS c USING (n)"
        ).fetchone()[0]
    return {
        "rows_cold": rows,
        "distinct_raw_numbers_cold": cold,
        "distinct_raw_numbers_warm": warm,
        "new_raw_numbers_warm": new,
    }


def _phase_regions(spec: dict[str, Any]) -> dict[str, Any]:
    """phonenumbers on the many-region set alone: one number at a time in shuffled order
    (regions interleaved) vs `normalize_numbers`, which groups by country calling code."""
    from phone_pipeline.domain.numbers import normalize_number, normalize_numbers

    examples = many_region_examples()
    strings = list(examples["strings"])
    rng = random.Random(int(spec["seed"]))
    interleaved: list[float] = []
    grouped: list[float] = []
    for _ in range(MANY_COUNTRY_PARSE_ROUNDS):
        shuffled = strings[:]
        rng.shuffle(shuffled)
        started = time.perf_counter()
        for raw in shuffled:
            normalize_number(raw, DEFAULT_REGION)
        interleaved.append((time.perf_counter() - started) / len(shuffled))
        rng.shuffle(shuffled)
        started = time.perf_counter()
        frame = normalize_numbers(shuffled, DEFAULT_REGION)
        grouped.append((time.perf_counter() - started) / len(shuffled))
        invalid = int(frame["reason"].notna().sum())
    inter_us = statistics.median(interleaved) * 1e6
    group_us = statistics.median(grouped) * 1e6
    return {
        "strings": len(strings),
        "regions": len(examples["regions"]),
        "rounds": MANY_COUNTRY_PARSE_ROUNDS,
        "invalid_after_parse": invalid,
        "interleaved_us_per_number": round(inter_us, 2),
        "grouped_us_per_number": round(group_us, 2),
        "interleaved_over_grouped": round(inter_us / group_us, 2) if group_us else None,
        "method": "interleaved: normalize_number() one string at a time in shuffled order; "
        "grouped: normalize_numbers() on the shuffled list (it groups by calling code); "
        "median of the rounds",
    }


def _phase_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """DuckDB alone: a fresh database file, the CSV into a table, committed and closed."""
    import duckdb

    path = Path(spec["file"])
    db = Path(spec["home"]) / "floor" / "floor.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE calls AS SELECT * FROM read_csv({_sql_text(path)})")
    rows = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    con.close()
    seconds = time.perf_counter() - started
    db.unlink(missing_ok=True)
    return {
        "seconds": round(seconds, 3),
        "rows": rows,
        "rows_per_second": round(rows / seconds, 1),
        "statement": "CREATE TABLE calls AS SELECT * FROM read_csv('<day 1 file>')",
    }


def _phase_naive(spec: dict[str, Any]) -> dict[str, Any]:
    """What a user would otherwise write: pandas, then phonenumbers row by row with apply."""
    import pandas as pd
    import phonenumbers
    from phonenumbers import NumberParseException, PhoneNumberFormat

    path = Path(spec["file"])
    started = time.perf_counter()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    read_seconds = time.perf_counter() - started
    rows = len(frame)
    sample = frame.sample(n=min(rows, NAIVE_SAMPLE_ROWS), random_state=int(spec["seed"]))

    def check(raw: str) -> str | None:
        try:
            number = phonenumbers.parse(raw, DEFAULT_REGION)
        except NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)

    started = time.perf_counter()
    sample.apply(lambda r: (check(r["caller_number"]), check(r["callee_number"])), axis=1)
    apply_seconds = time.perf_counter() - started
    per_row = apply_seconds / len(sample)
    estimated = read_seconds + per_row * rows
    return {
        "rows": rows,
        "read_csv_seconds": round(read_seconds, 3),
        "sample_rows": len(sample),
        "apply_seconds_on_sample": round(apply_seconds, 3),
        "apply_us_per_row": round(per_row * 1e6, 2),
        "estimated_seconds": round(estimated, 3),
        "rows_per_second": round(rows / estimated, 1),
        "scaled": True,
        "method": "read_csv(dtype=str, keep_default_na=False) measured in full; "
        "DataFrame.sample(...).apply(parse, is_valid_number, format E164 for caller and "
        "callee, axis=1) measured on the sample and scaled linearly to all rows",
    }


def _stage_of_steps() -> dict[str, str]:
    """Dagster step key -> the stage tag of the asset(s) it materialises or checks."""
    from phone_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    stage_of_asset = {}
    for assets_def in graph.assets_defs:
        for spec in assets_def.specs:
            stage_of_asset[spec.key] = spec.tags.get("stage")
    stages: dict[str, str] = {}
    for assets_def in graph.assets_defs:
        if not assets_def.is_executable:
            continue
        name = assets_def.node_def.name
        found = [stage_of_asset.get(spec.key) for spec in assets_def.specs]
        found += [stage_of_asset.get(check.asset_key) for check in assets_def.check_keys]
        found = [stage for stage in found if stage]
        stages[name] = found[0] if found else name
    return stages


def _phase_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """One run of the `call_pipeline` job for a partition, with every blocking check."""
    import dagster as dg
    import duckdb

    from phone_pipeline.definitions import defs
    from phone_pipeline.resources import build_resources
    from phone_pipeline.settings import load_settings

    settings = load_settings()
    settings.ensure_folders()
    job = defs.resolve_job_def("call_pipeline")
    stage_of = _stage_of_steps()
    rows = int(spec["rows"])
    with dg.DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = job.execute_in_process(
            partition_key=spec["partition"],
            instance=instance,
            resources=build_resources(settings),
            raise_on_error=False,
            run_config=QUIET,
        )
        end_to_end = time.perf_counter() - started
        logs = instance.all_logs(result.run_id)

    step_start: dict[str, float] = {}
    steps: dict[str, dict[str, Any]] = {}
    failed_steps: list[dict[str, str]] = []
    materialized: dict[str, dict[str, Any]] = {}
    checks_passed = 0
    checks_failed: list[str] = []
    checks_warned: list[str] = []  # WARN findings, e.g. a dataset withheld by the risk gate
    # Seconds the steps recorded about themselves: `suite_seconds` on each GX suite's check result
    # (stages/shared/checks.py), `parse_seconds` on the materialisations of stages that parse numbers
    # (phone_pipeline/timings.py). Step -> gx_seconds / parse_seconds.
    recorded: dict[str, dict[str, float]] = {}

    def add_recorded(step: str | None, metadata: Any, key: str, figure: str) -> None:
        if step and key in metadata:
            totals = recorded.setdefault(step, {})
            totals[figure] = totals.get(figure, 0.0) + float(metadata[key].value)

    for entry in logs:
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        step = event.step_key
        if kind == "STEP_START":
            step_start[step] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            seconds = entry.timestamp - step_start.get(step, entry.timestamp)
            data = event.event_specific_data
            if kind == "STEP_SUCCESS" and getattr(data, "duration_ms", None):
                seconds = data.duration_ms / 1000
            steps[step] = {
                "stage": stage_of.get(step, step),
                "seconds": round(seconds, 3),
                "status": "success" if kind == "STEP_SUCCESS" else "failure",
            }
            if kind == "STEP_FAILURE":
                error = getattr(data, "error", None)
                message = (error.message if error is not None else "").strip().splitlines()
                failed_steps.append(
                    {
                        "step": step,
                        "stage": stage_of.get(step, step),
                        "error": (message[0] if message else "unknown error")[:300],
                    }
                )
        elif kind == "STEP_SKIPPED":
            steps[step] = {"stage": stage_of.get(step, step), "seconds": 0.0, "status": "skipped"}
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            add_recorded(step, materialization.metadata, "parse_seconds", "parse_seconds")
            materialized[materialization.asset_key.to_user_string()] = {
                key: value.value
                for key, value in materialization.metadata.items()
                if isinstance(value.value, int | float | str) and not isinstance(value.value, bool)
            }
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            add_recorded(step, evaluation.metadata, "suite_seconds", "gx_seconds")
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            if evaluation.passed:
                checks_passed += 1
            elif evaluation.severity == dg.AssetCheckSeverity.WARN:
                checks_warned.append(name)
            else:
                checks_failed.append(name)

    # Time inside Great Expectations and inside phonenumbers parsing, as the steps recorded it.
    for step, totals in recorded.items():
        if step in steps:
            steps[step].update(totals)
    stages: dict[str, dict[str, Any]] = {}
    for step in steps.values():
        stage = stages.setdefault(
            step["stage"], {"seconds": 0.0, "steps": 0, "gx_seconds": 0.0, "parse_seconds": 0.0}
        )
        stage["seconds"] += step["seconds"]
        stage["steps"] += 1
        stage["gx_seconds"] += step.get("gx_seconds", 0.0)
        stage["parse_seconds"] += step.get("parse_seconds", 0.0)
    for step in steps.values():
        for key in ("gx_seconds", "parse_seconds"):
            if key in step:
                step[key] = round(step[key], 3)
    for stage in stages.values():
        for key in ("seconds", "gx_seconds", "parse_seconds"):
            stage[key] = round(stage[key], 3)
        stage["rows_per_second"] = round(rows / stage["seconds"], 1) if stage["seconds"] else None
    in_steps = sum(step["seconds"] for step in steps.values())

    def meta(asset: str, key: str) -> Any:
        return materialized.get(asset, {}).get(key)

    cache_rows = None
    if settings.restricted_db.exists():
        try:
            with duckdb.connect(str(settings.restricted_db), read_only=True) as con:
                cache_rows = con.execute("SELECT count(*) FROM number_cache").fetchone()[0]
        except duckdb.Error:
            cache_rows = None
    raw_rows = meta("restricted/raw_calls", "dagster/partition_row_count") or rows
    return {
        "status": "success" if result.success else "failed",
        "partition": spec["partition"],
        "run_id": result.run_id,
        "end_to_end_seconds": round(end_to_end, 3),
        "rows": raw_rows,
        "rows_per_second": round(raw_rows / end_to_end, 1),
        "stages": {s: stages[s] for s in [*STAGE_ORDER, *stages] if s in stages},
        "steps": steps,
        "outside_steps_seconds": round(end_to_end - in_steps, 3),
        "failed_steps": failed_steps,
        "checks_passed": checks_passed,
        "checks_failed": checks_failed,
        "checks_warned": checks_warned,
        "numbers_parsed": {
            "calls": meta("restricted/calls_validated", "numbers_parsed_this_run"),
            "consent": meta("restricted/consent_events", "numbers_parsed_this_run"),
        },
        "number_cache_rows": cache_rows,
        "row_counts": {
            asset.split("/")[-1]: meta(asset, "dagster/partition_row_count")
            for asset in (
                "restricted/raw_calls",
                "restricted/calls_validated",
                "restricted/calls_quarantine",
                "restricted/consented_calls",
                "restricted/consent_exclusions",
                "analytics/calls_pseudonymized",
            )
        },
    }


PHASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "prepare": _phase_prepare,
    "regions": _phase_regions,
    "floor": _phase_floor,
    "naive": _phase_naive,
    "cold": _phase_pipeline,
    "warm": _phase_pipeline,
}


def child_main(argv: list[str]) -> int:
    """`python -m phone_pipeline_bench <phase> <spec.json>`: run a phase, write its result."""
    if len(argv) != 2 or argv[0] not in PHASES:
        print(f"usage: python -m phone_pipeline_bench {{{','.join(PHASES)}}} <spec.json>")
        return 2
    phase, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    result = PHASES[phase](spec)
    result_path = Path(spec["result"])
    tmp = result_path.with_name(result_path.name + ".part")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, result_path)
    # A failed run still wrote its result; the parent reads the status from it.
    return 0
