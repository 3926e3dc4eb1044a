"""The landing zone: which call-log files are there, which are new, and loading a file once.

A file is known by the SHA-256 of its content, so the same file dropped twice, or under another name,
is loaded once. Each row is tagged with its source file and row number and placed in the daily
partition of its call's UTC date; rows whose time cannot be read (or lies outside the partitions)
go to the file's earliest readable date, where validation quarantines them with a reason: every row
of a loaded file lands in exactly one partition. Files in `landing/calls/<profile>/` are read with
that profile (domain/call_formats.py) and recorded under their path there (`asterisk/Master.csv`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import gzip
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import duckdb
import pyarrow as pa

from phone_pipeline.domain.call_formats import (
    MAPPED_COLUMNS,
    SOURCES_FILE,
    CallProfile,
    ProfileError,
    load_profiles,
    map_file,
    profile_folder,
)
from phone_pipeline.domain.contract import CALL_OPTIONAL_COLUMNS, CALL_REQUIRED_COLUMNS
from phone_pipeline.domain.redaction import redact
from phone_pipeline.domain.timestamps import started_at_utc_sql
from phone_pipeline.sql import run
from phone_pipeline.warehouse import transaction

CALL_FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
# Names of files still being written: the sensor and the loader skip them until renamed.
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


class LandingFileError(ValueError):
    """A landing file that cannot be read; the message names the file and the problem."""


@dataclass
class IngestReport:
    loaded: list[str] = field(default_factory=list)
    already_loaded: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # file name -> redacted problem
    rows_loaded: int = 0
    # Local times of profile files on a daylight-saving change (see domain/call_formats.py).
    nonexistent_times: int = 0
    ambiguous_times: int = 0


@dataclass
class LoadedFile:
    rows: int
    nonexistent_times: int = 0
    ambiguous_times: int = 0


def is_landing_file(path: Path, suffixes: tuple[str, ...] = CALL_FILE_SUFFIXES) -> bool:
    name = path.name.lower()
    return (
        path.is_file()
        and not name.startswith(".")
        and not name.endswith(PARTIAL_SUFFIXES)
        and name.endswith(suffixes)
    )


def list_landing_files(folder: Path, suffixes: tuple[str, ...] = CALL_FILE_SUFFIXES) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_landing_file(path, suffixes))


def list_call_files(folder: Path) -> list[Path]:
    """The call-log files of landing/calls: those directly in it (our contract) and those one
    folder down, in `landing/calls/<profile>/` (read with that profile)."""
    if not folder.is_dir():
        return []
    files = list_landing_files(folder)
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            files.extend(list_landing_files(sub))
    return files


def landing_name(folder: Path | None, path: Path) -> str:
    """A call file's name as recorded (source_file, landing_files): its path under
    landing/calls, `Master.csv` or `asterisk/Master.csv` (two systems may use one file name);
    its bare name when no folder is given."""
    if folder is None:
        return path.name
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.name


def sources_file(folder: Path) -> Path:
    """`sources.yaml` in the data home, for the landing/calls folder `folder`."""
    return folder.parent.parent / SOURCES_FILE


def _profiles(path: Path) -> dict[str, CallProfile]:
    """The profiles with `path` (sources.yaml) applied, read again only when the file changed:
    a run asks once per landing file."""
    try:
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        stamp = None
    return _profiles_as_of(path, stamp)


@functools.lru_cache(maxsize=8)
def _profiles_as_of(path: Path, stamp: tuple[int, int] | None) -> dict[str, CallProfile]:
    return load_profiles(path if stamp is not None else None)


def call_file_profile(folder: Path | None, path: Path) -> CallProfile | None:
    """The profile a call file is read with: None for a file directly in landing/calls (our
    contract), else its folder's profile from the built-ins and sources.yaml. Raises
    LandingFileError naming the file and the problem (an unknown profile, a bad sources.yaml)."""
    if folder is None:
        return None
    name = landing_name(folder, path)
    wanted = profile_folder(name)
    if wanted is None:
        return None
    try:
        profiles = _profiles(sources_file(folder))
    except ProfileError as error:
        raise LandingFileError(redact(f"{name}: not read: {error}")) from None
    if wanted not in profiles:
        raise LandingFileError(
            redact(
                f"{name}: no call-log profile {wanted!r} for its folder; known: "
                f"{', '.join(sorted(profiles))} (custom ones under profiles: in {SOURCES_FILE})"
            )
        )
    return profiles[wanted]


# Why a row of a registry file (consent, do-not-call, erasure) was not read: it is quarantined
# with this reason, its file and its row number, and the file's other rows are processed.
TOO_FEW_FIELDS = "too_few_fields"
TOO_MANY_FIELDS = "too_many_fields"
UNPARSABLE_ROW = "unparsable_row"
MALFORMED_ROW_REASONS = (TOO_FEW_FIELDS, TOO_MANY_FIELDS, UNPARSABLE_ROW)


@dataclass
class RegistryRead:
    """What reading a registry folder gave: the unreadable files (redacted name -> problem) and
    the number of malformed rows (in the `<staged_table>_malformed` TEMP table)."""

    unreadable: dict[str, str] = field(default_factory=dict)
    malformed_rows: int = 0


def _open_text(path: Path) -> TextIO:
    # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name.
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def _text_errors_redacted(path: Path) -> Iterator[None]:
    """Decoding, gzip and CSV errors of Python's readers, as a LandingFileError (redacted)."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise LandingFileError(
            f"{redact(path.name)}: not UTF-8 text (binary, or another encoding: byte "
            f"{error.start} cannot be decoded); save it as UTF-8 CSV"
        ) from None
    except (OSError, EOFError, csv.Error) as error:  # gzip.BadGzipFile is an OSError
        raise LandingFileError(f"{redact(path.name)}: not readable: {redact(str(error))}") from None


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first row; raises LandingFileError (no header, not
    UTF-8, not gzip)."""
    with _text_errors_redacted(path), _open_text(path) as handle:
        for row in csv.reader(handle, strict=True):
            if row:
                return row
    raise LandingFileError(f"{redact(path.name)}: empty file, no header row")


def _column_positions(path: Path, header: list[str], required: tuple[str, ...]) -> dict[str, int]:
    """Column name (lower case, stripped) -> its position; raises LandingFileError when a
    required column is missing."""
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        positions.setdefault(name.strip().lower(), position)
    missing = [name for name in required if name not in positions]
    if missing:
        # The "columns" may be a data line read as a header: redact them like any text.
        raise LandingFileError(
            redact(
                f"{path.name}: missing required column(s) {', '.join(missing)}; "
                f"found {', '.join(sorted(positions)) or 'none'}"
            )
        )
    return positions


def read_registry_rows(
    path: Path, columns: tuple[str, ...], positions: dict[str, int], width: int
) -> tuple[list[tuple], list[tuple[int, str, str]]]:
    """Read a CSV file row by row: (good rows as (source_row, *columns), malformed rows as
    (source_row, reason, detail)). Rows are numbered from 1 after the header, blank lines are
    not rows (DuckDB's reader numbers them alike). Raises LandingFileError when the file as a
    whole cannot be read."""
    good: list[tuple] = []
    malformed: list[tuple[int, str, str]] = []
    with _text_errors_redacted(path), _open_text(path) as handle:
        reader = csv.reader(handle, strict=True)
        header_read = False
        source_row = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                if not header_read:
                    raise
                source_row += 1
                # The message names a character class, never the line's text.
                malformed.append((source_row, UNPARSABLE_ROW, str(error)))
                continue
            if not row:
                continue
            if not header_read:
                header_read = True
                continue
            source_row += 1
            if len(row) != width:
                reason = TOO_FEW_FIELDS if len(row) < width else TOO_MANY_FIELDS
                malformed.append((source_row, reason, f"{len(row)} fields, the header has {width}"))
                continue
            good.append(
                (source_row, *((row[positions[name]] or None) if name in positions else None
                               for name in columns))
            )  # fmt: skip
    return good, malformed


def _stage_registry_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    required: tuple[str, ...],
    optional: tuple[str, ...],
) -> list[tuple[int, str, str]]:
    """Read one registry CSV file into the TEMP table `registry_file` (source_row, columns);
    returns its malformed rows. DuckDB reads a well-formed file (fast); a file it refuses is
    read again row by row, so that one bad row does not hide the file's good ones."""
    header = csv_header(path)
    positions = _column_positions(path, header, required)
    columns = (*required, *optional)
    # The header read above names the columns: DuckDB's sniffer can take a wide data row of a
    # small file for the header (and then read no row at all).
    file_columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    selected = ", ".join(
        f"c{positions[name]} AS {name}" if name in positions else f"CAST(NULL AS VARCHAR) AS {name}"
        for name in columns
    )
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE registry_file_text AS SELECT {selected} FROM read_csv("
            f"{_quoted(path)}, header = true, auto_detect = false, columns = {file_columns}, "
            "delim = ',', quote = '\"', escape = '\"', strict_mode = true)"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE registry_file AS "
            f"SELECT * FROM {numbered_rows_sql('registry_file_text')}"
        )
        return []
    except duckdb.Error:
        pass  # read again row by row below, which says which rows are at fault
    finally:
        con.execute("DROP TABLE IF EXISTS registry_file_text")
    good, malformed = read_registry_rows(path, columns, positions, len(header))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE registry_file (source_row BIGINT, "
        + ", ".join(f"{name} VARCHAR" for name in columns)
        + ")"
    )
    if good:
        # One Arrow table, not executemany: a million rows are inserted in a second, not minutes.
        con.register(
            "registry_file_rows",
            pa.table(
                dict(zip(("source_row", *columns), map(list, zip(*good, strict=True)), strict=True))
            ),
        )
        con.execute("INSERT INTO registry_file BY NAME SELECT * FROM registry_file_rows")
        con.unregister("registry_file_rows")
    return malformed


def stage_registry_files(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    staged_table: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    suffixes: tuple[str, ...] = CALL_FILE_SUFFIXES,
) -> RegistryRead:
    """Append the rows of every file of a registry folder (consent, do-not-call, erasure
    requests) to `staged_table`, with their `source_file` and `source_row`.

    Read row by row: a malformed row (too few or too many fields, broken quoting) goes to the
    TEMP table `<staged_table>_malformed` (source_file, source_row, reason, detail) and the
    file's other rows are staged. A file that cannot be read at all (not UTF-8, not gzip, no
    header, a required column missing) is reported, redacted name -> problem, without stopping
    the others.
    """
    read = RegistryRead()
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {staged_table}_malformed (source_file VARCHAR, "
        "source_row BIGINT, reason VARCHAR, detail VARCHAR)"
    )
    for path in list_landing_files(folder, suffixes):
        try:
            if path.name.lower().endswith(".parquet"):
                # Parquet has no malformed rows: its columns are typed and its rows whole.
                stage_file(con, path, required, optional, stage_table="registry_file")
                malformed = []
            else:
                malformed = _stage_registry_csv(con, path, required, optional)
        except LandingFileError as error:
            name = redact(path.name)
            while name in read.unreadable:  # two names redacted alike must not hide a problem
                name += "'"
            read.unreadable[name] = str(error)
            continue
        con.execute(
            f"INSERT INTO {staged_table} BY NAME SELECT ? AS source_file, * FROM registry_file",
            [path.name],
        )
        if malformed:
            con.executemany(
                f"INSERT INTO {staged_table}_malformed VALUES (?, ?, ?, ?)",
                [(path.name, *row) for row in malformed],
            )
            read.malformed_rows += len(malformed)
    return read


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _quoted(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def read_text_table_sql(path: Path) -> str:
    """A relation over the file with every column as text: digits-only numbers keep `+` and
    leading zeros, and `N/A` stays a string for validation to judge."""
    if path.name.lower().endswith(".parquet"):
        return f"read_parquet({_quoted(path)})"
    return (
        f"read_csv({_quoted(path)}, header = true, all_varchar = true, delim = ',', "
        "quote = '\"', escape = '\"', strict_mode = true)"
    )


def _file_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    return [
        row[0]
        for row in con.execute(f"DESCRIBE SELECT * FROM {read_text_table_sql(path)}").fetchall()
    ]


@contextlib.contextmanager
def _read_errors_redacted(path: Path) -> Iterator[None]:
    """DuckDB quotes offending lines, which may hold phone numbers: a read error becomes a
    LandingFileError with the file's name and its first line, both redacted."""
    try:
        yield
    except duckdb.Error as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        # The file's name, not its path: a path says where a user's home is, the name suffices.
        first_line = first_line.replace(str(path), path.name)
        raise LandingFileError(f"{redact(path.name)}: not readable: {redact(first_line)}") from None


def stage_text_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    text_table: str,
    derived: dict[str, str] | None = None,
) -> int:
    """Read `path` into a TEMP table of text columns, in the file's order; raises LandingFileError.

    Column names are matched case-insensitively; extra columns are not read (data minimisation).
    `derived` adds columns computed from the text ones (name -> SQL expression) while reading.
    Number its rows with `numbered_rows_sql`.
    """
    with _read_errors_redacted(path):
        columns = {name.strip().lower(): name for name in _file_columns(con, path)}
        missing = [name for name in required if name not in columns]
        if missing:
            # The "columns" may be a data line read as a header: redact them like any text.
            raise LandingFileError(
                redact(
                    f"{path.name}: missing required column(s) {', '.join(missing)}; "
                    f"found {', '.join(sorted(columns)) or 'none'}"
                )
            )
        selected = ", ".join(
            f'CAST("{columns[name]}" AS VARCHAR) AS {name}'
            if name in columns
            else f"CAST(NULL AS VARCHAR) AS {name}"
            for name in (*required, *optional)
        )
        extra = "".join(f", {expression} AS {name}" for name, expression in (derived or {}).items())
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {text_table} AS "
            f"SELECT *{extra} FROM (SELECT {selected} FROM {read_text_table_sql(path)})"
        )
    return con.execute(f"SELECT count(*) FROM {text_table}").fetchone()[0]


