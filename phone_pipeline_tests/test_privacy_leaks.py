"""No phone number of the input leaves the restricted zone: not in any value of the analytics file,
not in Dagster's event log (messages, metadata, check results), not in file names; and the
pseudonym key is never logged."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from phone_pipeline import catalog
from phone_pipeline.domain.privacy_report import tables_read
from phone_pipeline.domain.redaction import contains_phone_number
from phone_pipeline.stages.report.assets import LATEST_DAY, REPORT_FILE, STATEMENTS
from phone_pipeline_tests.conftest import TEST_KEY, Pipeline, check_results
from phone_pipeline_tests.pipeline_support import (
    count,
    input_phone_numbers,
    module_pipeline,
    numbers_found,
    read_text_csv,
    write_csv_atomically,
)

PSEUDONYM = re.compile(r"v[0-9]+:[0-9a-f]{32}")


def analytics_texts(pipeline: Pipeline, database: Path | None = None) -> list[str]:
    """Every VARCHAR value of every table of analytics.duckdb (or of `database`, another zone
    file), plus table and column names. The tables are the catalog's for that zone, so that a
    table added to the catalog is scanned; the file must hold no other table."""
    settings = pipeline.settings
    files = {settings.analytics_db: catalog.ANALYTICS, settings.compliance_db: catalog.COMPLIANCE,
             settings.shareable_db: catalog.SHAREABLE}  # fmt: skip
    zone = files[database or settings.analytics_db]
    texts: list[str] = []
    connection = duckdb.connect(str(database), read_only=True) if database else pipeline.analytics()
    with connection as con:
        present = {
            row[0]
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database()"
            ).fetchall()
        }
        tables = catalog.zone_tables(zone)
        assert present == {table.name for table in tables}, zone
        for table in tables:
            texts.append(table.name)
            for column in table.columns:
                texts.append(column.name)
                if column.type == "VARCHAR":
                    texts += [
                        row[0]
                        for row in con.execute(
                            f'SELECT DISTINCT "{column.name}" FROM "{table.name}" '
                            f'WHERE "{column.name}" IS NOT NULL'
                        ).fetchall()
                    ]
    return texts


def event_log_texts(instance: dg.DagsterInstance) -> list[str]:
    """Every event of every run, serialised whole (messages, metadata, check results, errors)."""
    texts: list[str] = []
    runs = instance.get_runs()
    assert runs
    for run in runs:
        texts.append(dg.serialize_value(run))
        for entry in instance.all_logs(run.run_id):
            texts.append(dg.serialize_value(entry))
            texts.append(str(entry))
            if entry.dagster_event is not None:
                texts.append(str(entry.dagster_event.event_specific_data))
    return texts


@dataclass
class LeakScene:
    pipeline: Pipeline
    numbers: set[str]
    results: list[dg.ExecuteInProcessResult]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory):
    """A full run with junk numbers and bad consent rows, then a run whose cell reference puts a
    caller's number into the rows to publish (the gate must stop it)."""
    with module_pipeline(tmp_path_factory.mktemp("privacy")) as pipeline:
        summary = pipeline.generate()
        calls = read_text_csv(summary.call_files[0])
        bad_consent = pd.DataFrame(
            {
                "phone_number": ["+44 7700 900123", calls["caller_number"].iloc[3], "01632 960123"],
                "purpose": ["analytics", "newsletter", "analytics"],
                "status": ["granted", "granted", "maybe"],
                "recorded_at": ["2026-10-01T00:00:00Z"] * 3,
                "source": ["web-form"] * 3,
            }
        )
        write_csv_atomically(bad_consent, pipeline.settings.landing_consent / "bad_rows.csv")
        results = [pipeline.run()]

        cells = read_text_csv(pipeline.settings.cells_file)
        cells.loc[cells["cell_id"] == "NYC-01", "region"] = calls["caller_number"].iloc[0]
        write_csv_atomically(cells, pipeline.settings.cells_file)
        results.append(pipeline.run())

        with pipeline.restricted() as con:
            numbers = input_phone_numbers(pipeline.settings.home, con)
        yield LeakScene(pipeline, numbers, results)


def test_scene_exercised_quarantine_and_the_gate(scene: LeakScene) -> None:
    first, second = scene.results
    assert first.success and all(check_results(first).values())
    assert not second.success
    assert check_results(second)["no_phone_numbers_in_analytics"] is False
    with scene.pipeline.restricted() as con:
        assert count(con, "SELECT count(*) FROM calls_quarantine") > 0
        assert count(con, "SELECT count(*) FROM consent_quarantine") == 3
    # Raw spellings and E.164 forms, junk-but-number-like strings included.
    assert len(scene.numbers) > 500
    assert "+44 7700 900123" in scene.numbers
    assert any(number.startswith("+") and " " not in number for number in scene.numbers)


