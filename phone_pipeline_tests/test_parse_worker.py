"""Numbers parsed in worker processes: the same rows as in one process, whatever happens to a
worker, and no surprise for the caller's script."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat

import phone_pipeline.stages.validate.parse_worker as parse_worker
from phone_pipeline.domain.numbers import NUMBER_COLUMNS, normalize_numbers
from phone_pipeline_bench import many_region_examples
from phone_pipeline_synthetic import fictional_pool

JUNK = ["", "   ", "N/A", "0", "+", "12", "+999 123", "call me", "+1 (212) 555-01x3", "0" * 30]
FORMATS = (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL)


def corpus(per_region: int = 800) -> list[str]:
    """Fictional numbers of every region the generator knows, each in three formats, the
    published examples of 244 regions, and junk."""
    strings: list[str] = []
    for numbers in fictional_pool().values():
        for e164 in numbers[:per_region]:
            parsed = phonenumbers.parse(e164, None)
            strings += [phonenumbers.format_number(parsed, style) for style in FORMATS]
    return strings + many_region_examples()["strings"] + JUNK


def by_raw(frame: pd.DataFrame) -> pd.DataFrame:
    ordered = frame[NUMBER_COLUMNS].sort_values("raw_number", ignore_index=True)
    # Lists compare as tuples; None stays None.
    ordered["time_zones"] = ordered["time_zones"].map(lambda z: None if z is None else tuple(z))
    return ordered


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_worker, "MIN_NUMBERS_PER_PROCESS", 1_000)


def test_workers_give_the_rows_of_one_process(small_slices: None) -> None:
    numbers = corpus()
    assert len(set(numbers)) > 10_000

    in_parallel = parse_worker.parse_numbers(numbers, "US", processes=3)

    pd.testing.assert_frame_equal(by_raw(in_parallel), by_raw(normalize_numbers(numbers, "US")))
    assert len(in_parallel) == len(set(numbers))


def test_a_failed_worker_is_replaced_by_this_process(
    small_slices: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    numbers = corpus(per_region=400)
    crash = (sys.executable, "-c", "import sys; sys.stdin.buffer.read(10); sys.exit(3)")
    monkeypatch.setattr(parse_worker, "WORKER_COMMAND", crash)

    with caplog.at_level(logging.WARNING, logger=parse_worker.__name__):
        result = parse_worker.parse_numbers(numbers, "GB", processes=2)

    pd.testing.assert_frame_equal(by_raw(result), by_raw(normalize_numbers(numbers, "GB")))
    assert "exit code 3" in caplog.text
    # The warning names no number.
    assert not any(raw in caplog.text for raw in set(numbers) if len(raw) > 5)


def test_a_worker_that_cannot_start_is_replaced_too(
    small_slices: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    numbers = corpus(per_region=400)
    monkeypatch.setattr(parse_worker, "WORKER_COMMAND", (str(tmp_path / "no-such-python"),))

    result = parse_worker.parse_numbers(numbers, "US", processes=2)

    pd.testing.assert_frame_equal(by_raw(result), by_raw(normalize_numbers(numbers, "US")))


def test_few_numbers_stay_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_worker(*args, **kwargs):
        raise AssertionError("no worker for a handful of numbers")

    monkeypatch.setattr(parse_worker, "_Worker", no_worker)
    result = parse_worker.parse_numbers(["+442079460123", "+12125550123"] * 3, "US", processes=8)
    assert sorted(result["raw_number"]) == ["+12125550123", "+442079460123"]


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    # What ruled out multiprocessing's spawn: each child re-ran the caller's unguarded script.
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import subprocess
            import phone_pipeline.stages.validate.parse_worker as parse_worker

            started = []
            class CountingPopen(subprocess.Popen):
                def __init__(self, *args, **kwargs):
                    started.append(args[0])
                    super().__init__(*args, **kwargs)

            subprocess.Popen = CountingPopen
            parse_worker.MIN_NUMBERS_PER_PROCESS = 10
            numbers = ["+1212555{:04d}".format(i) for i in range(200)]
            frame = parse_worker.parse_numbers(numbers, "US", processes=2)
            print("ran", len(frame), "workers", len(started))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == ["ran 200 workers 1"]
