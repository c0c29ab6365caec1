#!/usr/bin/env bash
# Builds the WebAssembly package into pkg/ (an ES module + .wasm, and a publishable package.json).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile="${1:---release}"
wasm-pack build "$profile" --target web --out-dir pkg --no-typescript >&2
