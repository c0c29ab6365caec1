#!/usr/bin/env bash
# The demo page's training rate for the S model (64×3, batch 256) while it draws, against the
# bench page's rate for S, in one headless Chromium on one adapter, and the page's input latency
# meanwhile (bench/drive_page.py; one JSON line). Builds the wasm package with the bench feature
# (www/bench.html needs runBench) unless SKIP_WASM_BUILD=1, serves the repository on 127.0.0.1
# and drives Chromium through /usr/bin/chromedriver.
#   bench/run-page.sh [BENCH_STEPS] [WINDOW_S]        defaults: 200 steps, 30 s
# EXTRA_HASHES="width=16&depth=2&batch=64&particles=800&nfe=16" also times the page on those
# models (';'-separated; e.g. the reliability soak's), after the S pair. AUTO=0 skips the
# backend-auto run, READINGS=0 adds the S page with the cards' periodic readings off, CPU=0 the CPU pair (the bench page's CPU side against the page with
# ?backend=cpu). Each page run also reports the cores used per kind of Chromium process and the
# renderer's main-thread seconds per second. OUT=file.jsonl also appends the line.
# Not part of scripts/test.sh (speed is measured, not asserted): see docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
WASM_BUILD_ARGS="--release --features bench"
. bench/serve.sh
python3 bench/drive_page.py --base "http://127.0.0.1:$port" --steps "${1:-200}" --window "${2:-30}" \
  --extra "${EXTRA_HASHES:-}" --auto "${AUTO:-1}" --readings "${READINGS:-1}" --cpu "${CPU:-1}" | if [ -n "${OUT:-}" ]; then tee -a "$OUT"; else cat; fi
