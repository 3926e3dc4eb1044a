"""The record of processing (GDPR Art. 30 style), rendered from what the pipeline itself declares.

Nothing here is written by hand per release: zones and their columns come from the table
catalog, safeguards from the checks each stage declares, evidence from the checks' latest results.
This module only classifies and renders; the asset gathers the facts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Column names -> the category of personal data they hold, first match wins. Kept as rules on
# names (not a list of columns) so that a new column lands in a category, or visibly in "other".
_CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    (r"(^|_)(number|e164)$|^phone_number$|^raw_number$",
     "Phone numbers (direct identifiers: raw and E.164)"),
    (r"pseudonym$", "Pseudonymous subscriber identifiers (keyed HMAC-SHA256)"),
    (r"^(call_id|request_id)$", "Record identifiers from the source"),
    (r"started_at|call_hour|_at$|^since$|listed_since|_seen$", "Call and event times"),
    (r"duration|disposition|campaign", "Call duration, outcome and campaign"),
    (r"cell_id|region|latitude|longitude|geo_region", "Location (cell, region)"),
    (r"country|number_type|time_zones", "Number attributes (country, type, time zones)"),
    (r"^(purpose|status|source|callee_identifiable|callee_erased)$",
     "Consent and erasure records"),
    (r"^max_calls_|^over_|window_status|^flagged$|ratio_to_rest|^affected$",
     "Contact-pressure and fairness findings"),
    (r"(^|_)(calls|rate|subscribers|seconds|suppressed|cells|value|epsilon|delta)$|_calls$",
     "Aggregate figures"),
    (r"^(run_id|as_of|zone|table_name|retention_days|cutoff|rows_deleted|dataset|measure|"
     r"parameter|parameter_upper|sampled|margin_95|applicable|dataset_rows|decision|reasons|"
     r"published_rows|withdrawn_rows|output|budget_per_day|mechanism|key_version|note|action|"
     r"affected_partitions|scope)$",
     "Evidence: measures, decisions and logs of the pipeline (no personal data)"),
)  # fmt: skip
_BOOKKEEPING = re.compile(
    r"^(call_date|content_hash|source_file|source_row|file_name|file_size|mtime_ns|load_order|"
    r"anchor_date|registered_at|timestamp_status|reason|detail|stage|outcome|default_region|rows|"
    r"profile|local_times_nonexistent|local_times_ambiguous|internal_extension)$"
)


def data_categories(columns: Iterable[str]) -> list[str]:
    """The categories of data a set of columns holds, in a stable order; bookkeeping is left out."""
    found: list[str] = []
    for column in columns:
        if _BOOKKEEPING.match(column):
            continue
        category = next(
            (label for pattern, label in _CATEGORY_RULES if re.search(pattern, column)),
            "Other (unclassified: review)",
        )
        if category not in found:
            found.append(category)
    order = [label for _, label in _CATEGORY_RULES] + ["Other (unclassified: review)"]
    return sorted(found, key=order.index)


@dataclass(frozen=True)
class Purpose:
    name: str
    description: str
    legal_basis: str


@dataclass(frozen=True)
class Zone:
    name: str
    file_name: str
    audience: str
    shareable: bool
    retention: str
    tables: dict[str, list[str]]  # table -> its columns

    @property
    def categories(self) -> list[str]:
        return data_categories(column for columns in self.tables.values() for column in columns)


@dataclass(frozen=True)
class Evidence:
    """The latest result of one check: None for `passed` when it has never been evaluated."""

    check: str
    asset: str
    description: str
    blocking: bool
    passed: bool | None = None
    evaluated_at: dt.datetime | None = None
    partition: str | None = None
    # A failed WARN result is a finding (say, a campaign's abandonment rate above the limit):
    # the safeguard worked. Only a failed ERROR result means the safeguard did not hold.
    severity: str = "ERROR"
    # Why a check never evaluated has nothing to prove yet (say, a sweep with nothing past
    # retention); None: it applies, and without a result the safeguard is unproven.
    not_applicable: str | None = None

    @property
    def missing(self) -> bool:
        """Never evaluated although it applies."""
        return self.passed is None and self.not_applicable is None


@dataclass(frozen=True)
class Safeguard:
    name: str
    mechanism: str
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def status(self) -> str:
        """held: every check passed at its latest evaluation (checks not applicable yet aside);
        failed: one did not; unproven: some check that applies has not run yet (a safeguard is
        not claimed without evidence); not applicable: none of its checks applies yet, with why."""
        if not self.evidence:
            return "no check declared"
        if any(item.passed is False and item.severity == "ERROR" for item in self.evidence):
            return "FAILED"
        if any(item.missing for item in self.evidence):
            return "unproven"
        if all(item.passed is None for item in self.evidence):
            reasons = "; ".join(sorted({str(item.not_applicable) for item in self.evidence}))
            return f"not applicable: {reasons}"
        findings = sum(1 for item in self.evidence if item.passed is False)
        return f"held, {findings} finding(s)" if findings else "held"


@dataclass(frozen=True)
class ProcessingRecord:
    controller: str
    generated_at: dt.datetime
    purposes: Sequence[Purpose]
    zones: Sequence[Zone]
    safeguards: Sequence[Safeguard]
    settings: dict[str, str]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def render_markdown(record: ProcessingRecord) -> str:
    """The record as Markdown: readable in the Dagster UI and as a file."""
    lines = [
        "# Record of processing: phone_pipeline",
        "",
        f"Controller: {record.controller}. Generated {_when(record.generated_at)} from the "
        "pipeline's definitions, schemas and latest check results.",
        "",
        "## Purposes",
        "",
        "| purpose | what for | legal basis |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {_cell(p.name)} | {_cell(p.description)} | {_cell(p.legal_basis)} |"
        for p in record.purposes
    ]
    lines += [
        "",
        "## Categories of data, recipients and retention per zone",
        "",
        "| zone | file | recipients | shareable | categories of data | retention |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for zone in record.zones:
        lines.append(
            f"| {zone.name} | `{zone.file_name}` | {_cell(zone.audience)} | "
            f"{'yes' if zone.shareable else 'no'} | {'; '.join(zone.categories) or '(none)'} | "
            f"{_cell(zone.retention)} |"
        )
    lines += ["", "## Safeguards and the latest evidence that each held", ""]
    lines += [
        "| safeguard | status | checks passed | mechanism |",
        "| --- | --- | --- | --- |",
    ]
    for safeguard in record.safeguards:
        passed = sum(1 for item in safeguard.evidence if item.passed)
        lines.append(
            f"| {_cell(safeguard.name)} | **{safeguard.status}** | "
            f"{passed} of {len(safeguard.evidence)} | {_cell(safeguard.mechanism)} |"
        )
    for safeguard in record.safeguards:
        if not safeguard.evidence:
            continue
        lines += [
            "",
            f"### {safeguard.name}",
            "",
            "| check | asset | gate | latest result | when | partition | what it proves |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for item in safeguard.evidence:
            result = {True: "passed", False: "FAILED", None: "not evaluated yet"}[item.passed]
            if item.passed is False and item.severity != "ERROR":
                result = "finding (warning)"
            if item.passed is None and item.not_applicable:
                result = f"not applicable: {item.not_applicable}"
            lines.append(
                f"| `{item.check}` | `{item.asset}` | {'blocking' if item.blocking else 'warning'} "
                f"| {result} | {_when(item.evaluated_at)} | {item.partition or '-'} "
                f"| {_cell(item.description)} |"
            )
    lines += ["", "## Settings in force", "", "| setting | value |", "| --- | --- |"]
    lines += [
        f"| {_cell(name)} | {_cell(value)} |" for name, value in sorted(record.settings.items())
    ]
    return "\n".join(lines) + "\n"
