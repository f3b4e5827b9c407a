#!/usr/bin/env bash
# Builds the site, adds the tiny test model and a corrupt one to dist/models/, serves dist/ on a free
# 127.0.0.1 port, and runs page.test.mjs and playground.test.mjs in Debian's headless Chromium (SwiftShader WebGPU).
# SKIP_BUILD=1 reuses an existing dist/.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${SKIP_BUILD:-}" ] && [ -f dist/index.html ] || trunk build --release
rm -rf dist/models/tiny dist/models/corrupt
cp -r tests/models/tiny dist/models/tiny
mkdir -p dist/models/corrupt
cp tests/models/tiny/config.json tests/models/tiny/scheduler_config.json dist/models/corrupt/
printf 'this is not a safetensors file' > dist/models/corrupt/diffusion_pytorch_model.safetensors
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist > /tmp/ddpm-browser-http.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2>/dev/null && break; sleep 0.1; done
mkdir -p tests/out
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/page.test.mjs
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/forward.test.mjs
BASE_URL="http://127.0.0.1:$PORT" node tests/browser/playground.test.mjs
