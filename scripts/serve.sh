#!/usr/bin/env bash
# Builds the page with the bundled model (www/models/) and serves it on http://127.0.0.1:8080.
# Installs what is missing first (scripts/setup.sh): pinned trunk and wasm-bindgen-cli, the wasm32 target.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
trunk build --release
PORT="${PORT:-8080}"
echo "serving dist/ on http://127.0.0.1:$PORT (Ctrl-C stops)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory dist
