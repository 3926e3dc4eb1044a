"""The privacy report built from small hand-made inputs: its figures add up, every section says
when it has no data, text from the data is redacted and escaped, and the HTML holds everything it
shows (no script, no address outside the page)."""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import replace

import pandas as pd
from PIL import Image

from phone_pipeline.domain.privacy_report import (
    Document,
    Figure,
    FlowStep,
    ReportInputs,
    Table,
    build_report,
    cells_sql,
    render_html,
    render_markdown,
    report_window,
    row_flow,
    tables_read,
)
from phone_pipeline.domain.risk import RiskLimits

DAY1, DAY2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
NOW = dt.datetime(2026, 11, 3, 6, 0, tzinfo=dt.UTC)
LIMITS = RiskLimits(k=5, max_share_below_k=0.1, max_unicity=0.5)
A_NUMBER = "+44 7700 900123"


def frame(columns: str, rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns.split())


def accounting_day(day: dt.date, *, received: int, erased: int, quarantined: dict[str, int],
                   excluded: dict[str, int], suppressed: int) -> list[tuple]:  # fmt: skip
    validated = received - erased - sum(quarantined.values())
    admitted = validated - sum(excluded.values())
    rows = [
        (day, "ingest", "received", None, received),
        (day, "erasure", "excluded", "caller_erased", erased),
        (day, "validate", "validated", None, validated),
        *((day, "validate", "quarantined", reason, n) for reason, n in quarantined.items()),
        (day, "consent", "admitted", None, admitted),
        *((day, "consent", "excluded", reason, n) for reason, n in excluded.items()),
        (day, "pseudonymize", "published", None, admitted),
        (day, "aggregate:call_volume_hourly", "in_published_cell", None, admitted - suppressed),
        (day, "aggregate:call_volume_hourly", "in_suppressed_cell", None, suppressed),
    ]
    return rows


def empty(columns: str) -> pd.DataFrame:
    return frame(columns, [])


def no_data(**overrides: object) -> ReportInputs:
    """Inputs of a window in which every stage wrote nothing but row accounting."""
    inputs = ReportInputs(
        generated_at=NOW,
        first_day=DAY2 - dt.timedelta(days=29),
        last_day=DAY2,
        limits=LIMITS,
        min_cell_size=5,
        accounting=frame(
            "call_date stage outcome reason rows",
            accounting_day(
                DAY2, received=10, erased=0, quarantined={}, excluded={}, suppressed=0
            ),  # fmt: skip
        ),
        cells=empty("call_date dataset cells suppressed_cells"),
        risk=empty(
            "call_date dataset measure parameter parameter_upper value subscribers "
            "margin_95 applicable"
        ),  # fmt: skip
        publications=empty("call_date dataset decision reasons published_rows withdrawn_rows"),
        erasures=empty("requested_at received_at completed_at partitions rows_removed"),
        sweeps=empty("swept_at sweep as_of zone tables_swept rows_deleted"),
        budget=empty("call_date output epsilon budget_per_day"),
        contact=empty("call_date finding value"),
        fairness=empty("call_date measure country number_type rows affected rate rest_rate"),
    )
    return replace(inputs, **overrides)


