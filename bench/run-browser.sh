#!/usr/bin/env bash
# Browser benchmark: flowmatch (wgpu → WebGPU) vs TensorFlow.js (WebGPU backend) in the same
# headless Chromium on the same adapter, side by side, one JSON line per config with the ratio.
#   bench/run-browser.sh [CONFIGS] [STEPS]      e.g. bench/run-browser.sh S,M 200
# KERNELS=software|tiled forces the wgpu kernel variant. CONFIGS defaults to S,M; STEPS to 0 (sized to about two seconds of wgpu training; tfjs runs the
# same number of steps). Installs the TensorFlow.js packages into bench/node_modules (npm, dev
# only; served locally, no CDN), builds the wasm package, serves the repository on 127.0.0.1 and
# drives www/bench.html through /usr/bin/chromedriver (bench/drive_browser.py). Not part of
# scripts/test.sh: on a software adapter it takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
configs="${1:-S,M}"
steps="${2:-0}"
if [ ! -f bench/node_modules/@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js ]; then
  (cd bench && npm install --no-audit --no-fund)
fi
if [ "${SKIP_WASM_BUILD:-0}" != 1 ]; then
  scripts/build-wasm.sh --release --features bench
fi
port="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
sleep 1
python3 bench/drive_browser.py --base "http://127.0.0.1:$port" --configs "$configs" --steps "$steps" --kernels "${KERNELS:-}"
