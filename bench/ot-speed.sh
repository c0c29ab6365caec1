#!/usr/bin/env bash
# OT coupling against independent coupling: training steps per second of `flowmatch train`
# (defaults: width 64, depth 3, batch 256, the bench's S shape) with each coupling, for one or
# more flowmatch binaries (e.g. a build of main and one of a branch), interleaved so that a noisy
# machine weighs on every series alike. One JSON line per run on stdout, then a summary per
# binary: median steps/s of each coupling and the ratio of step times OT / independent.
#
#   bench/ot-speed.sh [--steps N] [--rounds R] [--batch B] BINARY [BINARY...]
#
# Native only (the default wgpu adapter: lavapipe on the CI box). Records `uptime` before and after.
set -euo pipefail
steps=200
rounds=3
batch=256
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --steps) steps=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
[[ $# -ge 1 ]] || { echo "usage: $0 [--steps N] [--rounds R] [--batch B] BINARY [BINARY...]" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "# before: $(uptime)" >&2
for ((r = 0; r < rounds; r++)); do
    for bin in "$@"; do
        for coupling in independent ot; do
            line=$("$bin" train --coupling "$coupling" --batch "$batch" --steps "$steps" | head -n 1)
            sps=$(sed -n 's/.*"steps_per_s":\([0-9.e+-]*\).*/\1/p' <<<"$line")
            printf '{"binary":"%s","coupling":"%s","batch":%s,"steps":%s,"round":%s,"steps_per_s":%s}\n' \
                "$bin" "$coupling" "$batch" "$steps" "$r" "$sps" | tee -a "$out"
        done
    done
done
echo "# after: $(uptime)" >&2
python3 - "$out" "$@" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for b in sys.argv[2:]:
    med = {c: statistics.median(r["steps_per_s"] for r in rows if r["binary"] == b and r["coupling"] == c)
           for c in ("independent", "ot")}
    print(f"# {b}: independent {med['independent']:.2f} steps/s, ot {med['ot']:.2f} steps/s, "
          f"OT step / independent step = {med['independent'] / med['ot']:.2f}")
EOF
