"""Issue 13: one odd number never stops a day. A day whose callers and callees are every example
number phonenumbers ships (each region, each type, the non-geographic entities), each in E.164,
international and RFC 3966 spelling, goes through the real `call_pipeline` job: the run succeeds,
every gate passes, and every row is admitted or quarantined with a reason. An old number cache
holding a verdict the rule no longer gives cannot make a gate fail either."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import phonenumbers
import pytest

from phone_pipeline.domain.numbers import is_e164, normalize_number
from phone_pipeline.stages.validate.number_cache import cache_new_numbers
from phone_pipeline.warehouse import prepare_restricted
from phone_pipeline_tests.conftest import DAY, check_results
from phone_pipeline_tests.example_numbers import example_numbers, example_renderings
from phone_pipeline_tests.pipeline_support import count, module_pipeline, write_csv_atomically

# Valid for phonenumbers, longer than E.164's 15 digits: quarantined, never a failed gate.
TOO_LONG = ["+49 800 123456789012", "+81 0037123456789012"]
NEXT_DAY = DAY + dt.timedelta(days=1)


def _calls(callers: list[str], callees: list[str], day: dt.date, prefix: str) -> pd.DataFrame:
    start = dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC)
    return pd.DataFrame(
        {
            "call_id": [f"{prefix}-{i}" for i in range(len(callers))],
            "caller_number": callers,
            "callee_number": callees,
            "started_at": [
                (start + dt.timedelta(seconds=7 * i)).isoformat() for i in range(len(callers))
            ],
            "duration_seconds": ["42"] * len(callers),
            "disposition": ["answered"] * len(callers),
            "campaign_id": ["examples"] * len(callers),
        }
    )


@pytest.fixture(scope="module")
def example_day(tmp_path_factory: pytest.TempPathFactory):
    texts = [text for _, text in example_renderings()]
    callers = texts + TOO_LONG
    # Every example number is a callee too (shifted by one number, so no one calls themself).
    callees = texts[3:] + texts[:3] + ["+12025550123"] * len(TOO_LONG)
    # Analytics consent for every other example number, written in yet another spelling.
    consenting = [
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        for number in example_numbers()[::2]
    ]
    with module_pipeline(tmp_path_factory.mktemp("examples")) as pipeline:
        write_csv_atomically(
            _calls(callers, callees, DAY, "ex"), pipeline.settings.landing_calls / "examples.csv"
        )
        write_csv_atomically(
            pd.DataFrame(
                {
                    "phone_number": consenting,
                    "purpose": ["analytics"] * len(consenting),
                    "status": ["granted"] * len(consenting),
                    "recorded_at": ["2026-01-01T00:00:00Z"] * len(consenting),
                    "source": ["web-form"] * len(consenting),
                }
            ),
            pipeline.settings.landing_consent / "consent.csv",
        )
        result = pipeline.run(DAY)
        yield pipeline, result, callers, consenting


def test_the_day_of_example_numbers_runs_and_every_gate_passes(example_day) -> None:
    _, result, _, _ = example_day
    checks = check_results(result)
    failed = sorted(name for name, passed in checks.items() if not passed)
    assert result.success, failed
    for gate in (
        "calls_validated_suite",
        "validate_rows_reconcile",
        "consent_events_suite",
        "consented_calls_suite",
        "consent_rows_reconcile",
        "no_consent_violations",
    ):
        assert checks[gate], gate
    assert failed == []


def test_every_row_is_admitted_or_quarantined_with_a_reason(example_day) -> None:
    pipeline, _, callers, consenting = example_day
    with pipeline.restricted() as con:
        raw = count(con, "SELECT count(*) FROM raw_calls WHERE call_date = ?", [DAY])
        validated = count(con, "SELECT count(*) FROM calls_validated WHERE call_date = ?", [DAY])
        quarantined = dict(
            con.execute(
                "SELECT caller_number, reason || '/' || coalesce(detail, '') "
                "FROM calls_quarantine WHERE call_date = ?",
                [DAY],
            ).fetchall()
        )
        stored = [
            row[0]
            for row in con.execute(
                "SELECT caller_e164 FROM calls_validated UNION ALL "
                "SELECT callee_e164 FROM calls_validated WHERE callee_e164 IS NOT NULL "
                "UNION ALL SELECT e164 FROM consent_events"
            ).fetchall()
        ]
        consent_rows = count(con, "SELECT count(*) FROM consent_events")
        consent_quarantined = count(con, "SELECT count(*) FROM consent_quarantine")
        iran = count(con, "SELECT count(*) FROM calls_validated WHERE caller_e164 = '+989601'")
    assert raw == len(callers) == validated + len(quarantined)
    # What the validator would not vouch for is exactly what was quarantined, with its reason.
    expected = {
        caller: f"invalid_caller_number/{normalize_number(caller, 'US').reason}"
        for caller in callers
        if normalize_number(caller, "US").reason is not None
    }
    assert (
        quarantined
        == expected
        == {text: "invalid_caller_number/too_long_for_e164" for text in TOO_LONG}
    )
    assert iran == 3  # +989601 in its three renderings: admitted, no longer a failed day
    assert all(is_e164(value) for value in stored)
    assert (consent_rows, consent_quarantined) == (len(consenting), 0)


def test_consent_of_example_numbers_admits_their_calls(example_day) -> None:
    pipeline, _, _, consenting = example_day
    granted = {normalize_number(text, "US").e164 for text in consenting}
    with pipeline.restricted() as con:
        admitted = {
            row[0]
            for row in con.execute(
                "SELECT DISTINCT caller_e164 FROM consented_calls WHERE call_date = ?", [DAY]
            ).fetchall()
        }
    assert admitted == granted


def test_a_stale_cache_verdict_is_parsed_again_not_trusted(example_day) -> None:
    """A cache written before the E.164 bound vouched for a 17-digit number: the next day that
    meets the string re-parses it and quarantines the call instead of failing its gate."""
    pipeline, _, _, _ = example_day
    stale = "+49 800 987654321098"
    with duckdb.connect(str(pipeline.settings.restricted_db)) as con:
        con.execute(
            "INSERT INTO number_cache (raw_number, default_region, e164, country, number_type, "
            "time_zones, reason) VALUES (?, 'US', '+49800987654321098', 'DE', 'toll_free', "
            "['Europe/Berlin'], NULL)",
            [stale],
        )
    write_csv_atomically(
        # Nine good calls beside it keep the day under the quarantine share limit.
        _calls([stale] + ["+98 9601"] * 9, ["+12025550123"] * 10, NEXT_DAY, "next"),
        pipeline.settings.landing_calls / "next.csv",
    )
    result = pipeline.run(NEXT_DAY)
    assert result.success, [name for name, ok in check_results(result).items() if not ok]
    with pipeline.restricted() as con:
        assert con.execute(
            "SELECT reason, detail FROM calls_quarantine WHERE call_date = ?", [NEXT_DAY]
        ).fetchall() == [("invalid_caller_number", "too_long_for_e164")]
        assert con.execute(
            "SELECT e164, reason FROM number_cache WHERE raw_number = ?", [stale]
        ).fetchall() == [(None, "too_long_for_e164")]


def test_cache_new_numbers_replaces_only_stale_entries() -> None:
    with duckdb.connect() as con:
        prepare_restricted(con)
        con.execute(
            "INSERT INTO number_cache (raw_number, default_region, e164, reason) VALUES "
            "('+49 800 123456789012', 'US', '+49800123456789012', NULL), "
            "('+1 202 555 0123', 'US', '+12025550123', NULL), "
            "('+49 800 123456789012', 'DE', '+49800123456789012', NULL)"
        )
        parsed = cache_new_numbers(
            con,
            "SELECT * FROM (VALUES ('+49 800 123456789012'), ('+1 202 555 0123'), ('+98 9601'))"
            " AS t(raw_number)",
            "US",
        )
        rows = con.execute(
            "SELECT raw_number, default_region, e164, reason FROM number_cache ORDER BY ALL"
        ).fetchall()
    assert parsed == 2  # the stale entry and the new string; the good entry is kept
    assert rows == [
        ("+1 202 555 0123", "US", "+12025550123", None),
        # Another region's entry is only replaced when a run of that region asks for it.
        ("+49 800 123456789012", "DE", "+49800123456789012", None),
        ("+49 800 123456789012", "US", None, "too_long_for_e164"),
        ("+98 9601", "US", "+989601", None),
    ]