def profiles_in_use(folder: Path) -> dict[str, CallProfile]:
    """The profiles of landing/calls' profile folders that hold call files (an unknown profile
    or a bad sources.yaml is left out here: its files are reported as unreadable)."""
    found: dict[str, CallProfile] = {}
    for path in list_call_files(folder):
        try:
            profile = call_file_profile(folder, path)
        except LandingFileError:
            continue
        if profile is not None:
            found[profile.name] = profile
    return found


def stage_profile_file(
    con: duckdb.DuckDBPyConnection, path: Path, name: str, profile: CallProfile, text_table: str
) -> LoadedFile:
    """Read a file with its profile into a TEMP table of contract columns (text) with
    `started_at_utc` and `internal_extension`, in the file's order, like `stage_text_file`
    with the contract's `derived` columns; raises LandingFileError."""
    try:
        with _text_errors_redacted(path):
            mapped = map_file(path, name, profile)
    except ProfileError as error:
        raise LandingFileError(redact(str(error))) from None
    columns = {column: pa.array(mapped.rows[column], pa.string()) for column in MAPPED_COLUMNS}
    columns["started_at_utc"] = pa.array(mapped.rows["started_at_utc"], pa.timestamp("us", "UTC"))
    columns["internal_extension"] = pa.array(mapped.rows["internal_extension"], pa.string())
    con.register("profile_rows", pa.table(columns))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {text_table} AS SELECT * FROM profile_rows")
    finally:
        con.unregister("profile_rows")
    return LoadedFile(mapped.row_count, mapped.nonexistent_times, mapped.ambiguous_times)


