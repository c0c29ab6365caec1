#!/usr/bin/env bash
# The e2e suite must not depend on the machine being idle: every test waits for a page signal,
# never for time. This proves it: it runs the whole e2e suite (tests/e2e/run.sh, Chromium and
# Firefox) RUNS times in a row (default 2) while a clean `cargo build --release` of a copy of the
# crate keeps every core busy (restarted from an empty target directory whenever it finishes).
#   scripts/e2e-under-load.sh [RUNS]
# Prints each run's result and time and the load average; exits non-zero if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
runs="${1:-2}"
case "$runs" in ''|*[!0-9]*) echo "e2e-under-load: RUNS must be a whole number, got '$runs'" >&2; exit 2 ;; esac

# The page package first, so that the load does not start before the suite can.
scripts/build-wasm.sh --release

copy=$(mktemp -d)
git ls-files -z | xargs -0 cp --parents -t "$copy"
# In its own session, so that the loop and every cargo/rustc under it stop together.
setsid bash -c 'cd "$1"; while true; do rm -rf target; cargo build --release >/dev/null 2>&1 || sleep 1; done' _ "$copy" &
loader=$!
cleanup() { kill -- -"$loader" 2>/dev/null || true; sleep 1; rm -rf "$copy"; }
trap cleanup EXIT
sleep 20 # let the build reach full load

status=0
declare -a results=()
for i in $(seq "$runs"); do
  t0=$SECONDS
  if bash tests/e2e/run.sh; then r=passed; else r=FAILED; status=1; fi
  results+=("run $i: $r in $(((SECONDS - t0) / 60)) min $(((SECONDS - t0) % 60)) s, load average $(cut -d' ' -f1-3 /proc/loadavg)")
  echo "[e2e-under-load] ${results[-1]}"
done
printf '\n== e2e under a clean cargo build --release ==\n'
printf '  %s\n' "${results[@]}"
exit $status
