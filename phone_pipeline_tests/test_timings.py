"""The seconds a stage spends parsing numbers, recorded by the product itself (timings.py): what the
stages report as `parse_seconds` and `phone-pipeline bench` reads, without patching anything."""

from __future__ import annotations

import duckdb

from phone_pipeline.stages.validate.number_cache import cache_new_numbers
from phone_pipeline.timings import PARSE, recording, timed
from phone_pipeline.warehouse import prepare_restricted
from phone_pipeline_synthetic import fictional_pool

NUMBERS_SQL = "SELECT raw_number FROM strings"


def _strings(con: duckdb.DuckDBPyConnection) -> int:
    strings = [number for numbers in fictional_pool().values() for number in numbers[:100]]
    con.execute("CREATE TABLE strings (raw_number VARCHAR)")
    con.executemany("INSERT INTO strings VALUES (?)", [[number] for number in strings])
    return len(strings)


def test_the_number_cache_records_its_parsing_in_the_open_recording() -> None:
    with duckdb.connect() as con:
        prepare_restricted(con)
        count = _strings(con)
        with recording() as first:
            parsed = cache_new_numbers(con, NUMBERS_SQL, "US")
        assert parsed == count
        assert first.totals[PARSE] > 0
        # Everything is cached now: nothing is parsed, so nothing is timed.
        with recording() as second:
            assert cache_new_numbers(con, NUMBERS_SQL, "US") == 0
        assert PARSE not in second.totals and second.seconds(PARSE) == 0.0


def test_timing_outside_a_recording_records_nothing_and_recordings_do_not_mix() -> None:
    with timed(PARSE):  # a helper called outside any stage: no error, no record
        pass
    with recording() as outer:
        with timed(PARSE):
            pass
        with recording() as inner, timed("other"):
            pass
        with timed(PARSE):
            pass
    assert set(outer.totals) == {PARSE}
    assert set(inner.totals) == {"other"}
    with recording() as later:
        pass
    assert later.totals == {}
