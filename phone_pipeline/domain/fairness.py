"""Fairness of the pipeline itself: does it drop some groups of people more than others?

Per partition and measure, each group (the caller's country and number type) gets its rate and
the rate of everyone else (the rest); a group is flagged when its rate is at least `ratio` times
the rest's (or the rest's is 0 and its own is not) and it has at least `min_rows` rows. Measures,
each over the rows that reached its stage:

- `quarantine`: quarantined / raw rows;
- `consent_exclusion`: excluded for consent / validated rows;
- `suppression`: admitted rows that fall into a withheld (small) hourly cell / admitted rows.

Groups are by caller, the subscriber whose call is analysed. A quarantined row's caller number
may not parse: its country is then the best the data supports, the country of a leading `+CC` or
`00CC` calling code (`guess_country`), else `unknown`, and its number type `unknown`. The `unknown`
country is reported but never flagged: it holds exactly the numbers nobody could attribute, so its
quarantine rate is high by construction and says nothing about a country.
"""

from __future__ import annotations

import base64
import io
import re

import pandas as pd
import phonenumbers

MEASURES = ("quarantine", "consent_exclusion", "suppression")
UNKNOWN = "unknown"

# A calling code written as "+CC" or "00CC", separators allowed, at the start of the text.
_LEADING_CODE = re.compile(r"^\s*(?:tel:)?\s*(?:\+|00)[\s().\-]*(\d[\d\s().\-]*)", re.IGNORECASE)


def guess_country(raw: str | None) -> str | None:
    """The region of a leading international calling code (`+44 ...` -> GB), or None.

    Calling codes are prefix-free, so at most one of the first 1-3 digits is one; shared codes
    give their main region (+1 -> US), as phonenumbers does.
    """
    match = _LEADING_CODE.match(raw or "")
    if not match:
        return None
    digits = re.sub(r"\D", "", match[1])
    for length in (1, 2, 3):
        region = phonenumbers.region_code_for_country_code(int(digits[:length] or 0))
        if region not in ("ZZ", "001"):
            return region
    return None


# The map of unreadable caller strings to a guessed country (columns as stages register it), and
# what each column is computed from (column lineage).
GUESSED_COUNTRY_INPUTS: dict[str, tuple[str, ...]] = {"raw_number": (), "country": ("raw_number",)}


def group_counts_sql(
    guessed_countries: str,
    validated: str = "calls_validated",
    quarantine: str = "calls_quarantine",
    number_cache: str = "number_cache",
    exclusions: str = "consent_exclusions",
    pseudonymized: str = "analytics.calls_pseudonymized",
    hourly: str = "analytics.call_volume_hourly",
) -> str:
    """`measure`, `country`, `number_type`, `rows`, `affected` for the partition `$call_date`,
    callers' numbers read with the default region `$default_region`.

    `guessed_countries` maps `raw_number` to `country` (from `guess_country`) for callers the
    number cache could not read.
    """
    return f"""
    WITH validated_groups AS (
        SELECT call_id, coalesce(caller_country, '{UNKNOWN}') AS country,
               coalesce(caller_number_type, '{UNKNOWN}') AS number_type
        FROM {validated} WHERE call_date = $call_date
    ),
    quarantined_groups AS (
        SELECT coalesce(cache.country, guess.country, '{UNKNOWN}') AS country,
               CASE WHEN cache.e164 IS NOT NULL THEN coalesce(cache.number_type, '{UNKNOWN}')
                    ELSE '{UNKNOWN}' END AS number_type
        FROM {quarantine} AS q
        LEFT JOIN {number_cache} AS cache
          ON cache.raw_number = q.caller_number AND cache.default_region = $default_region
        LEFT JOIN {guessed_countries} AS guess ON guess.raw_number = q.caller_number
        WHERE q.call_date = $call_date
    ),
    excluded AS (SELECT call_id FROM {exclusions} WHERE call_date = $call_date),
    admitted AS (
        SELECT coalesce(calls.caller_country, '{UNKNOWN}') AS country,
               coalesce(calls.caller_number_type, '{UNKNOWN}') AS number_type,
               coalesce(cells.suppressed, false) AS suppressed
        FROM {pseudonymized} AS calls
        LEFT JOIN {hourly} AS cells
          ON cells.call_date = calls.call_date AND cells.call_hour = calls.call_hour
         AND cells.region = calls.region
        WHERE calls.call_date = $call_date
    )
    SELECT 'quarantine' AS measure, country, number_type, count(*) AS rows,
           count(*) FILTER (WHERE quarantined) AS affected
    FROM (SELECT country, number_type, false AS quarantined FROM validated_groups
          UNION ALL SELECT country, number_type, true FROM quarantined_groups)
    GROUP BY ALL
    UNION ALL
    SELECT 'consent_exclusion', country, number_type, count(*),
           count(*) FILTER (WHERE call_id IN (SELECT call_id FROM excluded))
    FROM validated_groups GROUP BY ALL
    UNION ALL
    SELECT 'suppression', country, number_type, count(*), count(*) FILTER (WHERE suppressed)
    FROM admitted GROUP BY ALL
    """


