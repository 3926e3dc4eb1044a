"""Every setting of the pipeline, declared once: its environment variable, type, default, allowed
values, meaning, whether it is a secret, and what consumes it.

`Settings` is loaded from these declarations; the Dagster resources take their config defaults from
them (resources.py), and the README's configuration table is generated from them:

    python -m phone_pipeline.settings --markdown

Secrets (the pseudonym keys) are declared here too, but never loaded into `Settings`: their resource
reads them through `dg.EnvVar`, so a key never sits in a config object that could be printed. No
Dagster here, and the environment is read only by `load_settings` and `Setting.read`.

A data home may hold `settings.toml` (HOME_SETTINGS_FILE): values for the same variables, read by
`load_settings` for every process on that home (the CLI, `dg dev`'s webserver, daemon and runs);
a variable set in the environment overrides it. `phone-pipeline generate` and `demo` record the
first day they generate there, so that the partitions start where the data does.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phone_pipeline import catalog

# What consumes a setting: the resource (or domain rule) that reads it, or `Settings` alone (the
# sensors, the partitions, the DuckDB connections, the record of processing).
PIPELINE_CONFIG = "PipelineConfig"
CONTACT_RULES = "ContactRules"
PSEUDONYM_KEY = "PseudonymKeyResource"
SETTINGS_ONLY = "Settings"
DAGSTER = "Dagster instance"


class SettingError(ValueError):
    """A setting's value in the environment is malformed or out of range; names the variable."""


@dataclass(frozen=True)
class Rule:
    """An allowed range or format: `accepts` says whether a typed value is allowed, `text` says
    which values are (in errors and the README)."""

    text: str
    accepts: Callable[[Any], bool]


def at_least(low: float) -> Rule:
    return Rule(f">= {low}", lambda value: math.isfinite(value) and value >= low)


def above(low: float) -> Rule:
    return Rule(f"> {low}", lambda value: math.isfinite(value) and value > low)


def share() -> Rule:
    return Rule("0 to 1", lambda value: 0 <= value <= 1)


def _is_iso_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_window(text: str) -> bool:
    from phone_pipeline.domain.contact import PermittedWindow  # the rule the compliance stage uses

    try:
        PermittedWindow.parse(text)
    except ValueError:
        return False
    return True


ISO_DATE = Rule("a date, YYYY-MM-DD", _is_iso_date)
WINDOW = Rule("HH:MM-HH:MM (may cross midnight)", _is_window)


@dataclass(frozen=True)
class Setting:
    """One setting. `name` is its attribute in `Settings` and in the consuming resource."""

    name: str
    env: str
    type: type
    default: Any
    description: str
    consumer: str
    rule: Rule | None = None
    secret: bool = False
    # False: not part of `Settings` (the keys, read by their resource; DAGSTER_HOME, by Dagster).
    in_settings: bool = True
    # README text for a default that is not shown as its value ("(required)", "highest", ...).
    shown_default: str | None = None
    # Applied to the default and to a value read (e.g. the region's upper case).
    finish: Callable[[Any], Any] | None = None

    def parse(self, text: str) -> Any:
        """The typed, checked value of `text`; an error names the variable (never a secret's
        value)."""
        shown = "(value not shown: a secret)" if self.secret else repr(text)
        try:
            value = self.type(text)
        except ValueError:
            raise SettingError(
                f"{self.env}={shown} is not {_TYPE_WORDS.get(self.type, self.type.__name__)}"
            ) from None
        if self.rule is not None and not self.rule.accepts(value):
            raise SettingError(f"{self.env}={shown} is not allowed: must be {self.rule.text}")
        return self.finish(value) if self.finish else value

    def read(
        self, environ: Mapping[str, str] | None = None, home_file: HomeSettings | None = None
    ) -> Any:
        """The value in `environ` (default: the process environment); unset or blank: the value
        in the data home's settings file, if any; else the default."""
        text = (os.environ if environ is None else environ).get(self.env, "").strip()
        if text:
            return self.parse(text)
        if home_file is not None and self.env in home_file.values:
            try:
                return self.parse(home_file.values[self.env])
            except SettingError as error:
                raise SettingError(f"{error} (set in {home_file.path})") from None
        return self.finish(self.default) if self.finish else self.default


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a text", Path: "a path"}