def full() -> ReportInputs:
    """Two days of every kind of evidence, the second day's risk above the limits."""
    accounting = frame(
        "call_date stage outcome reason rows",
        accounting_day(DAY1, received=100, erased=2, quarantined={"bad_timestamp": 3},
                       excluded={"caller_no_analytics_consent": 15}, suppressed=20)
        + accounting_day(DAY2, received=200, erased=0,
                         quarantined={"bad_timestamp": 1, "invalid_caller_number": 9},
                         excluded={"caller_no_analytics_consent": 30,
                                   "caller_analytics_consent_withdrawn": 10}, suppressed=50),
    )  # fmt: skip
    risk_rows = []
    for day, below, unicity in ((DAY1, 0.05, 0.2), (DAY2, 0.25, 0.7)):
        risk_rows += [
            (day, "calls_pseudonymized", "group_size", 1, 1, 0.1, 4, None, True),
            (day, "calls_pseudonymized", "group_size", 5, 9, 0.9, 36, None, True),
            (day, "calls_pseudonymized", "share_below_k", 5, None, below, 4, None, True),
            *((day, "calls_pseudonymized", "unicity", p, None, unicity, 40, 0.05, True)
              for p in range(1, 5)),
            (day, "call_volume_hourly", "unicity", 1, None, None, None, None, False),
        ]  # fmt: skip
    return replace(
        no_data(),
        first_day=DAY2 - dt.timedelta(days=29),
        accounting=accounting,
        cells=frame("call_date dataset cells suppressed_cells",
                    [(DAY1, "call_volume_hourly", 10, 4), (DAY2, "call_volume_hourly", 12, 6)]),
        risk=frame("call_date dataset measure parameter parameter_upper value subscribers "
                   "margin_95 applicable", risk_rows),
        publications=frame(
            "call_date dataset decision reasons published_rows withdrawn_rows",
            [(DAY1, "calls_pseudonymized", "published", None, 80, 0),
             (DAY2, "calls_pseudonymized", "withheld",
              f"share_below_k (k=5) = 0.2500 (10 subscribers) > limit 0.1000; unicity (p=1) = 0.7000 "
              f"(of 40 subscribers, 40 sampled) > limit 0.5000; <script>alert(1)</script> {A_NUMBER}",
              0, 0)],
        ),
        erasures=frame(
            "requested_at received_at completed_at partitions rows_removed",
            [(pd.Timestamp("2026-11-01 00:00", tz="UTC"), pd.Timestamp("2026-11-01 01:00", tz="UTC"),
              pd.Timestamp("2026-11-01 06:00", tz="UTC"), 2, 7),
             (pd.Timestamp("2026-11-02 00:00", tz="UTC"), pd.Timestamp("2026-11-02 00:30", tz="UTC"),
              pd.Timestamp("2026-11-03 00:00", tz="UTC"), 1, 3),
             (pd.Timestamp("2026-11-02 12:00", tz="UTC"), pd.Timestamp("2026-11-02 12:30", tz="UTC"),
              pd.NaT, 0, 0)],
        ),
        sweeps=frame("swept_at sweep as_of zone tables_swept rows_deleted",
                     [(pd.Timestamp("2026-11-02 03:00", tz="UTC"), "run-a", DAY2, "restricted", 3, 1234),
                      (pd.Timestamp("2026-11-02 03:01", tz="UTC"), "run-a", DAY2, "aggregates", 0, 0)]),
        budget=frame("call_date output epsilon budget_per_day",
                     [(DAY1, "call_volume_hourly", 1.0, 4.0), (DAY1, "call_volume_by_country", 1.0, 4.0),
                      (DAY2, "call_volume_hourly", 5.0, 4.0)]),
        contact=frame("call_date finding value",
                      [(DAY1, "callees_over_24h_cap", 3), (DAY2, "callees_over_24h_cap", 4),
                       (DAY2, "calls_after_dnc", 2)]),
        fairness=frame("call_date measure country number_type rows affected rate rest_rate",
                       [(DAY1, "suppression", "AU", "fixed_line", 50, 40, 0.8, 0.3),
                        (DAY2, "suppression", "AU", "fixed_line", 50, 30, 0.6, 0.3)]),
    )  # fmt: skip


def table(document: Document, title: str, index: int = 0) -> Table:
    return [b for b in document.section(title).blocks if isinstance(b, Table)][index]


def texts(document: Document, title: str) -> list[str]:
    return [b for b in document.section(title).blocks if isinstance(b, str)]


# --- figures that add up --------------------------------------------------------------------------


def test_the_row_flow_accounts_for_every_received_row() -> None:
    inputs = full()
    steps = row_flow(inputs.accounting, shared_rows=80)
    by_label = {step.label: step for step in steps}
    # 300 received = 2 erased + 13 quarantined + 55 without consent + 230 published.
    assert by_label["received"] == FlowStep("received", 300)
    assert by_label["not erased"] == FlowStep("not erased", 298, 2, "erased")
    assert by_label["validated"] == FlowStep("validated", 285, 13, "quarantined")
    assert by_label["consented"] == FlowStep("consented", 230, 55, "no consent")
    assert by_label["pseudonymised"].kept == 230 and by_label["pseudonymised"].left_out == 0
    cells = by_label["in shown cells: call_volume_hourly"]
    assert (cells.kept, cells.left_out) == (160, 70)
    assert by_label["shared (row level)"] == FlowStep("shared (row level)", 80, 150, "withheld")
    assert [s.label for s in steps][0] == "received"
    assert [s.label for s in steps][-1] == "shared (row level)"


def test_consent_quarantine_and_suppression_per_day_and_over_the_window() -> None:
    document = build_report(full())
    consent = document.section("Consent coverage and exclusions")
    assert "**80.7%**" in consent.blocks[0] and "230 of 285" in consent.blocks[0]
    assert table(document, "Consent coverage and exclusions", 0).rows == (
        ("caller_no_analytics_consent", 30, 45),
        ("caller_analytics_consent_withdrawn", 10, 10),
    )
    assert table(document, "Consent coverage and exclusions", 1).rows == (
        ("2026-11-01", 95, 80, 15, "84.2%"),
        ("2026-11-02", 190, 150, 40, "78.9%"),
    )
    assert table(document, "Quarantine", 0).rows == (
        ("invalid_caller_number", 9, 9),
        ("bad_timestamp", 1, 4),
    )
    assert table(document, "Quarantine", 1).rows[0] == ("2026-11-01", 100, 3, "3.0%", 2)
    assert table(document, "Small-cell suppression").rows == (
        ("call_volume_hourly", 6, 12, 10, 22, 70, 230),
    )


