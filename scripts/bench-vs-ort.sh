#!/usr/bin/env bash
# ddpm-web against onnxruntime on the same network, side by side in one run (BENCHMARKS.md):
#   1. exports the shipped model folder to ONNX (training/export_onnx.py; reads only the folder);
#   2. natively: `ddpm bench` (lavapipe or whatever Vulkan adapter), onnxruntime's CPU EP and PyTorch eager
#      on the CPU, per pass, at each batch;
#   3. in headless Chromium on SwiftShader WebGPU: the page's ?bench and onnxruntime-web 1.30 (WebGPU EP,
#      NCHW and NHWC, and the wasm EP with one thread) at each batch, printing ours / theirs.
# BATCHES="4 16" STEPS=3 MODEL=www/models/fashion-mnist by default. Prints JSON lines only (and progress on
# stderr). Not part of the test suite: it measures, it does not check.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCHES=${BATCHES:-"4 16"}
STEPS=${STEPS:-3}
MODEL=${MODEL:-www/models/fashion-mnist}
ORT_VERSION=1.23.2   # onnxruntime (Python, CPU EP), pinned
DDPM_SETUP_BROWSER=1 source scripts/setup.sh >&2
source scripts/training-venv.sh
PY=$(training_venv)
ORT_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/ddpm-web/ort-venv-$ORT_VERSION
if [ ! -x "$ORT_VENV/bin/python" ]; then
  echo "bench-vs-ort: creating $ORT_VENV (onnxruntime $ORT_VERSION)" >&2
  python3 -m venv "$ORT_VENV"
  "$ORT_VENV/bin/pip" install -q "onnxruntime==$ORT_VERSION" "numpy<2.5" >&2
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; [ -n "${SERVER:-}" ] && kill $SERVER 2>/dev/null || true' EXIT
"$PY" training/export_onnx.py --model "$MODEL" --out "$WORK/unet.onnx" >&2 2>"$WORK/export.log" || { cat "$WORK/export.log" >&2; exit 1; }

echo "bench-vs-ort: native" >&2
cargo build --release --locked --bin ddpm >&2 2>"$WORK/build.log" || { cat "$WORK/build.log" >&2; exit 1; }
for n in $BATCHES; do
  ./target/release/ddpm bench --model "$MODEL" --batch "$n" --steps "$STEPS"
  "$ORT_VENV/bin/python" benches/ort/native.py --what ort --model "$MODEL" --onnx "$WORK/unet.onnx" --batch "$n" --steps "$STEPS"
  "$PY" benches/ort/native.py --what torch --model "$MODEL" --batch "$n" --steps "$STEPS"
done

echo "bench-vs-ort: browser (SwiftShader WebGPU)" >&2
trunk build --release >&2 2>"$WORK/trunk.log" || { cat "$WORK/trunk.log" >&2; exit 1; }
(cd benches/ort/web && npm ci --no-audit --no-fund --loglevel=error >&2)
rm -rf dist/ort-bench dist/ort
mkdir -p dist/ort-bench
cp benches/ort/web/index.html benches/ort/web/bench.mjs "$WORK/unet.onnx" dist/ort-bench/
cp -r benches/ort/web/node_modules/onnxruntime-web/dist dist/ort
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist > "$WORK/http.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && break; sleep 0.1; done
BASE_URL="http://127.0.0.1:$PORT" BATCHES="$BATCHES" STEPS="$STEPS" node benches/ort/web/run.mjs
rm -rf dist/ort-bench dist/ort
