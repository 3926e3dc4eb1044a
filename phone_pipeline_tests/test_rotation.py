"""Key rotation round trip through Dagster: data under key v1, key v2 added, `rotate_keys` (what
`phone-pipeline rotate-keys` runs), every partition with restricted rows under v2, joins across
partitions consistent, the partition whose restricted rows are gone marked, the erasure register
kept under both versions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from phone_pipeline.cli import main
from phone_pipeline.definitions import defs
from phone_pipeline.domain.pseudonyms import key_versions_sql, require_one_key_version
from phone_pipeline.resources import build_resources
from phone_pipeline.rotation import plan_for, rotate_keys, rotation_selection
from phone_pipeline.settings import load_settings
from phone_pipeline.sql import run
from phone_pipeline.warehouse import ANALYTICS_TABLES, COMPLIANCE_TABLES, ensure_tables
from phone_pipeline_tests.conftest import TEST_KEY, Pipeline, check_results
from phone_pipeline_tests.pipeline_support import module_pipeline, pseudonymizer
from phone_pipeline_tests.pipeline_support import write_csv_atomically as write
from phone_pipeline_tests.test_erasure import analytics_consent, call, request_erasure
from phone_pipeline_tests.test_privacy_leaks import event_log_texts

NEW_KEY = "9bc5d8724a7d83346ed8537cc0540eb9ae8bcbd2fafb45f91207d686d304074c"
DAYS = [dt.date(2026, 11, day) for day in (1, 2, 3)]
NUMBERS = [f"+1212555{n:04d}" for n in range(130, 137)]
A, B, C, D, E, F, X = NUMBERS
CALLS = pd.DataFrame(
    [
        call("1", A, B, "2026-11-01T09:00:00Z"),
        call("2", C, A, "2026-11-01T10:00:00Z"),
        call("3", X, D, "2026-11-01T11:00:00Z"),
        call("4", A, E, "2026-11-02T09:00:00Z"),
        call("5", B, F, "2026-11-02T10:00:00Z"),
        call("6", A, C, "2026-11-03T09:00:00Z"),
        call("7", D, A, "2026-11-03T10:00:00Z"),
    ]
)
CONSENT = analytics_consent(NUMBERS)


def versions(pipeline: Pipeline, day: dt.date) -> list[int]:
    with pipeline.analytics() as con:
        return [
            row[0]
            for row in run(
                con,
                key_versions_sql(
                    "calls_pseudonymized",
                    ["caller_pseudonym", "callee_pseudonym"],
                    "call_date = $call_date",
                ),
                {"call_date": day},
            ).fetchall()
        ]


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory):
    with module_pipeline(tmp_path_factory.mktemp("rotation")) as pipeline:
        write(CALLS, pipeline.settings.landing_calls / "calls.csv")
        write(CONSENT, pipeline.settings.landing_consent / "consent.csv")
        request_erasure(pipeline, "erasure.csv", [(X, "2026-10-20T00:00:00Z", "x-1")])
        for day in DAYS:
            assert pipeline.run(day).success
        # Day three's restricted rows are gone (as retention would do): it cannot be rotated.
        with duckdb.connect(str(pipeline.settings.restricted_db)) as con:
            con.execute("DELETE FROM consented_calls WHERE call_date = ?", [DAYS[2]])
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PHONE_PIPELINE_PSEUDONYM_KEYS", f"1:{TEST_KEY},2:{NEW_KEY}")
            patch.delenv("PHONE_PIPELINE_PSEUDONYM_KEY")
            resources = build_resources(pipeline.settings)
            plan, failed = rotate_keys(pipeline.settings, pipeline.instance, resources=resources)
            # A later full run (any partition) adds register entries under the new version.
            result = pipeline.run(DAYS[0])
        yield pipeline, plan, failed, result


def test_every_partition_with_restricted_rows_moves_to_the_new_key(rotated) -> None:
    pipeline, plan, failed, result = rotated
    checks = check_results(result)
    # Day three kept v1: the cross-partition warning says so, every gate passed.
    assert checks.pop("analytics_single_key_version") is False
    assert failed == [] and result.success and all(checks.values())
    assert (plan.primary_version, plan.rerun, plan.stale, plan.current) == (
        2,
        DAYS[:2],
        [DAYS[2]],
        [],
    )
    assert versions(pipeline, DAYS[0]) == [2] and versions(pipeline, DAYS[1]) == [2]
    assert versions(pipeline, DAYS[2]) == [1]


def test_joins_across_rotated_partitions_are_consistent(rotated) -> None:
    pipeline = rotated[0]
    new = pseudonymizer(NEW_KEY, 2).pseudonym(A)
    with pipeline.analytics() as con:
        days_of_a = con.execute(
            "SELECT DISTINCT call_date FROM calls_pseudonymized "
            "WHERE caller_pseudonym = ? OR callee_pseudonym = ? ORDER BY 1",
            [new, new],
        ).fetchall()
        all_versions = [
            row[0]
            for row in con.execute(
                key_versions_sql("calls_pseudonymized", ["caller_pseudonym", "callee_pseudonym"])
            ).fetchall()
        ]
    assert [row[0] for row in days_of_a] == DAYS[:2]
    # Over all partitions the versions are mixed (day three kept v1): a consumer refuses.
    with pytest.raises(ValueError, match="rotate-keys"):
        require_one_key_version(all_versions, "calls_pseudonymized")


def test_unrotatable_period_is_marked(rotated) -> None:
    pipeline = rotated[0]
    with pipeline.analytics() as con:
        periods = con.execute(
            "SELECT call_date, key_version, rows, note IS NOT NULL FROM pseudonym_key_periods "
            "ORDER BY 1"
        ).fetchall()
    assert periods == [(DAYS[0], 2, 2, False), (DAYS[1], 2, 2, False), (DAYS[2], 1, 2, True)]


def test_erasure_register_under_both_versions(rotated) -> None:
    pipeline = rotated[0]
    with pipeline.restricted() as con:
        register = con.execute(
            "SELECT request_id, key_version, pseudonym FROM erasure_register ORDER BY 2"
        ).fetchall()
    assert register == [
        ("x-1", 1, pseudonymizer(TEST_KEY, 1).pseudonym(X)),
        ("x-1", 2, pseudonymizer(NEW_KEY, 2).pseudonym(X)),
    ]
    with pipeline.analytics() as con:
        rows = con.execute(
            "SELECT count(*) FROM calls_pseudonymized WHERE call_date = ?", [DAYS[0]]
        )
        assert rows.fetchone()[0] == 2  # the erased caller's call never came back


def test_keys_never_in_the_event_log(rotated) -> None:
    texts = "\n".join(event_log_texts(rotated[0].instance))
    assert TEST_KEY not in texts and NEW_KEY not in texts


def test_cli_refuses_a_key_file_inside_the_data_home(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "data"
    home.mkdir()
    key_file = home / "keys.txt"
    key_file.write_text(f"1:{NEW_KEY}\n")
    monkeypatch.setenv("PHONE_PIPELINE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("PHONE_PIPELINE_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("PHONE_PIPELINE_PSEUDONYM_KEY_FILE", str(key_file))
    assert main(["rotate-keys"]) == 2
    error = capsys.readouterr().err
    assert "outside" in error and NEW_KEY not in error


def test_cli_rotates_a_partition_and_prints_no_key(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented command end to end, in this process: one partition under v1, v2 added."""
    with module_pipeline(tmp_path) as pipeline:
        write(CALLS.iloc[:2], pipeline.settings.landing_calls / "calls.csv")
        write(CONSENT, pipeline.settings.landing_consent / "consent.csv")
        assert pipeline.run(DAYS[0]).success
        monkeypatch.setenv("PHONE_PIPELINE_HOME", str(pipeline.settings.home))
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "cli_dagster_home"))
        monkeypatch.setenv("PHONE_PIPELINE_PSEUDONYM_KEYS", f"1:{TEST_KEY},2:{NEW_KEY}")
        assert main(["rotate-keys"]) == 0
        output = capsys.readouterr()
        assert "Re-pseudonymised 1 partition(s)" in output.out, output
        assert f"{DAYS[0]}: rotated" in output.out
        assert TEST_KEY not in output.out + output.err and NEW_KEY not in output.out + output.err
        assert versions(pipeline, DAYS[0]) == [2]
        # Nothing left to do the second time.
        assert main(["rotate-keys"]) == 0
        assert "Re-pseudonymised 0 partition(s), 1 already current" in capsys.readouterr().out


