#!/usr/bin/env bash
# End-to-end tests of the demo page in headless Chromium (see tests/e2e/test_page.py).
# Builds the wasm package when pkg/ is missing or older than the sources, serves the site with
# scripts/serve.py (what scripts/demo.sh runs: the site's files only, 127.0.0.1 Host headers only)
# on a free 127.0.0.1 port for the duration of the run, and stops the server on exit.
#   tests/e2e/run.sh                      every tests/e2e/test_*.py file, each with all its tests (run_all.py)
#   tests/e2e/run.sh webgpu hash          some tests of test_page.py (webgpu | cpu | hash)
#   tests/e2e/run.sh test_other.py a b    one file, optionally some of its tests
# Screenshots go to artifacts/. Needs python3, /usr/bin/chromium, /usr/bin/chromedriver
# (scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"

wasm=pkg/flowmatch_bg.wasm
# (A pkg/ built with the benchmark's entry point, by bench/run-browser.sh, is not the published
# package the tests check: rebuilt too.)
if [ ! -f "$wasm" ] || [ ! -f pkg/flowmatch.js ] || grep -q runBench pkg/flowmatch.js || [ -n "$(find src shaders Cargo.toml Cargo.lock .cargo LICENSE www/widget.js www/widget.d.ts www/widget.css www/chart.js www/download.js www/format.js www/pace.js www/embed.js www/embed.css embed.html scripts/build-wasm.sh -newer "$wasm" -print -quit 2>/dev/null)" ]; then
  echo "[e2e] building the wasm package (scripts/build-wasm.sh)" >&2
  scripts/build-wasm.sh
fi
for bin in /usr/bin/chromium /usr/bin/chromedriver; do
  [ -x "${CHROMIUM:-}" ] || [ -x "$bin" ] || { echo "[e2e] missing $bin: run scripts/setup.sh" >&2; exit 1; }
done

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/serve.py "$port" --quiet >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.html', timeout=1)" 2>/dev/null && break
  sleep 0.1
done

mkdir -p artifacts
export FLOWMATCH_E2E_URL="http://127.0.0.1:$port/"
if [ $# -gt 0 ] && [[ "$1" == *.py ]]; then
  file="tests/e2e/$(basename "$1")"
  shift
  python3 "$file" "$@"
elif [ $# -gt 0 ]; then
  python3 tests/e2e/test_page.py "$@"
else
  # Every file, two at a time (FLOWMATCH_E2E_JOBS), each in its own process where tests with the
  # same browser flags share one Chromium.
  python3 tests/e2e/run_all.py
fi
