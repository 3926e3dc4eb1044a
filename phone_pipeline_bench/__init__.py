"""`phone-pipeline bench`: the benchmark of the pipeline, kept out of the product package (the CLI
imports it only for that command). What it measures and how: benchmarks/README.md."""

from phone_pipeline_bench.bench import (
    TARGETS,
    add_arguments,
    main,
    main_from_args,
    many_region_examples,
    run_benchmark,
)

__all__ = [
    "TARGETS",
    "add_arguments",
    "main",
    "main_from_args",
    "many_region_examples",
    "run_benchmark",
]
