#!/usr/bin/env bash
# Installs whatever the build and the tests need and is missing; safe to run again.
#   scripts/setup.sh          everything (tests: Vulkan software driver, Chromium + driver, Firefox ESR +
#                             puppeteer-core, Hugo, .venv with numpy/safetensors/markdown, wasm tools)
#   scripts/setup.sh --demo   only what building and serving the demo needs
# Versions are pinned to match Cargo.lock (wasm-bindgen CLI must equal the crate's version). The
# wasm-bindgen CLI builds the package (wasm-bindgen) and runs the browser tests
# (wasm-bindgen-test-runner, cargo's runner for wasm32): no wasm-pack.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
mode="${1:-all}"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ${NO_RECOMMENDS:+--no-install-recommends} "${missing[@]}" >/dev/null
  fi
}

export PATH="$HOME/.cargo/bin:$PATH"
# The Debian packages download and unpack while cargo compiles the wasm-bindgen CLI: one waits on
# the network and the disk, the other on the CPU.
apt_job=""
if [ "$mode" != "--demo" ]; then
  # lavapipe (software Vulkan) for native GPU tests; Chromium + chromedriver for browser tests.
  # Firefox ESR and node for tests/e2e/test_firefox.py (puppeteer-core, below). Node.js and npm
  # come from Debian only when the machine has no npm: Debian's npm package cannot be installed
  # beside a NodeSource nodejs (which bundles npm), as on CI's machines. Hugo for the blog-engine
  # test (tests/e2e/test_blogs.py); python3-venv for the Python packages below.
  debs=(mesa-vulkan-drivers libvulkan1 chromium chromium-driver firefox-esr python3-venv)
  command -v npm >/dev/null 2>&1 || debs+=(nodejs npm)
  { apt_install "${debs[@]}" && NO_RECOMMENDS=1 apt_install hugo; } &
  apt_job=$!
fi
if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ] ||
   [ "$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2 minutes)"
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi
if [ -n "$apt_job" ] && ! wait "$apt_job"; then
  log "installing the Debian packages failed (see above)"
  exit 1
fi
if [ "$mode" != "--demo" ] && [ ! -d tests/e2e/firefox/node_modules/puppeteer-core ]; then
  log "npm ci in tests/e2e/firefox (puppeteer-core, pinned by package-lock.json)"
  (cd tests/e2e/firefox && npm ci --silent --no-audit --no-fund)
fi
# numpy + safetensors (the model-format interop test, tests/python_interop.rs) and markdown (the
# plain Markdown blog recipe) from PyPI into .venv/ (gitignored).
if [ "$mode" != "--demo" ] && ! .venv/bin/python -c "import numpy, safetensors, markdown" 2>/dev/null; then
  log "python3 -m venv .venv && pip install -r examples/requirements.txt"
  # Debian's python3 (its venv module comes with python3-venv above; it has SSL for pip).
  py=python3
  [ -x /usr/bin/python3 ] && py=/usr/bin/python3
  rm -rf .venv
  "$py" -m venv .venv
  .venv/bin/pip install -q -r examples/requirements.txt
fi
log "ready"
