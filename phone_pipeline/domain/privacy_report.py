"""The privacy report a data protection officer reads: what the pipeline did to people's data,
per day and over the last 30 days, from the evidence tables the stages already write.

Counts and aggregates only: the report is built from row accounting, risk measures, publication
decisions, erasure and retention logs, the privacy budget ledger, counts of contact findings and
fairness flags. No statement it runs reads a table holding phone numbers (`tables_read` lets a
test hold every statement to that), and pseudonyms are only ever counted. Text that comes from
the data (a withheld dataset's reasons) goes through the same redaction as Dagster metadata.

One document model (`Document`: sections of paragraphs, tables and figures) renders to Markdown
(the Dagster UI, figures as data-URI PNGs) and to one self-contained HTML file (inline style, no
script, no external URL). Figures are drawn with matplotlib's Agg canvas directly, small and at a
low resolution: the report is rebuilt at every run and must stay cheap. Nothing here imports
Dagster.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from phone_pipeline.domain.markdown import bounded_text, markdown_table
from phone_pipeline.domain.risk import GROUP_SIZE, MAX_POINTS, SHARE_BELOW_K, UNICITY, RiskLimits

WINDOW_DAYS = 30
# The shareable dataset of rows (the others are aggregates): the last step of the row flow.
ROW_LEVEL_DATASET = "calls_pseudonymized"
DPI = 72
_BLUE, _RED, _GREY, _ORANGE, _GREEN = "#4a78a8", "#c0392b", "#9aa5b1", "#e08e2b", "#3c8d5a"
# The captions say which colour is which (by these names): a matplotlib legend measured a
# quarter of a figure's drawing time.
_COLOUR_NAMES = {_BLUE: "blue", _ORANGE: "orange", _GREEN: "green", _GREY: "grey", _RED: "red"}
# Series colours in order (red is kept for limits and findings).
PALETTE = tuple((colour, _COLOUR_NAMES[colour]) for colour in (_BLUE, _ORANGE, _GREEN, _GREY))
OUTCOME_COLOURS = {"published": _BLUE, "consent excluded": _ORANGE, "quarantined": _RED,
                   "erasure excluded": _GREY}  # fmt: skip


def series_colours(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each series (sorted) -> (colour, its name), in PALETTE order (cycled)."""
    ordered = sorted(set(names))
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(ordered)}


def colour_key(colours: dict[str, tuple[str, str]]) -> str:
    return "; ".join(f"{colour_name}: {name}" for name, (_, colour_name) in colours.items())


# --- the document ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


@dataclass(frozen=True)
class Figure:
    alt: str
    png: bytes


Block = str | Table | Figure


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    title: str
    intro: tuple[str, ...]
    sections: tuple[Section, ...]

    def section(self, title: str) -> Section:
        return next(section for section in self.sections if section.title == title)

    @property
    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


