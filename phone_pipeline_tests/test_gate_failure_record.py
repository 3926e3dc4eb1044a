"""A failed blocking gate of the compliance zone: the run fails because of that check (with its
description, not a missing-output error), and the record of processing still shows the gate
FAILED, from the job and from `phone-pipeline run` (which has no daemon to run the
`record_after_failed_run` sensor)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from phone_pipeline_synthetic import generate
from phone_pipeline_tests.conftest import DAY, Pipeline, check_results
from phone_pipeline_tests.pipeline_support import read_text_csv, step_failures, write_csv_atomically
from phone_pipeline_tests.test_cli import phone_pipeline

NUMBER_AS_CAMPAIGN = "+12125550187"  # fictional (555-01xx) and E.164: the gate must catch it
GATE = "no_phone_numbers_in_compliance"


def _campaign_with_a_number(home: Path) -> None:
    """One day of calls whose first rows carry a phone number as their campaign id."""
    summary = generate(home, rows=2_000, days=1, seed=7, start_date=DAY, junk_share=0.0)
    path = summary.call_files[0]
    frame = read_text_csv(path)
    frame.loc[frame.index[:3], "campaign_id"] = NUMBER_AS_CAMPAIGN
    write_csv_atomically(pd.DataFrame(frame), path)


def test_the_job_fails_on_the_gate_itself(pipeline: Pipeline) -> None:
    _campaign_with_a_number(pipeline.settings.home)
    result = pipeline.run()
    assert not result.success
    checks = check_results(result)
    assert checks[GATE] is False
    # The findings are reported as not evaluated (nothing was published), so the step has
    # every output it declares.
    assert checks["abandonment_within_limit"] is False
    failures = step_failures(result)
    assert set(failures) == {"contact_compliance"}, failures
    assert "DagsterStepOutputNotFoundError" not in failures["contact_compliance"]
    assert f"compliance/contact_pressure: {GATE}" in failures["contact_compliance"]
    [evaluation] = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
        and event.event_specific_data.check_name == GATE
    ]
    assert "look like a phone number" in evaluation.description
    assert NUMBER_AS_CAMPAIGN not in evaluation.description


def test_the_cli_names_the_gate_and_writes_the_record(tmp_path: Path) -> None:
    from phone_pipeline_tests.conftest import TEST_KEY

    home = tmp_path / "data"
    _campaign_with_a_number(home)
    call = phone_pipeline(["run", "--partition", DAY.isoformat()], home, key=TEST_KEY)
    assert call.returncode == 1, call.describe()
    assert "Traceback" not in call.output and "DagsterStepOutputNotFoundError" not in call.output
    assert NUMBER_AS_CAMPAIGN not in call.output
    assert re.search(rf"gate failed: compliance/contact_pressure {GATE}: .*look like a phone",
                     call.stdout), call.describe()  # fmt: skip
    assert "record of processing regenerated" in call.stdout, call.describe()
    record = (home / "records" / "record_of_processing.md").read_text(encoding="utf-8")
    [row] = [line for line in record.splitlines() if line.startswith(f"| `{GATE}`")]
    assert "| FAILED |" in row and f"| {DAY.isoformat()} |" in row
    assert "| Responsible contact | **FAILED** |" in record