def test_no_input_number_in_any_analytics_value(scene: LeakScene) -> None:
    texts = analytics_texts(scene.pipeline)
    assert len(texts) > 500
    assert numbers_found(scene.numbers, texts) == set()
    # Nothing else that reads as a phone number either (pseudonyms are hex: digit runs in them
    # are chance, not numbers).
    others = [text for text in texts if not PSEUDONYM.fullmatch(text)]
    assert len(others) < len(texts)
    assert [text for text in others if contains_phone_number(text)] == []


def test_no_input_number_in_any_shareable_value(scene: LeakScene) -> None:
    """The shareable zone (every dataset published: the tests' risk limits are lenient)."""
    texts = analytics_texts(scene.pipeline, scene.pipeline.settings.shareable_db)
    assert any(PSEUDONYM.fullmatch(text) for text in texts), "row-level calls were published"
    assert numbers_found(scene.numbers, texts) == set()
    others = [text for text in texts if not PSEUDONYM.fullmatch(text)]
    assert [text for text in others if contains_phone_number(text)] == []


def test_no_input_number_in_any_compliance_value(scene: LeakScene) -> None:
    """The compliance zone names callees by pseudonym only."""
    texts = analytics_texts(scene.pipeline, scene.pipeline.settings.compliance_db)
    assert any(PSEUDONYM.fullmatch(text) for text in texts), "no compliance row was written"
    assert numbers_found(scene.numbers, texts) == set()


def test_no_input_number_in_the_analytics_file_bytes(scene: LeakScene) -> None:
    """Belt and braces: not even deleted or uncompressed leftovers in the file itself."""
    warehouse = scene.pipeline.settings.analytics_db.parent
    blobs = [
        path.read_bytes()
        for path in warehouse.iterdir()
        if path.is_file() and path.name.startswith(("analytics", "shareable"))
    ]
    assert len(blobs) >= 2
    found = {number for number in scene.numbers for blob in blobs if number.encode() in blob}
    assert found == set()
    assert not any(TEST_KEY.encode() in blob for blob in blobs)


def test_no_input_number_in_the_event_log(scene: LeakScene) -> None:
    texts = event_log_texts(scene.pipeline.instance)
    assert any("ASSET_CHECK_EVALUATION" in text for text in texts)
    assert any("dagster/column_schema" in text for text in texts)
    assert numbers_found(scene.numbers, texts) == set()


def test_pseudonym_key_never_logged(scene: LeakScene) -> None:
    texts = event_log_texts(scene.pipeline.instance)
    assert numbers_found({TEST_KEY, TEST_KEY[:16]}, texts) == set()
    assert numbers_found({TEST_KEY}, analytics_texts(scene.pipeline)) == set()


def test_no_phone_like_file_names_in_the_warehouse(scene: LeakScene) -> None:
    warehouse = scene.pipeline.settings.home / "warehouse"
    names = [path.name for path in warehouse.rglob("*")]
    assert "analytics.duckdb" in names and "restricted.duckdb" in names
    assert [name for name in names if contains_phone_number(name)] == []
    assert numbers_found(scene.numbers, names) == set()


# --- the privacy report -----------------------------------------------------------------------------


class _TextNodes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())


# Run at the page's load event (every image loaded or failed): per image, its size, whether it
# loaded, and whether its bottom row is opaque once drawn (a figure is drawn on white: a truncated
# PNG keeps its header's size but leaves the rows it lacks transparent). No timer: Chromium's
# virtual time runs timers ahead of real decoding. Written into the DOM for --dump-dom.
_IMAGE_PROBE = """<script>
window.addEventListener('load', () => {
  const results = [];
  for (const image of document.images) {
    const loaded = image.complete && image.naturalWidth > 0;
    let opaque = false;
    if (loaded) {
      const canvas = document.createElement('canvas');
      canvas.width = image.naturalWidth;
      canvas.height = image.naturalHeight;
      const context = canvas.getContext('2d');
      context.drawImage(image, 0, 0);
      const row = context.getImageData(0, image.naturalHeight - 1, image.naturalWidth, 1).data;
      opaque = row.every((value, index) => index % 4 !== 3 || value === 255);
    }
    results.push([image.alt, image.naturalWidth, image.naturalHeight, loaded, opaque]);
  }
  const out = document.createElement('pre');
  out.id = 'image-probe';
  out.textContent = JSON.stringify(results);
  document.body.appendChild(out);
});
</script>"""