def flag_groups(counts: pd.DataFrame, ratio: float, min_rows: int) -> pd.DataFrame:
    """`counts` (measure, country, number_type, rows, affected) with each group's `rate`, the
    `rest_rate` of the other groups of its measure, the measure's `overall_rate`, `ratio_to_rest`
    and `flagged`."""
    if ratio <= 1:
        raise ValueError(f"the fairness ratio must be above 1, got {ratio!r}")
    frame = counts.copy()
    frame[["rows", "affected"]] = frame[["rows", "affected"]].astype("int64")
    totals = frame.groupby("measure")[["rows", "affected"]].transform("sum")
    rest_rows = totals["rows"] - frame["rows"]
    rest_affected = totals["affected"] - frame["affected"]
    frame["rate"] = frame["affected"] / frame["rows"].where(frame["rows"] > 0)
    frame["rest_rate"] = rest_affected / rest_rows.where(rest_rows > 0)
    frame["overall_rate"] = totals["affected"] / totals["rows"].where(totals["rows"] > 0)
    frame["ratio_to_rest"] = frame["rate"] / frame["rest_rate"].where(frame["rest_rate"] > 0)
    far_above = (frame["rate"] > 0) & (
        (frame["rest_rate"] == 0) | (frame["rate"] >= ratio * frame["rest_rate"])
    )
    frame["flagged"] = (
        far_above
        & frame["rest_rate"].notna()
        & (frame["rows"] >= min_rows)
        & (frame["country"] != UNKNOWN)
    ).astype(bool)
    return frame.sort_values(["measure", "country", "number_type"]).reset_index(drop=True)


# The columns `flag_groups` adds to its counts, and which count columns each is computed from
# (column lineage): the rest and overall rates sum the measure's other groups.
FLAGGED_GROUP_INPUTS: dict[str, tuple[str, ...]] = {
    "rate": ("rows", "affected"),
    "rest_rate": ("measure", "rows", "affected"),
    "overall_rate": ("measure", "rows", "affected"),
    "ratio_to_rest": ("measure", "rows", "affected"),
    "flagged": ("measure", "country", "rows", "affected"),
}


def rates_markdown(frame: pd.DataFrame) -> str:
    """The report as a Markdown table, flagged groups first."""
    lines = [
        "| measure | country | number type | rows | affected | rate | rest | ratio | flagged |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]

    def pct(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.1%}"

    ordered = frame.sort_values(["flagged", "measure", "rows"], ascending=[False, True, False])
    for row in ordered.itertuples():
        ratio = "" if pd.isna(row.ratio_to_rest) else f"{row.ratio_to_rest:.1f}"
        lines.append(
            f"| {row.measure} | {row.country} | {row.number_type} | {row.rows} | {row.affected} "
            f"| {pct(row.rate)} | {pct(row.rest_rate)} | {ratio} | "
            f"{'**YES**' if row.flagged else 'no'} |"
        )
    return "\n".join(lines)


PLOTTED_GROUPS = 30


def plotted_groups(groups: pd.DataFrame) -> pd.DataFrame:
    """The groups of one measure that the plot draws: at most PLOTTED_GROUPS, flagged ones first
    (largest first), then the largest others. Hundreds of bars (one per region of a carrier's
    traffic, or per tiny group whose cells are suppressed) are unreadable and took seconds to
    draw; the Markdown table and the `flagged` metadata list every group."""
    return (
        groups.sort_values(["flagged", "rows"], ascending=False)
        .head(PLOTTED_GROUPS)
        .sort_values("rows", ascending=False)
    )


def rates_png(frame: pd.DataFrame, title: str) -> bytes:
    """One panel per measure: each group's rate (flagged ones in red) and the overall rate."""
    from matplotlib.figure import Figure  # lazy: matplotlib costs an import; no pyplot state

    # Fixed margins: the constrained layout measured every label and drew the figure twice, which
    # took half a second of each run.
    figure = Figure(figsize=(10, 3.2 * len(MEASURES)))
    figure.subplots_adjust(left=0.07, right=0.98, top=0.93, bottom=0.11, hspace=0.85)
    axes = figure.subplots(len(MEASURES), 1, squeeze=False)[:, 0]
    for ax, measure in zip(axes, MEASURES, strict=True):
        groups = frame[frame["measure"] == measure]
        part = plotted_groups(groups)
        labels = [f"{c}/{t}" for c, t in zip(part["country"], part["number_type"], strict=True)]
        colours = ["#c0392b" if flag else "#4a78a8" for flag in part["flagged"]]
        ax.bar(range(len(part)), part["rate"].fillna(0) * 100, color=colours)
        if len(part) and pd.notna(part["overall_rate"].iloc[0]):
            ax.axhline(part["overall_rate"].iloc[0] * 100, color="black", linestyle="--",
                       linewidth=1, label="overall")  # fmt: skip
            ax.legend(loc="upper right")
        ax.set_xticks(range(len(part)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("rate (%)")
        shown = (
            ""
            if len(part) == len(groups)
            else f"; {len(part)} of {len(groups)} groups, flagged first "
            f"({int(groups['flagged'].sum())} flagged)"
        )
        ax.set_title(f"{measure} by caller country / number type (red: flagged{shown})", fontsize=9)
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """A PNG inline in Markdown (what Dagster's UI renders in a Markdown metadata value)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
