"""Gates of the ingest stage (`restricted/raw_calls`)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from phone_pipeline.stages.shared.checks import blocking, warning

RAW_CALLS = dg.AssetKey(["restricted", "raw_calls"])
RAW_CALLS_COLUMNS = [
    "call_date", "content_hash", "source_file", "source_row", "call_id", "caller_number",
    "callee_number", "started_at", "duration_seconds", "disposition", "cell_id",
    "started_at_utc", "timestamp_status", "campaign_id", "callee_erased", "internal_extension",
]  # fmt: skip

RAW_CALLS_CHECKS = [
    blocking(
        RAW_CALLS,
        "raw_calls_suite",
        "Great Expectations: the partition has rows, the contract's columns, and every row is "
        "traceable to its source file and row.",
    ),
    blocking(
        RAW_CALLS,
        "raw_rows_identified_once",
        "Each row of the partition is one input row: its (file content hash, row number) is "
        "unique; every row of every loaded file is a raw row, excluded as an erased subject's, or "
        "deleted by the retention sweep (counted per file in retention_swept_rows).",
    ),
    warning(
        RAW_CALLS,
        "landing_files_readable",
        "Every file in landing/calls could be read; an unreadable file is named with its problem "
        "and retried on the next run once corrected.",
    ),
]


def raw_calls_expectations() -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectTableColumnsToMatchSet(column_set=RAW_CALLS_COLUMNS, exact_match=True),
        *[
            gxe.ExpectColumnValuesToNotBeNull(column=column)
            for column in ("content_hash", "source_file", "source_row", "call_date")
        ],
        gxe.ExpectColumnValuesToBeInSet(
            column="timestamp_status", value_set=["ok", "unreadable", "out_of_range"]
        ),
    ]
