#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs (scripts/setup.sh), then
#   1. cargo test: every WGSL kernel against its Rust reference, config/weights/schedule unit tests, and the
#      golden tests against diffusers' own outputs (tests/golden.rs, tests/cifar_layout.rs), natively
#      through wgpu on lavapipe (Vulkan on the CPU), and the loader fuzzed for FUZZ_SECONDS (default 60);
#   2. the page in headless Chromium on SwiftShader WebGPU (tests/browser/run.sh);
#   3. the training side (training/tests: FD, the likelihood bound's terms, the LR schedule, a resumed
#      Algorithm 1 run and its export) in a virtualenv of training/requirements.txt under
#      ~/.cache/ddpm-web/ (installed on first use), and the GPU kit's dry run (scripts/gpu/run.sh --dry-run)
set -euo pipefail
cd "$(dirname "$0")/.."
DDPM_SETUP_BROWSER=1 source scripts/setup.sh

echo "== native: kernels, units, golden tests (lavapipe)"
log=$(mktemp)
if cargo test --locked -- --nocapture >"$log" 2>&1; then status=0; else status=$?; fi
grep -v "XDG_RUNTIME_DIR" "$log" | grep -E "^(test |test result|running |golden|CIFAR)" || true
if [ "$status" != 0 ]; then
  grep -v "XDG_RUNTIME_DIR" "$log" | tail -n 80
  echo "native tests failed (exit $status)"
  exit 1
fi

echo "== browser: the page in headless Chromium (SwiftShader WebGPU)"
bash tests/browser/run.sh
echo "== training: evaluation maths, LR schedule, train/resume/export (training/tests), GPU kit dry run"
# The training side runs in a cached virtualenv of training/requirements.txt (scripts/training-venv.sh).
source scripts/training-venv.sh
PY=$(training_venv)
training_data
if TQDM_DISABLE=1 "$PY" -m unittest discover -s training/tests -v >"$log" 2>&1; then status=0; else status=$?; fi
grep -E "( \.\.\. |^Ran |^OK|^FAILED)" "$log" || true
if [ "$status" != 0 ]; then
  tail -n 60 "$log"
  echo "training tests failed (exit $status)"
  exit 1
fi
echo "== GPU kit: prepare.sh, run.sh --dry-run (CPU, lavapipe), import.sh into a copy (scripts/gpu/test.sh)"
PYTHON=$PY bash scripts/gpu/test.sh
echo "== all tests passed"
