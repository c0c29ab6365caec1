#!/usr/bin/env bash
# The runs behind docs/QUALITY.md. Usage (from the repository root):
#   bench/quality/run.sh setup                  # venv with CPU PyTorch + flow-matching (PyPI)
#   bench/quality/run.sh pytorch [SEEDS] [ARGS] # the reference, 8 datasets -> stdout (JSON lines)
#   bench/quality/run.sh flowmatch [SEEDS] [ARGS]  # `flowmatch train` (GPU, or lavapipe), scored
#   bench/quality/run.sh cpu [SEEDS] [ARGS]     # the same training on the CPU reference trainer
#                                               # (examples/cpu_quality.rs: no GPU, minutes not hours), scored
#   bench/quality/run.sh floor                  # target vs target at 20,000 points
# SEEDS defaults to 0,1,2; ARGS go to torch_reference.py / `flowmatch train` unchanged; DATASETS="moons circles"
# (space-separated) runs only those.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py="$here/.venv/bin/python"
datasets=${DATASETS:-"moons circles 8gaussians checkerboard 25gaussians spirals swissroll pinwheel"}
cmd=${1:-}
seeds=${2:-0,1,2}
shift $(( $# > 2 ? 2 : $# ))
case "$cmd" in
  setup)
    python3 -m venv "$here/.venv"
    "$py" -m pip install -r "$here/requirements.txt"
    ;;
  pytorch)
    for d in $datasets; do
      (cd "$here" && "$py" torch_reference.py --dataset "$d" --seeds "$seeds" "$@")
    done
    ;;
  flowmatch)
    out=$(mktemp -d)
    (cd "$root" && cargo build --release --quiet)
    for d in $datasets; do
      for s in ${seeds//,/ }; do
        line=$("$root/target/release/flowmatch" train --dataset "$d" --seed "$s" --samples 20000 --out "$out/$d-$s.csv" "$@")
        sw2=$(cd "$here" && "$py" score.py "$out/$d-$s.csv" --dataset "$d" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["sw2"])')
        echo "${line%\}},\"sw2\":$sw2}"
      done
    done
    rm -rf "$out"
    ;;
  cpu)
    out=$(mktemp -d)
    (cd "$root" && cargo build --release --quiet --example cpu_quality)
    for d in $datasets; do
      for s in ${seeds//,/ }; do
        line=$("$root/target/release/examples/cpu_quality" --dataset "$d" --seed "$s" --samples 20000 --out "$out/$d-$s.csv" "$@")
        sw2=$(cd "$here" && "$py" score.py "$out/$d-$s.csv" --dataset "$d" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["sw2"])')
        echo "${line%\}},\"sw2\":$sw2}"
      done
    done
    rm -rf "$out"
    ;;
  floor)
    (cd "$here" && "$py" score.py --floor)
    ;;
  *)
    sed -n 2,7p "$0"; exit 2
    ;;
esac
