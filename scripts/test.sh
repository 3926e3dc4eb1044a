#!/usr/bin/env bash
# One command on a fresh machine: set everything up and run the whole test suite (lint included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check phone_pipeline phone_pipeline_tests
exec .venv/bin/pytest "$@"
