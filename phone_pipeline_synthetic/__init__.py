"""Synthetic call records, consent events, cells and do-not-call listings, all with numbers from
ranges reserved for fiction: for the demo, the tests and the benchmark. Kept out of the
`phone_pipeline` package: the pipeline processes data, it never makes any."""

from phone_pipeline_synthetic.generator import (
    JUNK_NUMBERS,
    GenerationSummary,
    atomic_csv,
    fictional_pool,
    generate,
    is_fictional,
)

__all__ = [
    "JUNK_NUMBERS",
    "GenerationSummary",
    "atomic_csv",
    "fictional_pool",
    "generate",
    "is_fictional",
]
