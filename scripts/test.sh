#!/usr/bin/env bash
# Runs every test, installing what is missing first, and prints how long each phase took:
#   setup           scripts/setup.sh (Rust's wasm target, the wasm-bindgen CLI, Mesa's Vulkan
#                   driver, Chromium and chromedriver, Firefox ESR, Hugo, .venv), a no-op when all is there
#   native build    cargo test --release --no-run: the library, the CLI and every test binary
#   native tests    the unit and GPU tests (lavapipe where there is no GPU) and the CLI contract
#   wasm build      one release build for wasm32: the page's package (pkg/, scripts/build-wasm.sh)
#                   and the kernel test binaries share the library's compilation
#   browser tests   the kernel tests inside headless Chromium's WebGPU (wasm-bindgen-test-runner)
#   e2e             the demo page, the widget, targets, quality, reliability and the blog engines
#                   in headless Chromium (tests/e2e/run.sh)
# On CI (CI=true) and everywhere else a missing GPU adapter fails the tests, and a phase that
# cannot run fails the run: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- phase clock: every phase's time is printed at the end, also when one fails ---------------
declare -a PHASES=()
phase_name="" phase_t0=0
mmss() { printf '%3d:%02d' $(($1 / 60)) $(($1 % 60)); }
end_phase() {
  [ -n "$phase_name" ] || return 0
  PHASES+=("$(printf '%-14s %s' "$phase_name" "$(mmss $((SECONDS - phase_t0)))")")
  phase_name=""
}
phase() {
  end_phase
  phase_name="$1" phase_t0=$SECONDS
  printf '\n\033[1m== %s ==\033[0m\n' "$1"
}
summary() {
  local status=$?
  if [ -n "$phase_name" ] && [ "$status" != 0 ]; then failed_in="$phase_name"; fi
  end_phase
  printf '\n\033[1m== phase times (min:s; load average at the end: %s) ==\033[0m\n' "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
  printf '  %s\n' "${PHASES[@]}"
  printf '  %-14s %s\n' "total" "$(mmss "$SECONDS")"
  if [ -n "$OVERRIDES" ]; then printf '  not the full suite:%s\n' "$OVERRIDES"; fi
  if [ "$status" = 0 ]; then echo "all tests passed"; else echo "FAILED in phase: ${failed_in:-?} (exit $status)"; fi
}
failed_in="" OVERRIDES=""
SECONDS=0
trap summary EXIT

# Variables that make the run shorter or narrower than the full suite are named up front and in
# the summary (.ci/run refuses them).
for v in FLOWMATCH_E2E_SOAK_STEPS FLOWMATCH_E2E_STEPS FLOWMATCH_E2E_PIXEL_STEPS FLOWMATCH_E2E_QUALITY_STEPS FLOWMATCH_E2E_TEXT_STEPS FLOWMATCH_KERNELS; do
  if [ -n "${!v:-}" ]; then OVERRIDES+=" $v=${!v}"; fi
done
[ -z "$OVERRIDES" ] || echo "note: not the full suite:$OVERRIDES"

# Counts the tests a cargo test run reported ("test result: ok. N passed; F failed; I ignored");
# a phase that ran none, or ignored any, fails: a test that does not run does not exist.
check_ran() {
  local log="$1" what="$2"
  python3 - "$log" "$what" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
runs = re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", text)
passed = sum(int(p) for p, _, _ in runs)
ignored = sum(int(i) for _, _, i in runs)
if not runs or passed == 0:
    sys.exit(f"{sys.argv[2]}: no test ran")
if ignored:
    sys.exit(f"{sys.argv[2]}: {ignored} tests were ignored (nothing may be skipped)")
print(f"{sys.argv[2]}: {passed} tests passed in {len(runs)} binaries")
PY
}

phase "setup"
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
mkdir -p artifacts
logs=$(mktemp -d)

phase "native build"
cargo test --release --no-run

phase "native tests"
cargo test --release --no-fail-fast 2>&1 | tee "$logs/native.log"
check_ran "$logs/native.log" "native tests"

# The kernel tests that also run in the browser (wasm-bindgen-test, run_in_browser), and the fast
# CPU backend's SIMD128 build against the scalar reference (cpu_fast).
BROWSER_TESTS=(--test kernels --test likelihood --test quality --test custom_target --test adaptive --test cpu_fast)
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
# A hang guard, not a speed limit: wasm-bindgen-test-runner's timeout covers a whole test binary
# (tests/kernels.rs: 43 tests), which took more than 600 s on SwiftShader at a load of 15 on 2
# cores and was killed mid-test. A hung test still fails here, well inside CI's 90 minutes.
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-2400}"

phase "wasm build"
scripts/build-wasm.sh --release
cargo test --release --target wasm32-unknown-unknown --no-run "${BROWSER_TESTS[@]}"

phase "browser tests"
cargo test --release --target wasm32-unknown-unknown --no-fail-fast "${BROWSER_TESTS[@]}" 2>&1 | tee "$logs/browser.log"
# The exact-field kernels of tests/rectified.rs (the rest of it trains: too slow on SwiftShader).
cargo test --release --target wasm32-unknown-unknown --test rectified -- exact_field 2>&1 | tee -a "$logs/browser.log"
check_ran "$logs/browser.log" "browser tests"

phase "e2e"
# Run through bash: a lost exec bit must not skip the page tests (a missing file fails here).
bash tests/e2e/run.sh
