# Sourced by bench/run-browser.sh and bench/run-startup.sh (from the repository root): builds the
# wasm package unless SKIP_WASM_BUILD=1, serves the repository on 127.0.0.1:$port (PORT, or a free
# port) until the calling script exits. WASM_BUILD_ARGS: extra arguments for the build (the
# browser benchmark needs `--release --features bench` for its runBench hooks).
if [ "${SKIP_WASM_BUILD:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  scripts/build-wasm.sh ${WASM_BUILD_ARGS:-}
fi
port="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
sleep 1
