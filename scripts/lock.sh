#!/usr/bin/env bash
# Regenerate requirements.lock, the exact versions scripts/setup.sh installs, from pyproject.toml
# (dependencies and the dev extra; every platform's markers, Python 3.11). Versions already in the
# lock stay unless pyproject.toml no longer allows them: `bash scripts/lock.sh --upgrade` moves
# everything to the newest allowed, `--upgrade-package NAME` one package. Then run
# `bash scripts/setup.sh` and the tests, and commit requirements.lock with pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=.venv/bin/uv
[ -x "$UV" ] || UV=uv  # before the first set-up: a uv on PATH (`pip install uv`)
exec "$UV" pip compile pyproject.toml --extra dev --universal --python-version 3.11 --quiet \
  --custom-compile-command "bash scripts/lock.sh" --output-file requirements.lock "$@"
