#!/usr/bin/env bash
# Set up (or refresh) the project's virtual environment in .venv: exactly the versions of
# requirements.lock (regenerated from pyproject.toml by scripts/lock.sh), plus this project as an
# editable install. Idempotent: a second run changes nothing but the editable install, and a run
# after the lock changed brings .venv to it (packages no longer locked are removed).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON="$candidate"; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "phone_pipeline needs Python 3.11 (python3.11 or python3 on PATH, or set PYTHON)." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi

# uv (from PyPI, at the version the lock pins) installs the lock: about 10x faster than pip.
UV_VERSION="$(sed -n 's/^uv==\([^ ;]*\).*/\1/p' requirements.lock)"
if [ "$(.venv/bin/uv --version 2>/dev/null)" != "uv $UV_VERSION" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
# --exact: what the lock no longer lists goes; --no-deps: the lock is the whole set (no
# resolution, nothing unlocked comes in); `uv pip check` then fails if a requirement is unmet.
.venv/bin/uv pip install --quiet --python .venv/bin/python --exact --no-deps \
  -r requirements.lock -e .
.venv/bin/uv pip check --quiet --python .venv/bin/python
# Bytecode for everything installed and for the project (about 40 s of CPU the first time, 4 s
# when nothing changed): Python caches what it compiles on import only where it may write
# (not under PYTHONDONTWRITEBYTECODE, as on some CI machines), and without the cache every
# process compiles again: importing great_expectations then takes 9.5 s instead of 4.3 s, in
# every `phone-pipeline run`, webserver, daemon and test process.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages \
  phone_pipeline phone_pipeline_synthetic phone_pipeline_bench phone_pipeline_tests >/dev/null
