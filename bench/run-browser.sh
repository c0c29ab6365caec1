#!/usr/bin/env bash
# Browser benchmark: flowmatch against jax-js and TensorFlow.js in the same headless Chromium, one
# page load per config: the wgpu trainer vs both libraries' WebGPU backends on the same adapter
# ("gpu" side), and flowmatch's CPU backend (src/cpu/fast/, one thread) vs both libraries' wasm
# backends ("cpu" side). One JSON line per config with every figure, its adapter and the ratios.
#   bench/run-browser.sh [CONFIGS] [STEPS]      e.g. bench/run-browser.sh S,M 200
# CONFIGS defaults to S,M; STEPS (GPU side) to 0: sized to about two seconds of flowmatch, and the
# baselines run the same number. Environment: SIDES=gpu,cpu (default both), BASELINES=tfjs,jax
# (default both), CPU_STEPS=N (default 0: about two seconds), KERNELS=software|tiled (wgpu
# variant), REFERENCE=1 (also the scalar CPU reference), COUPLING=ot (the CPU side's flowmatch
# batches with the OT coupling; the baselines stay independent), PER_SUBMIT=N (GPU side: N training
# steps per queue submit, as the demo page's pacer does; default the trainer's most), OUT=file.jsonl
# (also append the lines).
# Installs the npm packages into bench/node_modules (dev only; served locally, no CDN), builds the
# wasm package (SKIP_WASM_BUILD=1 skips), serves the repository on 127.0.0.1 and drives
# www/bench.html through /usr/bin/chromedriver (bench/drive_browser.py). Not part of
# scripts/test.sh: on a software adapter it takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
configs="${1:-S,M}"
steps="${2:-0}"
for f in @tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js @tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js @jax-js/jax/dist/index.js; do
  if [ ! -f "bench/node_modules/$f" ]; then
    (cd bench && npm install --no-audit --no-fund)
    break
  fi
done
WASM_BUILD_ARGS="--release --features bench"
. bench/serve.sh
extra=()
[ "${REFERENCE:-0}" = 1 ] && extra+=(--reference)
python3 bench/drive_browser.py --base "http://127.0.0.1:$port" --configs "$configs" --steps "$steps" \
  --cpu-steps "${CPU_STEPS:-0}" --sides "${SIDES:-gpu,cpu}" --baselines "${BASELINES:-tfjs,jax}" \
  --kernels "${KERNELS:-}" --coupling "${COUPLING:-independent}" --per-submit "${PER_SUBMIT:-0}" "${extra[@]}" | if [ -n "${OUT:-}" ]; then tee -a "$OUT"; else cat; fi
