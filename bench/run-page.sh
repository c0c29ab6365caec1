#!/usr/bin/env bash
# The demo page's training rate for the S model (64×3, batch 256) while it draws, against the
# bench page's rate for S, in one headless Chromium on one adapter, and the page's input latency
# meanwhile (bench/drive_page.py; one JSON line). Builds the wasm package unless SKIP_WASM_BUILD=1,
# serves the repository on 127.0.0.1 and drives Chromium through /usr/bin/chromedriver.
#   bench/run-page.sh [BENCH_STEPS] [WINDOW_S]        defaults: 200 steps, 30 s
# Not part of scripts/test.sh (speed is measured, not asserted): see docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if [ "${SKIP_WASM_BUILD:-0}" != 1 ]; then
  scripts/build-wasm.sh
fi
port="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
sleep 1
python3 bench/drive_page.py --base "http://127.0.0.1:$port" --steps "${1:-200}" --window "${2:-30}"
