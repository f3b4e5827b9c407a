#!/usr/bin/env bash
# Builds the site, adds the tiny test model, a corrupt one and the hostile ones to dist/models/, serves dist/ on a
# free 127.0.0.1 port, and runs the page, forward (on WebGPU and on the CPU path), CPU-path, playground,
# hostile and load tests in Debian's headless Chromium (SwiftShader WebGPU, or no adapter).
# SKIP_BUILD=1 reuses an existing dist/.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${SKIP_BUILD:-}" ] && [ -f dist/index.html ] || trunk build --release
rm -rf dist/models/tiny dist/models/tiny-copy dist/models/corrupt
cp -r tests/models/tiny dist/models/tiny
# A second folder with the same model, for load.test.mjs's change of model every cycle.
cp -r tests/models/tiny dist/models/tiny-copy
mkdir -p dist/models/corrupt
cp tests/models/tiny/config.json tests/models/tiny/scheduler_config.json dist/models/corrupt/
printf 'this is not a safetensors file' > dist/models/corrupt/diffusion_pytorch_model.safetensors
# Hostile model folders for hostile.test.mjs: each differs from tiny in one file.
for d in html-weights empty-weights huge bad-scheduler bad-config; do
  rm -rf "dist/models/$d"; cp -r tests/models/tiny "dist/models/$d"
done
printf '<!doctype html><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n' > dist/models/html-weights/diffusion_pytorch_model.safetensors
: > dist/models/empty-weights/diffusion_pytorch_model.safetensors
python3 - <<'PY'
import json
def edit(d, f, **kv):
    p = f"dist/models/{d}/{f}"; j = json.load(open(p)); j.update(kv); json.dump(j, open(p, "w"))
edit("huge", "config.json", sample_size=4096)            # one image's activations alone exceed 1 GiB
edit("bad-scheduler", "scheduler_config.json", beta_end=1.5)
edit("bad-config", "config.json", block_out_channels=[0, 16])
PY
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist > /tmp/ddpm-browser-http.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && break; sleep 0.1; done
mkdir -p tests/out
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/page.test.mjs
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/forward.test.mjs
# The same explorer and applications on the CPU path (Chromium's WebGPU without an adapter).
BASE_URL="http://127.0.0.1:$PORT" NO_WEBGPU=1 node tests/browser/forward.test.mjs
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/cpu.test.mjs
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/playground.test.mjs
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/hostile.test.mjs
# 100 cycles of model change, Generate, scrub and Cancel (about 3 minutes here).
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/load.test.mjs
