#!/usr/bin/env bash
# One prepared run on a machine with a real GPU (issue 16's quality table, issue 17 item 5):
#   1. flowmatch bench S, M, L (the adapter's default kernels) and --profile on each (matmul GFLOP/s);
#   2. PyTorch on the same GPU, eager and CUDA graphs (bench/torch_cfm.py);
#   3. `flowmatch train` at the CLI's defaults on the 8 standard datasets (seeds $CLI_SEEDS, default
#      0-9), and at the page's real-GPU default (the CLI's, with the page's 2^15-point target pool;
#      seeds $PAGE_SEEDS, default 0-2), each scored by bench/quality/score.py against 20,000 fresh
#      target samples;
#   sweep: the tiled kernels' dW batch splits and forward rows per tile on S, M, L (--profile);
#   splits: the dW batch splits around the defaults on S, M, L (--profile);
#   graph: PyTorch with CUDA graphs only;
#   tests: the kernel and profile test binaries built here (.dev/kernels, .dev/profile), CI=true,
#     one test at a time with a $TEST_LIMIT s limit each (default 60).
# Preparing the carried files here: `cargo build --release; cp target/release/flowmatch .dev/`;
# `cargo test --release --no-run --test kernels --test profile` and copy the two executables it
# names to .dev/kernels and .dev/profile; Debian's libvulkan1 etc. in .gl/ (device README); carry
# [".gl", ".dev"] (both in .git/info/exclude).
# Everything lands in $OUT (JSON lines) as it is measured, so a run stopped at its limit keeps what
# it had. Usage there: FLOWMATCH_BIN=.dev/flowmatch bash bench/gpu-session.sh [PHASES]
# (PHASES: any of bench,torch,quality,sweep,splits,graph,tests; default bench,torch,quality). Vulkan: with
# Debian's libvulkan1 unpacked from .gl/ (see /work/.library/device/README.md) and the NVIDIA ICD.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
PHASES=${1:-bench,torch,quality}
CLI_SEEDS=${CLI_SEEDS-0 1 2 3 4 5 6 7 8 9}
PAGE_SEEDS=${PAGE_SEEDS-0 1 2}
B=${FLOWMATCH_BIN:-target/release/flowmatch}
if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log.txt"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.sm,temperature.gpu --format=csv >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
has() { case ",$PHASES," in *",$1,"*) return 0 ;; esac; return 1; }

# One tiled-kernel bench line with its knobs set (small sampling measurement: this is about
# training), appended to sweep.jsonl with the shader checks it ran under.
sweep() { # config steps splits forward_rows backward_rows [checks]
  log "sweep $*"
  FLOWMATCH_SHADER_CHECKS=${6:-default} "$B" bench --config "$1" --kernels tiled --steps "$2" --splits "$3" --forward-rows "$4" \
    --backward-rows "$5" --particles 4096 --ode-steps 4 --profile 300 |
    sed "s/}\$/,\"shader_checks\":\"${6:-default}\"}/" | tee -a "$OUT/sweep.jsonl"
}

if has bench; then
  log "bench S,M,L"
  "$B" bench --config S,M,L | tee -a "$OUT/bench.jsonl"
  for c in L M S; do
    log "bench $c --profile"
    "$B" bench --config "$c" --profile 300 | tee -a "$OUT/bench.jsonl"
  done
fi

if has torch; then
  log "torch eager"
  python3 bench/torch_cfm.py | tee -a "$OUT/torch.jsonl"
  log "torch graph"
  python3 bench/torch_cfm.py --graph | tee -a "$OUT/torch.jsonl"
  log "bench S,M,L again (same session as torch)"
  "$B" bench --config S,M,L | tee -a "$OUT/bench.jsonl"
fi

