#!/usr/bin/env bash
# The test command: set-up if needed, then lint (ruff), type check (mypy) and the test suite (pytest).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/dyadic_env -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
export DYADIC_CACHE=${DYADIC_CACHE:-$PWD/.cache/dyadic}
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy dyadic_env agents reward_models human_feedback experiments
echo "== pytest"
.venv/bin/python -m pytest "$@"
