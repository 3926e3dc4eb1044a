"""Reference data: the optional cell table that maps `cell_id` to a named region."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from phone_pipeline.domain.contract import CELL_OPTIONAL_COLUMNS, CELL_REQUIRED_COLUMNS
from phone_pipeline.domain.timestamps import clean_text_sql
from phone_pipeline.landing import LandingFileError, stage_file
from phone_pipeline.resources import PipelineConfig
from phone_pipeline.stages.shared.assets import (
    DUCKDB_POOL,
    restricted_connection,
    table_metadata,
    zone_attributes,
)
from phone_pipeline.warehouse import transaction

CELL_REFERENCE = dg.AssetKey(["restricted", "cell_reference"])


def cell_reference_insert_sql() -> str:
    """Fill cell_reference from the staged cells file: one region per cell, the first row wins
    when a cell is listed twice; ids and regions without surrounding whitespace, empty = none."""
    cell_id, region = clean_text_sql("cell_id"), clean_text_sql("region")
    return f"""
        INSERT INTO cell_reference
        SELECT {cell_id}, arg_min({region}, source_row),
               arg_min(TRY_CAST(latitude AS DOUBLE), source_row),
               arg_min(TRY_CAST(longitude AS DOUBLE), source_row)
        FROM cells_file
        WHERE {cell_id} IS NOT NULL AND {region} IS NOT NULL
        GROUP BY {cell_id}
        """


@dg.asset(
    key=CELL_REFERENCE,
    **zone_attributes("restricted", "reference", kinds=("duckdb", "csv")),
    pool=DUCKDB_POOL,
    description=(
        "Cells from the optional landing/cells.csv (cell_id, region, latitude, longitude). "
        "Without it the table is empty and regions come from the caller's number (phonenumbers' "
        "geocoder) or stay 'unknown'."
    ),
)
def cell_reference(
    context: dg.AssetExecutionContext,
    restricted_warehouse: DuckDBResource,
    pipeline_config: PipelineConfig,
) -> dg.MaterializeResult:
    path = pipeline_config.cells_file
    with restricted_connection(restricted_warehouse) as con:
        with transaction(con):
            con.execute("DELETE FROM cell_reference")
            if path.is_file():
                try:
                    stage_file(
                        con,
                        path,
                        CELL_REQUIRED_COLUMNS,
                        CELL_OPTIONAL_COLUMNS,
                        stage_table="cells_file",
                    )
                except LandingFileError as error:
                    raise dg.Failure(description=str(error)) from None
                con.execute(cell_reference_insert_sql())
            else:
                context.log.info(
                    "No landing/cells.csv: regions will come from the caller's number."
                )
        regions = con.execute("SELECT count(DISTINCT region) FROM cell_reference").fetchone()[0]
        return dg.MaterializeResult(
            metadata={
                **table_metadata(con, "cell_reference", None),
                "regions": regions,
                "source": str(path) if path.is_file() else "none (geocoder fallback)",
            }
        )
