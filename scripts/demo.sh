#!/usr/bin/env bash
# One command on a fresh machine: set everything up, generate a synthetic sample, run the pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/phone-pipeline demo "$@"
