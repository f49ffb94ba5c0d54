#!/usr/bin/env bash
# The main job: set-up if needed, then the quickstart pipeline on the bundled synthetic benchmark.
# Extra arguments go to `dyadic quickstart` (see `dyadic quickstart --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
exec .venv/bin/dyadic quickstart "$@"
