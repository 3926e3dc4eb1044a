"""Unit tests for phone_pipeline.domain.fairness: the flag on crafted skews, computed by hand, and
the country of numbers that do not parse."""

from __future__ import annotations

import pandas as pd
import pytest

from phone_pipeline.domain.fairness import (
    PLOTTED_GROUPS,
    flag_groups,
    guess_country,
    plotted_groups,
    png_markdown,
    rates_markdown,
    rates_png,
)


def counts(rows: list[tuple[str, str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["measure", "country", "number_type", "rows", "affected"])


def by_group(frame: pd.DataFrame) -> dict[tuple[str, str], dict]:
    return {(row["measure"], row["country"]): row for row in frame.to_dict(orient="records")}


def test_flag_on_a_crafted_skew() -> None:
    report = by_group(
        flag_groups(
            counts(
                [
                    # quarantine: 1240 rows, 38 quarantined.
                    ("quarantine", "US", "mobile", 1000, 10),
                    ("quarantine", "GB", "fixed_line", 200, 20),  # 10% vs 18/1040 = 1.7%
                    ("quarantine", "SE", "mobile", 40, 8),  # 20% vs 30/1200, but only 40 rows
                    # consent exclusion: exactly twice the rest is "at least" the ratio.
                    ("consent_exclusion", "AU", "fixed_line", 100, 20),
                    ("consent_exclusion", "US", "mobile", 400, 40),
                    # suppression: the rest lose nothing, so any loss is far above them.
                    ("suppression", "CA", "mobile", 60, 3),
                    ("suppression", "US", "mobile", 500, 0),
                ]
            ),
            ratio=2.0,
            min_rows=50,
        )
    )
    gb = report[("quarantine", "GB")]
    assert gb["rate"] == pytest.approx(0.10)
    assert gb["rest_rate"] == pytest.approx(18 / 1040)
    assert gb["overall_rate"] == pytest.approx(38 / 1240)
    assert gb["ratio_to_rest"] == pytest.approx(0.10 / (18 / 1040))
    flagged = {key for key, row in report.items() if row["flagged"]}
    assert flagged == {("quarantine", "GB"), ("consent_exclusion", "AU"), ("suppression", "CA")}
    assert report[("quarantine", "SE")]["rest_rate"] == pytest.approx(30 / 1200)
    assert pd.isna(report[("suppression", "CA")]["ratio_to_rest"])

    stricter = flag_groups(
        counts([("consent_exclusion", "AU", "fixed_line", 100, 20),
                ("consent_exclusion", "US", "mobile", 400, 40)]),
        ratio=2.5,
        min_rows=50,
    )  # fmt: skip
    assert not stricter["flagged"].any()


def test_unknown_country_and_lone_groups_are_never_flagged() -> None:
    report = by_group(
        flag_groups(
            counts(
                [
                    ("quarantine", "unknown", "unknown", 60, 60),
                    ("quarantine", "US", "mobile", 1000, 10),
                    ("suppression", "US", "mobile", 500, 50),  # alone: no rest to compare with
                ]
            ),
            ratio=2.0,
            min_rows=50,
        )
    )
    assert report[("quarantine", "unknown")]["rate"] == 1.0
    assert not any(row["flagged"] for row in report.values())
    assert pd.isna(report[("suppression", "US")]["rest_rate"])


def test_ratio_must_exceed_one() -> None:
    with pytest.raises(ValueError):
        flag_groups(counts([("quarantine", "US", "mobile", 1, 1)]), ratio=1.0, min_rows=1)


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("+44 7700 900123", "GB"),  # possible but invalid: the calling code still says GB
        ("0044 7700 900123", "GB"),
        ("+1 (555) CALL", "US"),  # +1 is shared by NANP: its main region
        ("+61 2 5550", "AU"),
        ("+46-70", "SE"),
        ("tel:+353 1", "IE"),
        ("+999 123", None),  # no such calling code
        ("+800 1234 5678", None),  # non-geographic: no country
        ("01632 960123", None),  # national format: no calling code to go by
        ("555-CALL", None),
        ("N/A", None),
        ("", None),
        (None, None),
    ],
)
def test_guess_country_from_a_leading_calling_code(raw: str | None, country: str | None) -> None:
    assert guess_country(raw) == country


def test_report_renders_a_table_and_a_png() -> None:
    report = flag_groups(
        counts(
            [("quarantine", "GB", "fixed_line", 200, 20), ("quarantine", "US", "mobile", 1000, 10)]
        ),
        ratio=2.0,
        min_rows=50,
    )
    table = rates_markdown(report)
    assert table.splitlines()[2].startswith("| quarantine | GB | fixed_line | 200 | 20 | 10.0%")
    png = rates_png(report, "test")
    assert png.startswith(b"\x89PNG")
    assert png_markdown(png, "rates").startswith("![rates](data:image/png;base64,iVBOR")


def test_plot_draws_flagged_groups_first_and_at_most_a_few_dozen() -> None:
    # 100 small groups twice the rest's rate (all flagged) and 5 large unflagged ones.
    rows = [("suppression", f"C{i:03d}", "mobile", 100 + i, 40) for i in range(100)]
    rows += [("suppression", f"L{i}", "fixed_line", 50_000, 1_000) for i in range(5)]
    report = flag_groups(counts(rows), ratio=2.0, min_rows=50)
    assert int(report["flagged"].sum()) == 100

    drawn = plotted_groups(report[report["measure"] == "suppression"])

    assert len(drawn) == PLOTTED_GROUPS
    assert drawn["flagged"].all()
    # The largest flagged groups, in order of size.
    assert list(drawn["rows"]) == sorted(
        range(100 + 99, 100 + 99 - PLOTTED_GROUPS, -1), reverse=True
    )
    assert rates_png(report, "many groups").startswith(b"\x89PNG")