# In the data home: values for the settings of the processes working on it (see the docstring).
HOME_SETTINGS_FILE = "settings.toml"


@dataclass(frozen=True)
class HomeSettings:
    """The data home's settings file: variable -> its value as text."""

    path: Path
    values: dict[str, str]


def read_home_settings(home: Path) -> HomeSettings:
    """`<home>/settings.toml` (empty when there is none). A malformed file, or a name that is no
    setting it may hold (the home itself, DAGSTER_HOME, a key: those come from the environment
    only), is an error naming the file; a secret's value is never repeated."""
    path = home / HOME_SETTINGS_FILE
    if not path.is_file():
        return HomeSettings(path, {})
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingError(f"{path} is not a valid TOML file: {error}") from None
    allowed = {
        setting.env for setting in SETTINGS if setting.in_settings and setting.name != "home"
    }
    values: dict[str, str] = {}
    for name, value in table.items():
        if name not in allowed:
            raise SettingError(
                f"{path}: {name} cannot be set in the data home's settings file (only these: "
                f"{', '.join(sorted(allowed))}; the home, DAGSTER_HOME and the keys come from "
                "the environment)"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise SettingError(f"{path}: {name} must be a text or a number")
        values[name] = str(value)
    return HomeSettings(path, values)


def record_first_day(home: Path, day: dt.date) -> dt.date:
    """Make `day` the data home's first partition (PHONE_PIPELINE_START_DATE in its settings
    file) unless the file already names an earlier one; return the day recorded. Called by
    `generate`: the partitions then start where its data does, for every process on the home.
    Written atomically; the file's other values are kept (its comments are not)."""
    current = read_home_settings(home)
    name = env_name("partitions_start_date")
    recorded = current.values.get(name)
    if recorded is not None and SETTING["partitions_start_date"].parse(recorded) <= day.isoformat():
        return dt.date.fromisoformat(recorded)
    values = {**current.values, name: day.isoformat()}
    lines = [
        "# Settings of this data home, read by every phone_pipeline process working on it; an",
        "# environment variable of the same name overrides a value here.",
        *(f"{key} = {_toml_text(value)}" for key, value in sorted(values.items())),
    ]
    home.mkdir(parents=True, exist_ok=True)
    partial = current.path.with_name(current.path.name + ".part")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(current.path)
    return day


def _toml_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _or_none(value: int) -> int | None:
    return value or None


def _upper(value: str) -> str:
    return value.upper()


def _resolved(value: Path) -> Path:
    return Path(value).resolve()


SETTINGS: tuple[Setting, ...] = (
    Setting("home", "PHONE_PIPELINE_HOME", Path, Path("data"),
            "data home (landing files, warehouse, Dagster instance)",
            SETTINGS_ONLY, shown_default="`./data`", finish=_resolved),
    Setting("key", "PHONE_PIPELINE_PSEUDONYM_KEY", str, "",
            "HMAC key: 64 random hex digits (`python3 -c 'import secrets; "
            "print(secrets.token_hex(32))'`), or a random text of at least 32 bytes; weak keys are "
            "refused (see Key management). Read through `dg.EnvVar`, never logged",
            PSEUDONYM_KEY, secret=True, in_settings=False, shown_default="(required)"),
    Setting("key_version", "PHONE_PIPELINE_PSEUDONYM_KEY_VERSION", int, 1,
            "version written into every pseudonym (`v1:...`)",
            PSEUDONYM_KEY, at_least(1), in_settings=False),
    Setting("default_region", "PHONE_PIPELINE_DEFAULT_REGION", str, "US",
            "region for numbers without a country code", PIPELINE_CONFIG, finish=_upper),
    Setting("min_cell_size", "PHONE_PIPELINE_MIN_CELL_SIZE", int, 5,
            "smallest number of distinct subscribers a published cell may describe",
            PIPELINE_CONFIG, at_least(1)),
    Setting("max_quarantine_share", "PHONE_PIPELINE_MAX_QUARANTINE_SHARE", float, 0.2,
            "a partition with a larger share of quarantined rows fails its gate",
            PIPELINE_CONFIG, share()),
    Setting("max_call_seconds", "PHONE_PIPELINE_MAX_CALL_SECONDS", int, 86_400,
            "longer durations are quarantined as absurd", PIPELINE_CONFIG, at_least(1)),
    Setting("partitions_start_date", "PHONE_PIPELINE_START_DATE", str, "2024-01-01",
            "first daily partition; `phone-pipeline generate` and `demo` record the first day "
            "they generate in the data home's `settings.toml` (see above)",
            PIPELINE_CONFIG, ISO_DATE),
    Setting("sensor_interval_seconds", "PHONE_PIPELINE_SENSOR_INTERVAL_SECONDS", int, 30,
            "how often the landing sensor looks", SETTINGS_ONLY, at_least(1)),
    Setting("settle_seconds", "PHONE_PIPELINE_SETTLE_SECONDS", float, 5.0,
            "a file unchanged this long (or since the last tick) is complete",
            SETTINGS_ONLY, at_least(0)),
    # DuckDB's default takes 80% of RAM; bounded, it spills to disk instead. DuckDB checks the
    # format itself when a connection opens.
    Setting("duckdb_memory_limit", "PHONE_PIPELINE_DUCKDB_MEMORY_LIMIT", str, "2GB",
            "DuckDB's memory limit; beyond it DuckDB spills to disk", SETTINGS_ONLY),
    Setting("dagster_home", "DAGSTER_HOME", str, "",
            "Dagster instance (runs, cursors)", DAGSTER, in_settings=False,
            shown_default="`$PHONE_PIPELINE_HOME/dagster_home`"),
    Setting("controller", "PHONE_PIPELINE_CONTROLLER", str, "",
            "the controller named in the record of processing", SETTINGS_ONLY),
    Setting("versioned_keys", "PHONE_PIPELINE_PSEUDONYM_KEYS", str, "",
            "several keys, `1:<hex>,2:<hex>` (each >= 256 bits); the highest version is primary. "
            "Read through `dg.EnvVar`", PSEUDONYM_KEY, secret=True, in_settings=False,
            shown_default="(none)"),
    Setting("key_file", "PHONE_PIPELINE_PSEUDONYM_KEY_FILE", str, "",
            "a file of `<version>:<hex>` lines (`#` comments); refused inside the data home or "
            "the repository", PSEUDONYM_KEY, in_settings=False, shown_default="(none)"),
    Setting("primary_version", "PHONE_PIPELINE_PSEUDONYM_PRIMARY_VERSION", int, 0,
            "the key version new pseudonyms are made with", PSEUDONYM_KEY, at_least(0),
            in_settings=False, shown_default="highest"),
    Setting("retention_restricted_days", "PHONE_PIPELINE_RETENTION_RESTRICTED_DAYS", int, 90,
            "days the restricted call rows are kept (0 = forever); older days are still processed "
            "(a backfill) and swept at the end of their run; see Retention",
            PIPELINE_CONFIG, at_least(0)),
    Setting("retention_pseudonymized_days", "PHONE_PIPELINE_RETENTION_PSEUDONYMIZED_DAYS", int,
            396, "days `analytics.calls_pseudonymized` is kept (about 13 months; 0 = forever)",
            PIPELINE_CONFIG, at_least(0)),
    Setting("retention_aggregates_days", "PHONE_PIPELINE_RETENTION_AGGREGATES_DAYS", int, 0,
            "days the aggregates and row accounting are kept (0 = forever)",
            PIPELINE_CONFIG, at_least(0)),
    Setting("dp_outputs", "PHONE_PIPELINE_DP_OUTPUTS", str, "",
            "aggregates published with differential privacy: "
            + ", ".join(f"`{table.name}`" for table in catalog.AGGREGATES)
            + " (comma-separated); see Differential privacy",
            PIPELINE_CONFIG, shown_default="(empty: off)"),
    Setting("dp_epsilon", "PHONE_PIPELINE_DP_EPSILON", float, 1.0,
            "epsilon per DP output per day partition", PIPELINE_CONFIG, above(0)),
    Setting("dp_budget_per_day", "PHONE_PIPELINE_DP_BUDGET_PER_DAY", float, 4.0,
            "total epsilon a day (subscriber-day) may spend over all DP publications, re-runs "
            "included", PIPELINE_CONFIG, above(0)),
    Setting("dp_max_calls_per_cell", "PHONE_PIPELINE_DP_MAX_CALLS_PER_CELL", int, 3,
            "L: calls of one subscriber counted per cell", PIPELINE_CONFIG, at_least(1)),
    Setting("dp_max_cells_per_subscriber", "PHONE_PIPELINE_DP_MAX_CELLS_PER_SUBSCRIBER", int, 4,
            "C: cells one subscriber contributes to per day and output",
            PIPELINE_CONFIG, at_least(1)),
    Setting("dp_max_duration_seconds", "PHONE_PIPELINE_DP_MAX_DURATION_SECONDS", int, 600,
            "D: call durations are clamped to this before summing", PIPELINE_CONFIG, at_least(1)),
    # 0 (unset): k is the minimum cell size; `Settings` holds None for it.
    Setting("risk_k", "PHONE_PIPELINE_RISK_K", int, 0,
            "k of the risk gate's k-anonymity", PIPELINE_CONFIG, at_least(0),
            shown_default="the minimum cell size", finish=_or_none),
    Setting("max_share_below_k", "PHONE_PIPELINE_MAX_SHARE_BELOW_K", float, 0.0,
            "largest share of subscribers in groups below k a shared dataset may have",
            PIPELINE_CONFIG, share()),
    Setting("max_unicity", "PHONE_PIPELINE_MAX_UNICITY", float, 0.05,
            "largest unicity (p = 1..4) a shared dataset may have", PIPELINE_CONFIG, share()),
    Setting("unicity_sample_size", "PHONE_PIPELINE_UNICITY_SAMPLE_SIZE", int, 10_000,
            "subscribers sampled per p to estimate unicity", PIPELINE_CONFIG, at_least(1)),
    Setting("max_calls_24h", "PHONE_PIPELINE_MAX_CALLS_24H", int, 3,
            "more calls than this to one callee in 24 hours are flagged (and reaching it puts the "
            "number on the scrub list)", CONTACT_RULES, at_least(0)),
    Setting("max_calls_7d", "PHONE_PIPELINE_MAX_CALLS_7D", int, 7,
            "the same over 7 days", CONTACT_RULES, at_least(0)),
    Setting("permitted_window", "PHONE_PIPELINE_PERMITTED_CALL_WINDOW", str, "08:00-21:00",
            "permitted calling hours in the callee's local time (start inclusive, end exclusive)",
            CONTACT_RULES, WINDOW),
    Setting("max_abandonment_rate", "PHONE_PIPELINE_MAX_ABANDONMENT_RATE", float, 0.03,
            "a campaign-day strictly above it is a finding (a rate exactly at it is not)",
            CONTACT_RULES, share()),
    Setting("fairness_ratio", "PHONE_PIPELINE_FAIRNESS_RATIO", float, 2.0,
            "a group whose rate is at least this many times the rest's is flagged",
            CONTACT_RULES, above(0)),
    Setting("fairness_min_group_rows", "PHONE_PIPELINE_FAIRNESS_MIN_GROUP_ROWS", int, 50,
            "... if it has at least this many rows", CONTACT_RULES, at_least(0)),
)  # fmt: skip

SETTING: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def default(name: str) -> Any:
    """The declared default of setting `name` (as its consumer's config holds it)."""
    return SETTING[name].default


def env_name(name: str) -> str:
    """The environment variable of setting `name` (named in refusals and descriptions)."""
    return SETTING[name].env


@dataclass(frozen=True)
class Settings:
    """The deployment's settings, loaded from the environment by `load_settings` (the declarations
    above give each one's variable, default and allowed values)."""

    home: Path
    default_region: str
    min_cell_size: int
    max_quarantine_share: float
    max_call_seconds: int
    partitions_start_date: str
    sensor_interval_seconds: int
    settle_seconds: float
    duckdb_memory_limit: str
    # Named in the record of processing (the organisation responsible for the processing).
    controller: str
    # Retention in days per zone (0 = kept forever); see domain/retention.py.
    retention_restricted_days: int
    retention_pseudonymized_days: int
    retention_aggregates_days: int
    # Re-identification risk gate of the shareable zone (see domain/risk.py); None: min_cell_size.
    risk_k: int | None
    max_share_below_k: float
    max_unicity: float
    unicity_sample_size: int
    # Responsible contact (compliance zone): frequency caps, permitted local window, abandonment.
    max_calls_24h: int
    max_calls_7d: int
    permitted_window: str
    max_abandonment_rate: float
    # Fairness report: a group is flagged at this ratio to the rest, from this many rows.
    fairness_ratio: float
    fairness_min_group_rows: int
    # Differential privacy of published aggregates; see domain/privacy.py.
    dp_outputs: str
    dp_epsilon: float
    dp_budget_per_day: float
    dp_max_calls_per_cell: int
    dp_max_cells_per_subscriber: int
    dp_max_duration_seconds: int

    @property
    def landing_calls(self) -> Path:
        return self.home / "landing" / "calls"

    @property
    def landing_consent(self) -> Path:
        return self.home / "landing" / "consent"

    @property
    def landing_dnc(self) -> Path:
        return self.home / "landing" / "dnc"

    @property
    def cells_file(self) -> Path:
        return self.home / "landing" / "cells.csv"

    @property
    def restricted_db(self) -> Path:
        return self.home / "warehouse" / "restricted.duckdb"

    @property
    def analytics_db(self) -> Path:
        return self.home / "warehouse" / "analytics.duckdb"

    @property
    def compliance_db(self) -> Path:
        return self.home / "warehouse" / "compliance.duckdb"

    @property
    def shareable_db(self) -> Path:
        return self.home / "warehouse" / "shareable.duckdb"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get(env_name("dagster_home")) or self.home / "dagster_home")

    def ensure_folders(self) -> None:
        for folder in (self.landing_calls, self.landing_consent, self.restricted_db.parent):
            folder.mkdir(parents=True, exist_ok=True)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from `environ` (default: the process environment), then the data home's
    settings file, then the declared defaults. Every malformed or out-of-range value is reported
    at once, each by its variable (and the file, if it came from there)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    home = SETTING["home"].read(environ)  # where the settings file is: from the environment only
    home_file = read_home_settings(home)
    for setting in SETTINGS:
        if not setting.in_settings:
            continue
        try:
            values[setting.name] = setting.read(environ, home_file)
        except SettingError as error:
            problems.append(str(error))
    if problems:
        raise SettingError("; ".join(problems))
    return Settings(**values)


def _shown_default(setting: Setting) -> str:
    if setting.shown_default is not None:
        return setting.shown_default
    if setting.default == "":
        return "(empty)"
    return f"`{setting.default}`"


def _allowed(setting: Setting) -> str:
    words = {int: "integer", float: "number", str: "text", Path: "path"}[setting.type]
    if setting.rule is None:
        return words
    # A format (date, window) names its own kind; a range needs the number's.
    return setting.rule.text if setting.type is str else f"{words} {setting.rule.text}"


def markdown_table() -> str:
    """The README's configuration table (one row per declared setting, in declaration order)."""
    lines = ["| variable | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        secret = "; a secret" if setting.secret else ""
        lines.append(
            f"| `{setting.env}` | {_shown_default(setting)} | {_allowed(setting)}{secret} "
            f"| {setting.description} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m phone_pipeline.settings", description="The pipeline's settings."
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the README's configuration table"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    # The loaded values (never a secret: those are not part of Settings).
    try:
        settings = load_settings()
    except SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for setting in SETTINGS:
        if setting.in_settings:
            print(f"{setting.env}={getattr(settings, setting.name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