if has sweep; then
  # The tiled kernels' knobs, one bench line each (small sampling measurement: this is about
  # training): dW batch splits x forward/backward rows per tile (32/64: 4x4 blocks per
  # invocation, 128: 8x4 blocks) with the default shader checks (no loop counters in the
  # training kernels; 2026-12-04's sweep ran with FLOWMATCH_SHADER_CHECKS=checked), then wgpu's
  # full checks and no checks on one setting per config.
  for sp in 1 2 4 8; do for fr in 32 64; do sweep S 6000 $sp $fr 64; done; done
  for sp in 2 4 8 16; do for rows in "32 64" "64 64" "128 128"; do sweep M 3000 $sp $rows; done; done
  for sp in 4 8 16; do for rows in "64 64" "128 64" "64 128" "128 128"; do sweep L 1000 $sp $rows; done; done
  for ch in checked unchecked; do
    sweep S 6000 4 32 64 $ch; sweep M 3000 8 32 64 $ch; sweep L 1000 8 128 128 $ch
  done
fi

if has splits; then
  # dW batch splits around the defaults (default_splits: S 8, M 8, L 16), default kernels; the
  # 8x8-block kernels measured on 2026-12-04 are in commit b0a3204 (`tiles` phase there).
  for sp in 8 12 16 24 32 48; do sweep L 1000 $sp 128 128; done
  for sp in 4 8 16; do sweep M 3000 $sp 32 64; done
  for sp in 2 4 8; do sweep S 6000 $sp 32 64; done
fi

if has graph; then
  log "torch graph"
  python3 bench/torch_cfm.py --graph | tee -a "$OUT/torch.jsonl"
fi

if has tests; then
  # One test at a time, each with its own time limit, its result written as it ends: on the H200
  # (2026-12-04) the kernel binary run whole with 16 threads did not finish within five minutes,
  # and a pipe to `tail` kept even its partial output back.
  for t in .dev/kernels .dev/profile; do
    for name in $("$t" --list 2>/dev/null | sed -n 's/: test$//p'); do
      start=$(date +%s%N)
      if CI=true timeout ${TEST_LIMIT:-60} "$t" --exact "$name" --test-threads=1 >"$OUT/test-out.txt" 2>&1; then r=ok
      else r="FAILED (exit $?)"; tail -20 "$OUT/test-out.txt" >>"$OUT/tests.txt"; fi
      echo "$(basename "$t") $name: $r in $(( ($(date +%s%N) - start) / 1000000 )) ms" | tee -a "$OUT/tests.txt"
    done
  done
  rm -f "$OUT/test-out.txt"
fi

if has quality; then
  q=/tmp/quality; mkdir -p $q
  for d in ${DATASETS:-moons circles 8gaussians checkerboard 25gaussians spirals swissroll pinwheel}; do
    log "quality $d"
    for s in $CLI_SEEDS; do
      "$B" train --dataset "$d" --seed "$s" --samples 20000 --out "$q/cli-$d-$s.csv" >"$q/cli-$d-$s.json" || log "train $d $s failed"
    done
    for s in $PAGE_SEEDS; do
      "$B" train --dataset "$d" --seed "$s" --samples 20000 --points 32768 --out "$q/page-$d-$s.csv" >"$q/page-$d-$s.json" || log "train page $d $s failed"
    done
    (cd bench/quality && python3 score.py $(ls $q/cli-$d-*.csv $q/page-$d-*.csv 2>/dev/null) --dataset "$d") >"$q/score-$d.jsonl"
    python3 - "$q" "$d" <<'EOF' | tee -a "$OUT/quality.jsonl"
import json, sys, os
q, d = sys.argv[1], sys.argv[2]
for line in open(f"{q}/score-{d}.jsonl"):
    s = json.loads(line)
    base = os.path.basename(s["file"])[:-4]
    kind, seed = base.split("-")[0], int(base.split("-")[-1])
    run = next(json.loads(l) for l in open(f"{q}/{base}.json") if l.startswith("{"))
    print(json.dumps({"setup": kind, "dataset": d, "seed": seed, "sw2": s["sw2"],
                      "points": run["points"], "schedule": run["schedule"], "lr": run["lr"],
                      "steps": run["steps"], "final_loss": run["final_loss"],
                      "train_seconds": run["train_seconds"], "steps_per_s": run["steps_per_s"],
                      "sample_seconds": run["sample_seconds"], "sw2_internal": run["sw2"],
                      "adapter": run["adapter"]}))
EOF
  done
  tar -C $q -czf "$OUT/moons-csv.tgz" cli-moons-0.csv cli-moons-1.csv cli-moons-2.csv 2>/dev/null
fi
log done