def rendered_images(page: Path, tmp_path: Path) -> list[list]:
    """[alt, naturalWidth, naturalHeight, loaded, opaque] of every image of `page` as headless
    Chromium decodes it. The page forbids scripts (its CSP): a copy allows the one inline probe and nothing
    else, so an image from anywhere but the page itself still fails to load."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the report test (scripts/test.sh installs it)"
    text = page.read_text(encoding="utf-8")
    assert "default-src 'none';" in text
    probe = tmp_path / "probe.html"
    probe.write_text(
        text.replace(
            "default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';"
        ).replace("</body>", _IMAGE_PROBE + "</body>"),
        encoding="utf-8",
    )
    completed = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=5000", "--dump-dom",
         probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    found = re.search(r'<pre id="image-probe">(.*?)</pre>', completed.stdout, re.S)
    assert found, f"the probe did not run: {completed.stdout[-2000:]}"
    return json.loads(html.unescape(found[1]))


def test_the_privacy_report_reads_no_table_holding_numbers() -> None:
    read = {name: tables_read(sql) for name, sql in {**STATEMENTS, "latest": LATEST_DAY}.items()}
    assert read["erasures"] == {"erasure_requests", "erasure_removals"}
    for name, tables in read.items():
        for table in tables:
            assert not catalog.lookup(table).people & catalog.People.NUMBERS, (name, table)
    # Pseudonyms are read only to be counted (contact findings).
    pseudonymous = {
        table for tables in read.values() for table in tables
        if catalog.lookup(table).people & catalog.PSEUDONYMS
    }  # fmt: skip
    assert pseudonymous == {
        "compliance.contact_pressure",
        "compliance.quiet_hours",
        "compliance.dnc_call_findings",
    }


def test_the_privacy_report_shows_no_number_or_pseudonym_and_its_plots_render(
    scene: LeakScene, tmp_path: Path
) -> None:
    first = scene.results[0]
    [materialization] = first.asset_materializations_for_node("governance__privacy_report")
    path = scene.pipeline.settings.home / "records" / REPORT_FILE
    assert materialization.metadata["path"].value == str(path)
    page = path.read_text(encoding="utf-8")
    markdown = materialization.metadata["report"].value
    assert numbers_found(scene.numbers, [page, markdown]) == set()
    assert not PSEUDONYM.search(page) and not PSEUDONYM.search(markdown)
    parser = _TextNodes()
    parser.feed(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page))
    assert "Quarantine" in parser.texts and "Rows from received to published" in parser.texts
    assert [text for text in parser.texts if contains_phone_number(text)] == []
    # The scene's quarantined rows are counted in the report.
    with scene.pipeline.analytics() as con:
        quarantined = count(
            con, "SELECT sum(rows) FROM row_accounting WHERE outcome = 'quarantined'"
        )
    assert quarantined > 0 and f"{quarantined:,} of " in page

    images = rendered_images(path, tmp_path)
    figures = materialization.metadata["figures"].value
    assert figures == 3 and len(images) == figures  # row flow, rows per day, risk
    assert markdown.count("](data:image/png;base64,") == figures
    assert [image for image in images if not (image[1] > 300 and image[2] > 100)] == []
    assert [image for image in images if not (image[3] and image[4])] == []  # loaded, whole


# --- landing files that are unusual, not malicious ------------------------------------------------


def _leaks_after_run(pipeline: Pipeline, numbers: set[str]) -> tuple[dict[str, bool], set[str]]:
    result = pipeline.run()
    return check_results(result), numbers_found(numbers, event_log_texts(pipeline.instance))


def test_headerless_call_file_leaks_no_number_into_the_event_log(pipeline: Pipeline) -> None:
    """A CSV without a header row: DuckDB reads the first data line as column names, and the
    'missing columns' message that names them goes to the event log (redacted)."""
    pipeline.generate()
    rows = [
        ["c-h-1", "+1 212 555 0101", "(212) 555-0102", "2026-11-01T10:00:00Z", "60", "answered", ""],
        ["c-h-2", "+1 212 555 0103", "+1 212 555 0104", "2026-11-01T10:05:00Z", "60", "answered", ""],
    ]  # fmt: skip
    headerless = pipeline.settings.landing_calls / "export_without_header.csv"
    headerless.write_text("\n".join(",".join(row) for row in rows) + "\n")
    numbers = {row[i] for row in rows for i in (1, 2)}
    checks, leaked = _leaks_after_run(pipeline, numbers)
    assert checks["landing_files_readable"] is False, "the file was rejected and reported"
    assert leaked == set()


def test_call_file_named_after_a_line_number_leaks_nothing(pipeline: Pipeline) -> None:
    """Per-line exports are often named after the line's number; ingest metadata lists files."""
    summary = pipeline.generate()
    calls = read_text_csv(summary.call_files[0])
    line_number = next(n for n in calls["caller_number"] if n.startswith("+") and " " not in n)
    original: Path = summary.call_files[0]
    original.rename(original.with_name(f"cdr_line_{line_number}_2026-11-01.csv"))
    checks, leaked = _leaks_after_run(pipeline, {line_number})
    assert all(checks.values())
    assert leaked == set()