# The contract's derived columns: its times read as written; its rows judged by no profile.
_CONTRACT_DERIVED = {
    "started_at_utc": started_at_utc_sql("started_at"),
    "internal_extension": "CAST(NULL AS VARCHAR)",
}


def _stage_call_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    name: str,
    profile: CallProfile | None,
    text_table: str,
) -> LoadedFile:
    if profile is not None:
        return stage_profile_file(con, path, name, profile, text_table)
    rows = stage_text_file(
        con, path, CALL_REQUIRED_COLUMNS, CALL_OPTIONAL_COLUMNS, text_table, _CONTRACT_DERIVED
    )
    return LoadedFile(rows)


def numbered_rows_sql(text_table: str) -> str:
    """The rows of a table made by `stage_text_file`, with their 1-based `source_row`.

    Rows keep the file's order (DuckDB preserves insertion order), so a row's number is its
    rowid + 1 in a table read straight from the file: numbering while reading,
    row_number() OVER (), doubled the cost of reading a 10M-row file.
    """
    return f"(SELECT rowid + 1 AS source_row, * FROM {text_table})"


def stage_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    stage_table: str = "landing_stage",
    derived: dict[str, str] | None = None,
) -> int:
    """Read `path` into a TEMP table of text columns (and `derived` ones) plus `source_row`;
    raises LandingFileError."""
    rows = stage_text_file(con, path, required, optional, f"{stage_table}_text", derived)
    with _read_errors_redacted(path):
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {stage_table} AS "
            f"SELECT * FROM {numbered_rows_sql(f'{stage_table}_text')}"
        )
        con.execute(f"DROP TABLE {stage_table}_text")
    return rows


