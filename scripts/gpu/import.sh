#!/usr/bin/env bash
# Takes what scripts/gpu/run.sh brought back (its --out folder) into the repository: the run folder into
# training/runs/, the figures into BENCHMARKS.md ("On a real GPU"), and the new weights into
# www/models/fashion-mnist/ only when the GPU evaluation confirms they are better (training/gpu_import.py).
#
#     bash scripts/gpu/import.sh DIR [--name NAME] [--no-export]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n '2,6p' "$0"; exit 2; }
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; else source scripts/training-venv.sh; PY=$(training_venv); fi
exec "$PY" training/gpu_import.py "$@"