# --- what a rotation re-runs comes from the asset graph, and leaves nothing on the old key -------


def test_rotation_reruns_everything_downstream_of_the_pseudonyms() -> None:
    selected = {
        key.to_user_string() for key in rotation_selection().resolve(defs.resolve_asset_graph())
    }
    assert {
        "analytics/calls_pseudonymized",
        "analytics/reidentification_risk",  # the risk measure
        "shareable/calls_pseudonymized",  # the shareable copies
        "shareable/call_volume_hourly",
        "compliance/contact_pressure",  # the compliance tables make pseudonyms of their own
        "compliance/quiet_hours",
        "compliance/dnc_call_findings",
    } <= selected
    # Every asset downstream of one it re-runs is re-run too.
    graph = defs.resolve_asset_graph()
    for key in rotation_selection().resolve(graph):
        assert {child.to_user_string() for child in graph.get(key).child_keys} <= selected
    # The restricted stages hold numbers, not pseudonyms: never re-run by a rotation, except the
    # end-of-run retention step, which only deletes what a rotated day is past retention for.
    assert {name for name in selected if name.startswith("restricted/")} == {
        "restricted/partition_retention"
    }


def pseudonym_versions_by_table(pipeline: Pipeline, days: list[dt.date]) -> dict[str, set[int]]:
    """zone.table -> the key versions of its pseudonyms on `days`, for every table of the
    analytics, compliance and shareable zones with a `*_pseudonym` column."""
    found: dict[str, set[int]] = {}
    for zone in ("analytics", "compliance", "shareable"):
        path = pipeline.settings.home / "warehouse" / f"{zone}.duckdb"
        with duckdb.connect(str(path), read_only=True) as con:
            columns = con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'main' AND column_name LIKE '%pseudonym'"
            ).fetchall()
            for table, column in columns:
                versions = {
                    row[0]
                    for row in con.execute(
                        f"SELECT DISTINCT CAST(regexp_extract({column}, '^v([0-9]+):', 1) AS INT) "
                        f"FROM {table} WHERE {column} IS NOT NULL AND call_date IN "
                        f"(SELECT unnest(CAST(? AS DATE[])))",
                        [days],
                    ).fetchall()
                }
                found.setdefault(f"{zone}.{table}", set()).update(versions)
    return found