# A row's timestamp status: its time unreadable, outside the partitions ($first_date to
# $last_date), or ok.
_TIMESTAMP_STATUS_SQL = (
    "CASE WHEN started_at_utc IS NULL THEN 'unreadable' "
    "WHEN CAST(started_at_utc AS DATE) NOT BETWEEN $first_date AND $last_date "
    "THEN 'out_of_range' ELSE 'ok' END"
)


def load_call_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    file_hash: str,
    first_date: dt.date,
    last_date: dt.date,
    folder: Path | None = None,
) -> LoadedFile:
    """Load one call-log file into `raw_calls` and register it, in one transaction; a file in
    a profile's folder under `folder` (landing/calls) is read with that profile."""
    status = _TIMESTAMP_STATUS_SQL
    values = {"first_date": first_date, "last_date": last_date}
    name = landing_name(folder, path)
    profile = call_file_profile(folder, path)
    # Times are parsed while the file is read, and the rows numbered as they are written: a
    # staged copy numbered and parsed in between cost 4 s more at 10M rows.
    loaded = _stage_call_file(con, path, name, profile, "landing_stage_text")
    rows = loaded.rows
    try:
        anchor = run(
            con,
            f"SELECT min(CAST(started_at_utc AS DATE)) FROM landing_stage_text WHERE {status} = 'ok'",
            values,
        ).fetchone()[0]
        if anchor is None:
            raise LandingFileError(
                f"{redact(path.name)}: no row has a readable started_at between {first_date} "
                f"and {last_date} ({rows} rows), so its rows cannot be placed in a daily partition"
            )
        with transaction(con):
            load_order = con.execute(
                "SELECT coalesce(max(load_order), 0) + 1 FROM landing_files"
            ).fetchone()[0]
            run(
                con,
                f"""
                INSERT INTO raw_calls BY NAME
                SELECT CASE WHEN timestamp_status = 'ok' THEN CAST(started_at_utc AS DATE)
                            ELSE $anchor END AS call_date,
                       $content_hash AS content_hash, $source_file AS source_file,
                       source_row, call_id, caller_number, callee_number, started_at,
                       duration_seconds, disposition, cell_id, started_at_utc, timestamp_status,
                       campaign_id, internal_extension
                FROM (SELECT *, {status} AS timestamp_status
                      FROM {numbered_rows_sql("landing_stage_text")})
                """,
                {**values, "anchor": anchor, "content_hash": file_hash, "source_file": name},
            )
            con.execute(
                "INSERT INTO landing_files (content_hash, file_name, file_size, rows, "
                "anchor_date, load_order, registered_at, profile, local_times_nonexistent, "
                "local_times_ambiguous) VALUES (?, ?, ?, ?, ?, ?, now(), ?, ?, ?)",
                [
                    file_hash, name, path.stat().st_size, rows, anchor, load_order,
                    profile.name if profile else None, loaded.nonexistent_times,
                    loaded.ambiguous_times,
                ],
            )  # fmt: skip
    finally:
        con.execute("DROP TABLE IF EXISTS landing_stage_text")
    return loaded