def test_risk_against_the_limits_and_the_gate_decisions() -> None:
    document = build_report(full())
    risk = document.section("Re-identification risk against the limits")
    assert "k = 5 at most 10.00%" in risk.blocks[0] and "at most 50.00%" in risk.blocks[0]
    assert any(isinstance(b, Figure) for b in risk.blocks)
    rows = {(day, dataset): rest for day, dataset, *rest in table(document, risk.title).rows}
    assert rows[("2026-11-02", "calls_pseudonymized")] == ["25.00%", "70.00%", "NO"]
    assert rows[("2026-11-01", "calls_pseudonymized")] == ["5.00%", "20.00%", "yes"]
    assert rows[("2026-11-02", "call_volume_hourly")] == ["n/a", "not applicable", "NO"]
    decisions = table(document, "Shareable decisions", 0).rows
    assert decisions == (("calls_pseudonymized", "withheld", 1, 1, 0, 80),)
    why = table(document, "Shareable decisions", 1).rows
    assert why[0][:3] == ("2026-11-02", "calls_pseudonymized", "withheld")
    # The measures named (their figures are in the risk table), text that is none escaped.
    assert why[0][3].startswith("share_below_k (k=5); unicity (p=1); <script>")


def test_erasures_retention_budget_contact_and_fairness() -> None:
    document = build_report(full())
    erasure = texts(document, "Erasure requests")[0]
    # 6 h and 24 h from request to completion.
    assert "3 request(s): 2 completed, **1 pending**" in erasure
    assert "median 15.0 h, longest 24.0 h" in erasure
    assert table(document, "Erasure requests").rows[0] == (
        "2026-11-02T12:00Z", "pending", None, 0, 0,
    )  # fmt: skip
    assert texts(document, "Retention sweeps")[0].startswith(
        "1 sweep(s) in the last 30 days deleted 1,234 rows"
    )
    assert table(document, "Retention sweeps").rows == (
        ("2026-11-02T03:00Z", "2026-11-02", "aggregates", 0, 0),
        ("2026-11-02T03:00Z", "2026-11-02", "restricted", 3, 1234),
    )
    assert "1 day(s) over budget" in texts(document, "Differential privacy budget")[0]
    assert table(document, "Differential privacy budget").rows == (
        ("2026-11-02", 5.0, 4.0),
        ("2026-11-01", 2.0, 4.0),
    )
    assert table(document, "Contact findings").rows == (
        ("callees over the 24 h cap", 4, 7),
        ("callees over the 7 d cap", 0, 0),
        ("calls outside the permitted window", 0, 0),
        ("calls with unknown local time", 0, 0),
        ("callees called after a DNC listing", 0, 0),
        ("calls after a DNC listing", 2, 2),
        ("campaign-days over the abandonment limit", 0, 0),
    )
    assert table(document, "Fairness flags").rows == (
        ("suppression: AU/fixed_line", 2, "2026-11-02", "70.0%", 100),
    )


def test_every_section_says_when_it_has_no_data() -> None:
    document = build_report(no_data())
    expected = {
        "Small-cell suppression": "No aggregate cells in the window.",
        "Re-identification risk against the limits": "No risk was measured in the window.",
        "Shareable decisions": "No publication decision in the window.",
        "Erasure requests": "No erasure request in the last 30 days, and none pending.",
        "Retention sweeps": "No retention sweep ran in the last 30 days.",
        "Contact findings": "No compliance findings in the window.",
        "Fairness flags": "No caller group was flagged in the window.",
    }
    for title, text in expected.items():
        assert document.section(title).blocks == (text,), title
    assert "no budget spent" in texts(document, "Differential privacy budget")[0]
    nothing = build_report(no_data(first_day=None, last_day=None,
                                   accounting=empty("call_date stage outcome reason rows")))  # fmt: skip
    assert nothing.sections == ()
    assert "No call day has been processed yet" in render_html(nothing)


def test_the_window_is_the_30_days_up_to_the_latest_day() -> None:
    assert report_window(DAY2) == (dt.date(2026, 10, 4), DAY2)
    assert report_window(None) is None


# --- safe to open and to hand on ------------------------------------------------------------------


def test_text_from_the_data_is_redacted_and_escaped() -> None:
    document = build_report(full())
    page = render_html(document)
    markdown = render_markdown(document)
    for text in (page, markdown):
        assert A_NUMBER not in text and "7700 900123" not in text
        assert "<script>" not in text
    assert "&lt;script&gt;" in page


def test_the_html_page_holds_every_image_and_fetches_nothing() -> None:
    document = build_report(full())
    page = render_html(document)
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(document.figures) == 4  # flow, daily rows, risk, budget
    for source in sources:
        assert source.startswith("data:image/png;base64,")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)  # base64 holds "//"
    assert not re.search(r"https?:|//[a-z]|<script|<link|@import|url\(", text, re.IGNORECASE)
    assert "default-src 'none'" in page  # a viewer fetches nothing, runs nothing
    for figure in document.figures:
        with Image.open(io.BytesIO(figure.png)) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 100
    markdown = render_markdown(document)
    assert markdown.count("](data:image/png;base64,") == 4


def test_cells_sql_reads_each_aggregate() -> None:
    sql = cells_sql([("a", "analytics.a"), ("b", "analytics.b")])
    assert tables_read(sql) == {"analytics.a", "analytics.b"}
    assert tables_read("WITH x AS (SELECT 1) SELECT * FROM x JOIN t USING (c)") == {"t"}
