"""Issue 13, numbers in disguise, through the real `call_pipeline` job: a campaign_id that is a
phone number written with keypad letters, invisible characters or other scripts' digits is caught
by `no_phone_numbers_in_compliance` (nothing of that day is published to the compliance zone) and
never reaches the event log, stderr or the instance's files; campaign ids made of words pass."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from phone_pipeline import catalog
from phone_pipeline.domain.redaction import normalize_for_matching
from phone_pipeline_tests.conftest import DAY, Pipeline, check_results
from phone_pipeline_tests.domain.test_disguised_numbers import DISGUISED
from phone_pipeline_tests.pipeline_support import write_csv_atomically
from phone_pipeline_tests.test_privacy_leaks import event_log_texts

WORD_CAMPAIGNS = ["spring-sale", "2026 spring sale", "Black Friday 2026", "WINTER-DEALS"]
CALLER, CALLEE = "+12125550150", "+12125550151"
WORDS_DAY = DAY - dt.timedelta(days=1)
# Every compliance table that names campaigns, from the catalog: a table added there is scanned.
COMPLIANCE_TABLES = tuple(
    table.name
    for table in catalog.zone_tables(catalog.COMPLIANCE)
    if "campaign_id" in table.column_names
)


def _calls(campaigns: list[str], day: dt.date) -> pd.DataFrame:
    start = dt.datetime.combine(day, dt.time(15), tzinfo=dt.UTC)
    return pd.DataFrame(
        {
            "call_id": [f"{day}-{i}" for i in range(len(campaigns))],
            "caller_number": [CALLER] * len(campaigns),
            "callee_number": [CALLEE] * len(campaigns),
            "started_at": [
                (start + dt.timedelta(minutes=i)).isoformat() for i in range(len(campaigns))
            ],
            "duration_seconds": ["30"] * len(campaigns),
            "disposition": ["answered"] * len(campaigns),
            "campaign_id": campaigns,
        }
    )


def _campaigns(pipeline: Pipeline, day: dt.date) -> dict[str, set[str]]:
    with duckdb.connect(str(pipeline.settings.compliance_db), read_only=True) as con:
        return {
            table: {
                row[0]
                for row in con.execute(
                    f"SELECT DISTINCT campaign_id FROM {table} WHERE call_date = ? "
                    "AND campaign_id IS NOT NULL",
                    [day],
                ).fetchall()
            }
            for table in COMPLIANCE_TABLES
        }


def _leaked(values: list[str], texts: list[str]) -> set[str]:
    """The values found in any text: as written, JSON-escaped, or once both are normalised."""
    normalized = [normalize_for_matching(text) for text in texts]
    found = set()
    for value in values:
        forms = {value, json.dumps(value)[1:-1]}
        written = any(form in text for form in forms for text in texts)
        if written or any(normalize_for_matching(value) in text for text in normalized):
            found.add(value)
    return found


def test_disguised_campaign_ids_are_flagged_and_never_logged(
    persistent_pipeline: Pipeline, capfd: pytest.CaptureFixture[str]
) -> None:
    pipeline = persistent_pipeline  # its files (event log, compute logs) are scanned below
    disguised = list(DISGUISED.values())
    landing = pipeline.settings.landing_calls
    write_csv_atomically(_calls(WORD_CAMPAIGNS * 3, WORDS_DAY), landing / "words.csv")
    write_csv_atomically(_calls(disguised + WORD_CAMPAIGNS, DAY), landing / "disguised.csv")

    words = pipeline.run(WORDS_DAY)
    assert words.success
    assert check_results(words)["no_phone_numbers_in_compliance"] is True
    # Words are no numbers: the day is published with its campaign ids as they were.
    assert _campaigns(pipeline, WORDS_DAY)["abandonment_rates"] == set(WORD_CAMPAIGNS)

    disguised_run = pipeline.run(DAY)
    assert check_results(disguised_run)["no_phone_numbers_in_compliance"] is False
    gate = next(
        event.event_specific_data
        for event in disguised_run.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.check_name == "no_phone_numbers_in_compliance"
    )
    # Each disguise is caught, not merely one of them, in each of the three tables that name
    # the day's campaigns (contact_pressure, quiet_hours, abandonment_rates; no DNC findings).
    found = gate.metadata["distinct_values_that_look_like_a_phone_number"].value
    assert found == 3 * len(disguised)
    # Nothing of the day reached the compliance tables.
    assert _campaigns(pipeline, DAY) == {table: set() for table in COMPLIANCE_TABLES}

    captured = capfd.readouterr()
    texts = [captured.out, captured.err, *event_log_texts(pipeline.instance)]
    # The instance's files: event log and run storage, compute logs where captured.
    texts += [
        path.read_bytes().decode("utf-8", errors="replace")
        for path in sorted(Path(pipeline.instance.root_directory).rglob("*"))
        if path.is_file()
    ]
    assert len(texts) > 10
    assert _leaked(disguised, texts) == set()
