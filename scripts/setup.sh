#!/usr/bin/env bash
# Installs whatever the build and the tests need and is missing; safe to run again.
#   scripts/setup.sh          everything (tests: Vulkan software driver, Chromium + driver, wasm tools)
#   scripts/setup.sh --demo   only what building and serving the demo needs
# Versions are pinned to match Cargo.lock (wasm-bindgen CLI must equal the crate's version).
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
WASM_PACK_VERSION=0.15.1
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
if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2 minutes)"
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi
if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$WASM_PACK_VERSION" ]; then
  log "cargo install wasm-pack $WASM_PACK_VERSION (about 3 minutes)"
  cargo install -q wasm-pack --version "$WASM_PACK_VERSION" --locked --force
fi

if [ "$mode" != "--demo" ]; then
  # lavapipe (software Vulkan) for native GPU tests; Chromium + chromedriver for browser tests;
  # Hugo for the blog-engine test (tests/e2e/test_blogs.py); venv for the Python packages below.
  apt_install mesa-vulkan-drivers libvulkan1 chromium chromium-driver python3-venv
  NO_RECOMMENDS=1 apt_install hugo
  # numpy + safetensors (the model-format interop test, tests/python_interop.rs) and markdown (the
  # plain Markdown blog recipe) from PyPI into .venv/ (gitignored).
  if ! .venv/bin/python -c "import numpy, safetensors, markdown" 2>/dev/null; then
    log "python3 -m venv .venv && pip install -r examples/requirements.txt"
    # Debian's python3 (its venv module comes with python3-venv above; it has SSL for pip).
    py=python3
    [ -x /usr/bin/python3 ] && py=/usr/bin/python3
    rm -rf .venv
    "$py" -m venv .venv
    .venv/bin/pip install -q -r examples/requirements.txt
  fi
fi
log "ready"
