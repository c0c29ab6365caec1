#!/usr/bin/env bash
# Page weight and start-up of the demo page (bench/startup.py): serves the repository on
# 127.0.0.1 and loads index.html cold REPEATS times per backend (webgpu, cpu).
#   bench/run-startup.sh [BACKENDS] [REPEATS]     e.g. bench/run-startup.sh webgpu,cpu 3
# Builds the wasm package first unless SKIP_WASM_BUILD=1; OUT=file.jsonl also appends the lines.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/serve.sh
python3 bench/startup.py --base "http://127.0.0.1:$port" --backends "${1:-webgpu,cpu}" --repeats "${2:-3}" \
  | if [ -n "${OUT:-}" ]; then tee -a "$OUT"; else cat; fi
