"""`python -m phone_pipeline_bench <phase> <spec.json>`: one phase of the benchmark, in the child
process the parent measures (see bench.py)."""

import sys

from phone_pipeline_bench.bench import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