def ingest_new_files(
    con: duckdb.DuckDBPyConnection, folder: Path, first_date: dt.date, last_date: dt.date
) -> IngestReport:
    """Load every landing file whose content is not registered yet. Unreadable files are reported,
    not registered, so that a corrected file is picked up next time; nothing loaded is touched."""
    report = IngestReport()
    known = {row[0] for row in con.execute("SELECT content_hash FROM landing_files").fetchall()}
    hashed = {
        (name, size, mtime): file_hash
        for name, size, mtime, file_hash in con.execute(
            "SELECT file_name, file_size, mtime_ns, content_hash FROM landing_file_signatures"
        ).fetchall()
    }
    for path in list_call_files(folder):
        stat = path.stat()
        name = landing_name(folder, path)
        signature = (name, stat.st_size, stat.st_mtime_ns)
        # Same name, size and modification time as a file hashed before: the same content
        # (rsync's rule); anything else is hashed again.
        file_hash = hashed.get(signature) or content_hash(path)
        if file_hash not in known:
            try:
                loaded = load_call_file(con, path, file_hash, first_date, last_date, folder)
            except LandingFileError as error:
                shown = redact(name)
                while shown in report.rejected:  # two names redacted alike must not hide a problem
                    shown += "'"
                report.rejected[shown] = str(error)
                continue
            report.rows_loaded += loaded.rows
            report.nonexistent_times += loaded.nonexistent_times
            report.ambiguous_times += loaded.ambiguous_times
            known.add(file_hash)
            report.loaded.append(name)
        else:
            report.already_loaded.append(name)
        if signature not in hashed:
            con.execute(
                "INSERT OR IGNORE INTO landing_file_signatures VALUES (?, ?, ?, ?)",
                [*signature, file_hash],
            )
            hashed[signature] = file_hash
    return report


def call_dates_in_file(
    path: Path, first_date: dt.date, last_date: dt.date, folder: Path | None = None
) -> set[dt.date]:
    """The partitions a file's rows will land in (what a sensor asks before requesting runs);
    a file in a profile's folder under `folder` (landing/calls) is read with that profile."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        name = landing_name(folder, path)
        _stage_call_file(con, path, name, call_file_profile(folder, path), "landing_stage")
        dates = {
            row[0]
            for row in run(
                con,
                "SELECT DISTINCT CAST(started_at_utc AS DATE) FROM landing_stage "
                "WHERE CAST(started_at_utc AS DATE) BETWEEN $first_date AND $last_date",
                {"first_date": first_date, "last_date": last_date},
            ).fetchall()
        }
    finally:
        con.close()
    return dates