def _cell_text(value: object) -> str:
    """A table cell: the code's numbers formatted, any text redacted and bounded."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"  # thousands separated: a large count never reads as a number
    if isinstance(value, float):
        return f"{value:,.4g}"
    return bounded_text(value)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_markdown(document: Document) -> str:
    """The report as Markdown (Dagster's UI renders its data-URI images)."""
    lines = [f"# {document.title}", "", *(f"{line}\n" for line in document.intro)]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                rows = [[_cell_text(cell) for cell in row] for row in block.rows]
                align = ["---"] + ["---:"] * (len(block.header) - 1)
                lines += [markdown_table(list(block.header), align, rows), ""]  # type: ignore[arg-type]
            elif isinstance(block, Figure):
                lines += [f"![{block.alt}]({png_data_uri(block.png)})", ""]
            else:
                lines += [block, ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: sans-serif; max-width: 62rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #1f2933; line-height: 1.4; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #d0d7de;
       padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .85rem; }
th, td { border: 1px solid #d0d7de; padding: .2rem .5rem; }
td:not(:first-child) { text-align: right; } th { background: #f3f5f7; }
img { max-width: 100%; display: block; margin: .5rem 0 1rem; }
p.note { color: #52606d; }
"""


def _inline(text: str) -> str:
    """A paragraph of the code's own text as HTML: escaped, `**bold**` and `code` kept."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def render_html(document: Document) -> str:
    """One self-contained HTML page: inline style, images as data URIs, no script, no link out."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may be fetched: the page only shows what it holds.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{html.escape(document.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(document.title)}</h1>",
        *(f'<p class="note">{_inline(line)}</p>' for line in document.intro),
    ]
    for section in document.sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                body = "".join(
                    "<tr>"
                    + "".join(f"<td>{html.escape(_cell_text(c))}</td>" for c in row)
                    + "</tr>"
                    for row in block.rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, Figure):
                parts.append(
                    f'<img alt="{html.escape(block.alt)}" src="{png_data_uri(block.png)}">'
                )
            else:
                parts.append(f"<p>{_inline(block)}</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --- figures --------------------------------------------------------------------------------------


def _new_figure(width: float, height: float, panels: int = 1, **margins: float):
    """A figure on matplotlib's Agg canvas and its row of axes. Margins are fixed (in figure
    fractions) rather than laid out: constrained layout measured a third of a figure's time."""
    # Lazy: matplotlib costs an import. No pyplot: no global state, no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    figure.subplots_adjust(**{"left": 0.08, "right": 0.98, "top": 0.9, "bottom": 0.15, **margins})
    return figure, axes


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class FlowStep:
    """One bar of the row flow: the rows that went on, and those left out at this step."""

    label: str
    kept: int
    left_out: int = 0
    left_out_as: str = ""


def flow_png(flows: Sequence[tuple[str, Sequence[FlowStep]]]) -> bytes:
    """Horizontal funnels side by side, one panel per (title, steps) with the same steps: each
    step's rows kept (blue) and left out (orange), labelled with the counts, so a reader sees
    where rows go from received to published."""
    steps_shown = len(flows[0][1])
    figure, axes = _new_figure(10, 0.32 * steps_shown + 0.6, len(flows), left=0.25, right=0.99,
                               top=1 - 0.3 / (0.32 * steps_shown + 0.6), bottom=0.02,
                               wspace=0.04)  # fmt: skip
    for index, (ax, (title, steps)) in enumerate(zip(axes, flows, strict=True)):
        positions = list(range(len(steps)))[::-1]
        kept = [step.kept for step in steps]
        left = [step.left_out for step in steps]
        ax.barh(positions, kept, color=_BLUE, height=0.7)
        ax.barh(positions, left, left=kept, color=_ORANGE, height=0.7)
        total = max((k + o for k, o in zip(kept, left, strict=True)), default=0) or 1
        for y, step in zip(positions, steps, strict=True):
            text = f"{step.kept:,}" + (f"  -{step.left_out:,} {step.left_out_as}"
                                       if step.left_out else "")  # fmt: skip
            ax.text(total * 0.01, y, text, va="center", fontsize=7,
                    color="white" if step.kept > total * 0.45 else "black")  # fmt: skip
        # The counts are written on the bars: no x axis to draw; the labels once, at the left.
        ax.set_xticks([])
        ax.set_yticks(positions, [step.label for step in steps] if index == 0 else [], fontsize=8)
        ax.set_xlim(0, total * 1.02)
        ax.set_title(title, fontsize=9)
    return _png(figure)


def daily_outcomes_png(days: pd.DataFrame) -> bytes:
    """Per day, stacked: rows published, excluded for consent, quarantined, left out as erased."""
    figure, (ax,) = _new_figure(7.5, 2.6, bottom=0.22)
    labels = [d.strftime("%m-%d") for d in days.index]
    bottom = [0] * len(days)
    for column, colour in OUTCOME_COLOURS.items():
        values = days[column].tolist()
        ax.bar(range(len(days)), values, bottom=bottom, color=colour, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(range(len(days)), labels, rotation=90 if len(days) > 10 else 0, fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("rows", fontsize=8)
    ax.set_ylim(0, max(bottom, default=0) * 1.05 or 1)
    return _png(figure)


def risk_png(histogram: pd.DataFrame, unicity: pd.DataFrame, limits: RiskLimits) -> bytes:
    """Left: subscribers by their smallest group size per dataset (sizes below k in red edges);
    right: unicity for p = 1..4 per dataset with its 95% margin, against the limit."""
    figure, (left, right) = _new_figure(9, 2.6, 2, left=0.06, bottom=0.17, wspace=0.15)
    series = series_colours([*histogram["dataset"], *unicity["dataset"]])
    datasets = list(series)
    colours = {dataset: colour for dataset, (colour, _) in series.items()}
    bins = sorted({(int(r.parameter), _upper(r.parameter_upper)) for r in histogram.itertuples()},
                  key=lambda b: b[0])  # fmt: skip
    width = 0.8 / max(len(datasets), 1)
    for offset, dataset in enumerate(datasets):
        part = histogram[histogram["dataset"] == dataset]
        counts = {(int(r.parameter), _upper(r.parameter_upper)): int(r.subscribers)
                  for r in part.itertuples()}  # fmt: skip
        left.bar([i + offset * width for i in range(len(bins))],
                 [counts.get(b, 0) for b in bins], width=width, color=colours[dataset],
                 edgecolor=[_RED if b[0] < limits.k else colours[dataset] for b in bins],
                 linewidth=1.5)  # fmt: skip
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(bins))],
                    [_bin_label(b) for b in bins], fontsize=7)  # fmt: skip
    left.set_title(f"subscribers by smallest group size (k = {limits.k})", fontsize=9)
    left.tick_params(axis="y", labelsize=7)
    for dataset in datasets:
        part = unicity[(unicity["dataset"] == dataset) & unicity["value"].notna()]
        if len(part):
            right.errorbar(part["parameter"], part["value"], yerr=part["margin_95"].fillna(0),
                           marker="o", color=colours[dataset], capsize=2)  # fmt: skip
    right.axhline(limits.max_unicity, color=_RED, linestyle="--", linewidth=1)
    right.text(MAX_POINTS, limits.max_unicity, "limit", color=_RED, fontsize=7, ha="right",
               va="bottom")  # fmt: skip
    right.set_xticks(range(1, MAX_POINTS + 1))
    right.set_xlabel("p points (time, place)", fontsize=8)
    right.set_ylim(0, 1)
    right.set_title("unicity", fontsize=9)
    right.tick_params(labelsize=7)
    return _png(figure)


def budget_png(spent: pd.DataFrame) -> bytes:
    """Per day, the privacy budget spent (epsilon, stacked by output) against the day's budget."""
    figure, (ax,) = _new_figure(7.5, 2.4, bottom=0.22)
    days = sorted(set(spent["call_date"]))
    bottom = [0.0] * len(days)
    for output, (colour, _) in series_colours(spent["output"]).items():
        part = spent[spent["output"] == output].groupby("call_date")["epsilon"].sum()
        values = [float(part.get(day, 0.0)) for day in days]
        ax.bar(range(len(days)), values, bottom=bottom, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    budget = float(spent["budget_per_day"].max())
    ax.axhline(budget, color=_RED, linestyle="--", linewidth=1)
    ax.text(len(days) - 0.5, budget, "budget per day", color=_RED, fontsize=7, ha="right",
            va="bottom")  # fmt: skip
    ax.set_ylim(0, max([*bottom, budget]) * 1.15)
    ax.set_xticks(range(len(days)), [d.strftime("%m-%d") for d in days],
                  rotation=90 if len(days) > 10 else 0, fontsize=7)  # fmt: skip
    ax.set_ylabel("epsilon", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    return _png(figure)


def _upper(value: object) -> int | None:
    return None if value is None or pd.isna(value) else int(value)  # type: ignore[arg-type]


def _bin_label(bin_: tuple[int, int | None]) -> str:
    low, high = bin_
    return str(low) if high == low else f"{low}-{high}" if high else f">={low}"


# --- what the report is built from ----------------------------------------------------------------


@dataclass(frozen=True)
class ReportInputs:
    """What the report shows, as the asset's statements read it (frames may be empty).

    Call-day figures cover `first_day`..`last_day` (the 30 days up to the latest day processed);
    erasure requests and retention sweeps are events in real time: the 30 days up to
    `generated_at` (and every pending request, however old).
    """

    generated_at: dt.datetime
    first_day: dt.date | None
    last_day: dt.date | None
    limits: RiskLimits
    min_cell_size: int
    # call_date, stage, outcome, reason, rows (analytics.row_accounting)
    accounting: pd.DataFrame
    # call_date, dataset, cells, suppressed_cells (the published aggregates)
    cells: pd.DataFrame
    # call_date, dataset, measure, parameter, parameter_upper, value, subscribers, margin_95,
    # applicable (analytics.reidentification_risk)
    risk: pd.DataFrame
    # call_date, dataset, decision, reasons, published_rows, withdrawn_rows
    publications: pd.DataFrame
    # requested_at, received_at, completed_at, partitions, rows_removed (one row per request)
    erasures: pd.DataFrame
    # swept_at, sweep (its run), as_of, zone, tables_swept, rows_deleted (per sweep and zone)
    sweeps: pd.DataFrame
    # call_date, output, epsilon, budget_per_day (analytics.privacy_budget_ledger)
    budget: pd.DataFrame
    # call_date, finding, value (counts of the compliance findings)
    contact: pd.DataFrame
    # call_date, measure, country, number_type, rows, affected, rate, rest_rate (flagged groups)
    fairness: pd.DataFrame
    notes: tuple[str, ...] = field(default=())


def report_window(
    latest: dt.date | None, days: int = WINDOW_DAYS
) -> tuple[dt.date, dt.date] | None:
    """The call days the report covers: the `days` days up to the latest day processed."""
    return None if latest is None else (latest - dt.timedelta(days=days - 1), latest)


def _day(value: object) -> dt.date:
    return pd.Timestamp(value).date()  # type: ignore[arg-type]


def _when(value: object) -> str:
    if value is None or pd.isna(value):  # type: ignore[arg-type]
        return ""
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    # ISO 8601 with no space: "2026-11-02 12:00" reads as a run of digits to the leak scans.
    return stamp.strftime("%Y-%m-%dT%H:%MZ")


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"


# The outcomes of analytics.row_accounting the report reads (accounting stage's statements).
def _rows(acc: pd.DataFrame, stage: str, outcome: str) -> int:
    return int(acc.loc[(acc["stage"] == stage) & (acc["outcome"] == outcome), "rows"].sum())


def _aggregate_stages(acc: pd.DataFrame) -> list[str]:
    return sorted({s for s in acc["stage"] if s.startswith("aggregate:")})


def row_flow(acc: pd.DataFrame, shared_rows: int) -> list[FlowStep]:
    """The steps of the row flow drawn from accounting rows (one day's or the window's) and the
    rows the shareable zone received of the row-level dataset."""
    received = _rows(acc, "ingest", "received")
    erased = _rows(acc, "erasure", "excluded")
    quarantined = _rows(acc, "validate", "quarantined")
    validated = _rows(acc, "validate", "validated")
    excluded = _rows(acc, "consent", "excluded")
    admitted = _rows(acc, "consent", "admitted")
    published = _rows(acc, "pseudonymize", "published")
    steps = [
        FlowStep("received", received),
        FlowStep("not erased", received - erased, erased, "erased"),
        FlowStep("validated", validated, quarantined, "quarantined"),
        FlowStep("consented", admitted, excluded, "no consent"),
        FlowStep("pseudonymised", published, max(admitted - published, 0), "not published"),
    ]
    for stage in _aggregate_stages(acc):
        steps.append(
            FlowStep(
                f"in shown cells: {stage.removeprefix('aggregate:')}",
                _rows(acc, stage, "in_published_cell"),
                _rows(acc, stage, "in_suppressed_cell"),
                "suppressed",
            )  # fmt: skip
        )
    steps.append(
        FlowStep("shared (row level)", shared_rows, max(published - shared_rows, 0), "withheld")
    )
    return steps


def _shared_rows(publications: pd.DataFrame, days: Iterable[dt.date]) -> int:
    wanted = set(days)
    rows = publications[
        (publications["dataset"] == ROW_LEVEL_DATASET)
        & (publications["decision"] == "published")
        & publications["call_date"].map(lambda d: _day(d) in wanted)
    ]
    return int(rows["published_rows"].sum())


def _by_reason(acc: pd.DataFrame, stage: str, outcome: str, last_day: dt.date) -> Table:
    part = acc[(acc["stage"] == stage) & (acc["outcome"] == outcome)]
    latest = part[part["call_date"].map(_day) == last_day].groupby("reason")["rows"].sum()
    # Largest first, ties by name: the same evidence gives the same report.
    total = part.groupby("reason")["rows"].sum().sort_index().sort_values(
        ascending=False, kind="stable")  # fmt: skip
    return Table(
        ("reason", f"rows on {last_day}", "rows, 30 days"),
        tuple((reason, int(latest.get(reason, 0)), int(n)) for reason, n in total.items()),
    )


# --- the sections ---------------------------------------------------------------------------------


def _daily_frame(inputs: ReportInputs) -> pd.DataFrame:
    acc = inputs.accounting
    rows = []
    for day, part in acc.groupby(acc["call_date"].map(_day)):
        rows.append({
            "day": day,
            "received": _rows(part, "ingest", "received"),
            "erasure excluded": _rows(part, "erasure", "excluded"),
            "quarantined": _rows(part, "validate", "quarantined"),
            "validated": _rows(part, "validate", "validated"),
            "consent excluded": _rows(part, "consent", "excluded"),
            "admitted": _rows(part, "consent", "admitted"),
            "published": _rows(part, "pseudonymize", "published"),
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("day").sort_index()


def _flow_section(inputs: ReportInputs, daily: pd.DataFrame) -> Section:
    acc, last = inputs.accounting, inputs.last_day
    latest = acc[acc["call_date"].map(_day) == last]
    flows = [
        (f"{last}", row_flow(latest, _shared_rows(inputs.publications, [last]))),  # type: ignore[list-item]
        ("last 30 days", row_flow(acc, _shared_rows(inputs.publications, daily.index))),
    ]
    return Section(
        "Rows from received to published",
        (
            "Every received row is accounted for: it is left out as an erased subject's, "
            "quarantined, excluded for lack of consent, or published pseudonymised; published "
            "rows then fall into shown or suppressed cells of each aggregate, and the row-level "
            "dataset is shared only when its risk passed the gate.",
            Figure("row flow from received to published", flow_png(flows)),
            "Rows per day: "
            + "; ".join(
                f"{name} in {_COLOUR_NAMES[colour]}" for name, colour in OUTCOME_COLOURS.items()
            )
            + ".",
            Figure("rows per day by outcome", daily_outcomes_png(daily)),
        ),
    )


def _consent_section(inputs: ReportInputs, daily: pd.DataFrame) -> Section:
    validated = int(daily["validated"].sum())
    admitted = int(daily["admitted"].sum())
    per_day = tuple(
        (
            day.isoformat(),
            int(r["validated"]),
            int(r["admitted"]),
            int(r["consent excluded"]),
            _pct(r["admitted"], r["validated"]),
        )  # fmt: skip
        for day, r in daily.iterrows()
    )
    return Section(
        "Consent coverage and exclusions",
        (
            f"Over the last 30 days **{_pct(admitted, validated)}** of validated calls had the "
            f"caller's analytics consent at call time ({admitted:,} of {validated:,}).",
            _by_reason(inputs.accounting, "consent", "excluded", inputs.last_day),  # type: ignore[arg-type]
            Table(("day", "validated", "admitted", "excluded", "coverage"), per_day),
        ),
    )


def _quarantine_section(inputs: ReportInputs, daily: pd.DataFrame) -> Section:
    received = int(daily["received"].sum())
    quarantined = int(daily["quarantined"].sum())
    erased = int(daily["erasure excluded"].sum())
    blocks: list[Block] = [
        f"{quarantined:,} of {received:,} received rows ({_pct(quarantined, received)}) were "
        f"quarantined over the last 30 days; {erased:,} were left out as an erased subject's.",
        _by_reason(inputs.accounting, "validate", "quarantined", inputs.last_day),  # type: ignore[arg-type]
    ]
    per_day = tuple(
        (
            day.isoformat(),
            int(r["received"]),
            int(r["quarantined"]),
            _pct(r["quarantined"], r["received"]),
            int(r["erasure excluded"]),
        )  # fmt: skip
        for day, r in daily.iterrows()
    )
    blocks.append(Table(("day", "received", "quarantined", "share", "erasure excluded"), per_day))
    return Section("Quarantine", tuple(blocks))


def _suppression_section(inputs: ReportInputs) -> Section:
    cells, acc = inputs.cells, inputs.accounting
    if cells.empty:
        return Section("Small-cell suppression", ("No aggregate cells in the window.",))
    rows = []
    for dataset, part in cells.groupby("dataset"):
        stage = acc[acc["stage"] == f"aggregate:{dataset}"]
        latest = part[part["call_date"].map(_day) == inputs.last_day]
        rows.append((
            dataset, int(latest["suppressed_cells"].sum()), int(latest["cells"].sum()),
            int(part["suppressed_cells"].sum()), int(part["cells"].sum()),
            int(stage.loc[stage["outcome"] == "in_suppressed_cell", "rows"].sum()),
            int(stage["rows"].sum()),
        ))  # fmt: skip
    return Section(
        "Small-cell suppression",
        (
            f"A cell with fewer than {inputs.min_cell_size} distinct subscribers keeps its key "
            "but publishes no figures.",
            Table(
                (
                    "dataset",
                    f"suppressed cells {inputs.last_day}",
                    "cells",
                    "suppressed cells, 30 days",
                    "cells, 30 days",
                    "rows in suppressed cells, 30 days",
                    "rows, 30 days",
                ),
                tuple(rows),
            ),  # fmt: skip
        ),
    )


def _risk_section(inputs: ReportInputs) -> Section:
    risk, limits = inputs.risk, inputs.limits
    title = "Re-identification risk against the limits"
    if risk.empty:
        return Section(title, ("No risk was measured in the window.",))
    latest = risk[risk["call_date"].map(_day) == inputs.last_day]
    histogram = latest[latest["measure"] == GROUP_SIZE]
    unicity = latest[latest["measure"] == UNICITY]
    blocks: list[Block] = [
        f"Limits in force: share of subscribers in groups below k = {limits.k} at most "
        f"{limits.max_share_below_k:.2%}; unicity for p = 1..{MAX_POINTS} points at most "
        f"{limits.max_unicity:.2%}. Earlier days were gated by the limits in force then (their "
        "decisions are below).",
    ]
    if histogram.empty and unicity.empty:
        blocks.append(f"No risk was measured on {inputs.last_day}.")
    else:
        series = series_colours([*histogram["dataset"], *unicity["dataset"]])
        blocks.append(
            f"On {inputs.last_day}, left: subscribers by the size of their smallest group (sizes "
            f"below k outlined in red); right: unicity with its 95% margin against the limit. "
            f"{colour_key(series)}."
        )
        blocks.append(Figure(f"k histogram and unicity on {inputs.last_day}",
                             risk_png(histogram, unicity, limits)))  # fmt: skip
    rows = []
    for (day, dataset), part in risk.groupby([risk["call_date"].map(_day), "dataset"]):
        below = part[part["measure"] == SHARE_BELOW_K]["value"]
        uni = part[(part["measure"] == UNICITY) & part["applicable"]]["value"].dropna()
        share = float(below.max()) if len(below.dropna()) else None
        worst = float(uni.max()) if len(uni) else None
        within = (share is not None and share <= limits.max_share_below_k) and (
            worst is None or worst <= limits.max_unicity
        )
        rows.append((day.isoformat(), dataset,
                     "n/a" if share is None else f"{share:.2%}",
                     "not applicable" if worst is None else f"{worst:.2%}",
                     "yes" if within else "NO"))  # fmt: skip
    blocks.append(Table(("day", "dataset", "share below k", "highest unicity",
                         "within today's limits"), tuple(sorted(rows, reverse=True))))  # fmt: skip
    return Section(title, tuple(blocks))


def _shareable_section(inputs: ReportInputs) -> Section:
    pubs = inputs.publications
    title = "Shareable decisions"
    if pubs.empty:
        return Section(title, ("No publication decision in the window.",))
    counts = pubs.groupby(["dataset", "decision"]).size().unstack(fill_value=0)
    latest = pubs[pubs["call_date"].map(_day) == inputs.last_day].set_index("dataset")
    rows = tuple(
        (
            dataset,
            str(latest["decision"].get(dataset, "none")),
            *(int(counts.loc[dataset].get(d, 0)) for d in ("published", "withheld", "withdrawn")),
            int(pubs.loc[pubs["dataset"] == dataset, "published_rows"].sum()),
        )  # fmt: skip
        for dataset in counts.index
    )
    blocks: list[Block] = [
        Table(
            (
                "dataset",
                f"decision {inputs.last_day}",
                "days published",
                "days withheld",
                "days withdrawn",
                "rows published, 30 days",
            ),
            rows,
        ),  # fmt: skip
    ]
    withheld = pubs[pubs["decision"] != "published"].sort_values("call_date", ascending=False)
    if len(withheld):
        blocks.append(Table(
            ("day", "dataset", "decision", "why (figures in the risk table)"),
            tuple((_day(r.call_date).isoformat(), r.dataset, r.decision, reason_names(r.reasons))
                  for r in withheld.head(20).itertuples()),
        ))  # fmt: skip
    else:
        blocks.append("Every dataset was published on every day of the window.")
    return Section(title, tuple(blocks))


def reason_names(reasons: object) -> str:
    """The gate's reasons for a withheld dataset, by the measure each names: "share_below_k
    (k=5) = 0.5821 (117 subscribers) > limit 0.0000" becomes "share_below_k (k=5)". The
    figures are in the risk table; quoted here they read as digit runs to the redaction."""
    if reasons is None or (isinstance(reasons, float) and pd.isna(reasons)):
        return ""
    names = [part.split(" = ", 1)[0].strip() for part in str(reasons).split("; ")]
    return "; ".join(dict.fromkeys(name for name in names if name))


def _erasure_section(inputs: ReportInputs) -> Section:
    erasures = inputs.erasures
    title = "Erasure requests"
    if erasures.empty:
        return Section(title, ("No erasure request in the last 30 days, and none pending.",))
    done = erasures[erasures["completed_at"].notna()]
    hours = (
        (pd.to_datetime(done["completed_at"], utc=True)
         - pd.to_datetime(done["requested_at"], utc=True)).dt.total_seconds() / 3600
    )  # fmt: skip
    pending = erasures[erasures["completed_at"].isna()]
    summary = (
        f"{len(erasures):,} request(s): {len(done):,} completed, **{len(pending):,} pending**."
        + (
            f" Time from request to completion: median {hours.median():.1f} h, longest "
            f"{hours.max():.1f} h."
            if len(done)
            else ""
        )  # fmt: skip
    )
    ordered = erasures.sort_values("requested_at", ascending=False).head(30)
    rows = tuple(
        (
            _when(r.requested_at),
            _when(r.completed_at) or "pending",
            None
            if pd.isna(r.completed_at)
            else round(
                (pd.Timestamp(r.completed_at) - pd.Timestamp(r.requested_at)).total_seconds()
                / 3600,
                1,
            ),
            int(r.partitions),
            int(r.rows_removed),
        )  # fmt: skip
        for r in ordered.itertuples()
    )
    return Section(title, (
        summary,
        Table(("requested", "completed", "hours to completion", "days changed", "rows removed"),
              rows),
    ))  # fmt: skip


def _retention_section(inputs: ReportInputs) -> Section:
    sweeps = inputs.sweeps
    title = "Retention sweeps"
    if sweeps.empty:
        return Section(title, ("No retention sweep ran in the last 30 days.",))
    started = sweeps.groupby("sweep")["swept_at"].transform("min")
    ordered = sweeps.assign(started=started).sort_values(
        ["started", "zone"], ascending=[False, True]).head(40)  # fmt: skip
    total = int(sweeps["rows_deleted"].sum())
    return Section(title, (
        f"{sweeps['sweep'].nunique():,} sweep(s) in the last 30 days deleted {total:,} rows.",
        Table(("swept", "as of", "zone", "tables swept", "rows deleted"),
              tuple((_when(r.started), _day(r.as_of).isoformat(), r.zone, int(r.tables_swept),
                     int(r.rows_deleted)) for r in ordered.itertuples())),
    ))  # fmt: skip


def _budget_section(inputs: ReportInputs) -> Section:
    budget = inputs.budget
    title = "Differential privacy budget"
    if budget.empty:
        return Section(title, (
            "No differentially private output was published in the window: no budget spent "
            "(differential privacy is off unless outputs are configured).",
        ))  # fmt: skip
    per_day = budget.groupby(budget["call_date"].map(_day)).agg(
        spent=("epsilon", "sum"), budget=("budget_per_day", "max"))  # fmt: skip
    over = per_day[per_day["spent"] > per_day["budget"] + 1e-9]
    return Section(title, (
        f"Epsilon spent per day against the day's budget; {len(over)} day(s) over budget. "
        f"{colour_key(series_colours(budget['output']))}.",
        Figure("privacy budget spent per day", budget_png(budget)),
        Table(("day", "epsilon spent", "budget"),
              tuple((d.isoformat(), float(r.spent), float(r.budget))
                    for d, r in per_day.sort_index(ascending=False).iterrows())),
    ))  # fmt: skip


# Counts of the compliance findings, as the contact statement names them.
CONTACT_FINDINGS = {
    "callees_over_24h_cap": "callees over the 24 h cap",
    "callees_over_7d_cap": "callees over the 7 d cap",
    "calls_outside_window": "calls outside the permitted window",
    "calls_window_unknown": "calls with unknown local time",
    "callees_called_after_dnc": "callees called after a DNC listing",
    "calls_after_dnc": "calls after a DNC listing",
    "campaigns_over_abandonment_limit": "campaign-days over the abandonment limit",
}


def _contact_section(inputs: ReportInputs) -> Section:
    contact = inputs.contact
    title = "Contact findings"
    if contact.empty:
        return Section(title, ("No compliance findings in the window.",))
    days = contact["call_date"].map(_day)
    # Every finding, found or not: a zero is a result the officer should see.
    totals = tuple(
        (label, int(contact.loc[(contact["finding"] == name) & (days == inputs.last_day),
                                "value"].sum()),
         int(contact.loc[contact["finding"] == name, "value"].sum()))
        for name, label in CONTACT_FINDINGS.items()
    )  # fmt: skip
    return Section(title, (
        "Findings of the compliance zone, counted (callees are counted per day: one callee "
        "found on two days counts twice over 30 days).",
        Table(("finding", f"on {inputs.last_day}", "30 days"), totals),
    ))  # fmt: skip


def _fairness_section(inputs: ReportInputs) -> Section:
    flags = inputs.fairness
    title = "Fairness flags"
    if flags.empty:
        return Section(title, ("No caller group was flagged in the window.",))
    grouped = flags.groupby(["measure", "country", "number_type"]).agg(
        days=("call_date", "nunique"), last=("call_date", "max"), rows=("rows", "sum"),
        affected=("affected", "sum"))  # fmt: skip
    rows = tuple(
        (
            f"{measure}: {country}/{number_type}",
            int(r["days"]),
            _day(r["last"]).isoformat(),
            _pct(r["affected"], r["rows"]),
            int(r["rows"]),
        )  # fmt: skip
        for (measure, country, number_type), r in grouped.sort_values(
            "days", ascending=False
        ).iterrows()
    )
    return Section(title, (
        f"{len(grouped)} group(s) treated markedly worse than the rest on at least one day "
        "(rate at least the configured ratio times the rest's).",
        Table(("measure: group", "days flagged", "last flagged", "rate on flagged days",
               "rows on flagged days"), rows),
    ))  # fmt: skip


def build_report(inputs: ReportInputs) -> Document:
    """The report's document from its inputs; every section says so when it has no data."""
    title = "Privacy report"
    generated = f"Generated {_when(pd.Timestamp(inputs.generated_at))} by the pipeline."
    if inputs.first_day is None or inputs.accounting.empty:
        return Document(title, (generated, "No call day has been processed yet: nothing to "
                                "report.", *inputs.notes), ())  # fmt: skip
    daily = _daily_frame(inputs)
    intro = (
        generated,
        f"Call days {inputs.first_day} to {inputs.last_day} (the {WINDOW_DAYS} days up to the "
        f"latest day processed; {len(daily)} of them hold data). Erasure requests and retention "
        "sweeps: the 30 days up to the report. Counts and aggregates only: no phone number, no "
        "pseudonym.",
        *inputs.notes,
    )
    sections = (
        _flow_section(inputs, daily),
        _consent_section(inputs, daily),
        _quarantine_section(inputs, daily),
        _suppression_section(inputs),
        _risk_section(inputs),
        _shareable_section(inputs),
        _erasure_section(inputs),
        _retention_section(inputs),
        _budget_section(inputs),
        _contact_section(inputs),
        _fairness_section(inputs),
    )
    return Document(title, intro, sections)


# --- which tables the statements read --------------------------------------------------------------


def tables_read(sql: str) -> set[str]:
    """The tables a statement reads, as a restricted connection names them (`zone.table` or a
    bare restricted table); CTE names left out."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found = set()
    for table in tree.find_all(exp.Table):
        if table.name in ctes and not table.db:
            continue
        found.add(f"{table.db}.{table.name}" if table.db else table.name)
    return found


def cells_sql(aggregates: Sequence[tuple[str, str]]) -> str:
    """Cells and suppressed cells per day of each published aggregate, given as (dataset name,
    table as a restricted connection names it), over `$first_day`..`$last_day`."""
    return "\nUNION ALL\n".join(
        f"SELECT call_date, '{name}' AS dataset, count(*) AS cells, "
        f"count(*) FILTER (WHERE suppressed) AS suppressed_cells FROM {qualified} "
        "WHERE call_date BETWEEN $first_day AND $last_day GROUP BY call_date"
        for name, qualified in aggregates
    )
