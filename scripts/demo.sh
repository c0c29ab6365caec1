#!/usr/bin/env bash
# Builds the wasm and serves the demo on 127.0.0.1, printing the URL. Ctrl-C stops it.
# scripts/serve.py serves only the site's files (not the repository), to 127.0.0.1/localhost only.
#   PORT=8080 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --demo
scripts/build-wasm.sh
port="${PORT:-8000}"
echo "flowmatch demo: http://127.0.0.1:${port}/"
exec python3 scripts/serve.py "$port"