def test_no_table_is_left_on_the_old_key_version(rotated) -> None:
    pipeline = rotated[0]
    found = pseudonym_versions_by_table(pipeline, DAYS[:2])
    for table in (
        "analytics.calls_pseudonymized",
        "shareable.calls_pseudonymized",
        "compliance.contact_pressure",
        "compliance.quiet_hours",
    ):
        assert found.get(table) == {2}, (table, found)
    assert all(versions <= {2} for versions in found.values()), found


def test_the_plan_reads_zone_files_under_a_home_with_a_quote_in_its_path(tmp_path: Path) -> None:
    """The zone files are attached by a bound path: an apostrophe in the data home is a path,
    not SQL. Only the compliance file holds the old version here, so it must have been read."""
    settings = load_settings({"PHONE_PIPELINE_HOME": str(tmp_path / "o'brien's home")})
    settings.analytics_db.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.analytics_db)) as analytics:
        ensure_tables(analytics, None, ANALYTICS_TABLES)
    with duckdb.connect(str(settings.compliance_db)) as compliance:
        ensure_tables(compliance, None, COMPLIANCE_TABLES)
        compliance.execute(
            "INSERT INTO contact_pressure VALUES (?, 'v1:0123abcd', 'all', NULL, 1, 1, 1, "
            "false, false)",
            [DAYS[0]],
        )
    plan = plan_for(settings, primary_version=2)
    assert plan.stale == [DAYS[0]]  # no restricted rows left to re-run it from
