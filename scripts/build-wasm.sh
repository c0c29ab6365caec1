#!/usr/bin/env bash
# Builds the WebAssembly package into pkg/ (an ES module + .wasm, and a publishable package.json).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile="${1:---release}"
wasm-pack build "$profile" --target web --out-dir pkg --no-typescript >&2

# The wasm's `name` custom section (function names for stack traces, about 200 KB raw / 53 KB
# gzipped, a fifth of the download) is dropped from release builds; nothing reads it at run time.
# KEEP_WASM_NAMES=1 keeps it (readable wasm frames in panic stacks). Debian's wasm-opt (binaryen
# 108) is not used: any pass rewrites the export of wasm-bindgen's externref table to the funcref
# table, and the page fails at start (docs/BENCHMARKS.md, "Page weight").
if [ "$profile" = --release ] && [ "${KEEP_WASM_NAMES:-0}" != 1 ]; then
  python3 - pkg/flowmatch_bg.wasm <<'PY'
import sys
path = sys.argv[1]
data = open(path, "rb").read()
assert data[:8] == b"\0asm\x01\0\0\0", "not a wasm module"

def leb(i):
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i

out, i = [data[:8]], 8
while i < len(data):
    start = i
    section = data[i]
    size, body = leb(i + 1)
    end = body + size
    name = None
    if section == 0:
        n, k = leb(body)
        name = data[k:k + n]
    if name != b"name":
        out.append(data[start:end])
    i = end
open(path, "wb").write(b"".join(out))
PY
fi

# The embeddable widget (and its iframe page) ships in the same package (www/widget.js imports '../pkg/flowmatch.js' in
# the repository; next to flowmatch.js in pkg/ that becomes './flowmatch.js'), and package.json
# gets the fields wasm-pack does not write: the widget files, `exports`, `module`, keywords.
sed "s#from '../pkg/flowmatch.js'#from './flowmatch.js'#" www/widget.js > pkg/widget.js
grep -q "from './flowmatch.js'" pkg/widget.js || { echo "build-wasm: could not rewrite the import in pkg/widget.js" >&2; exit 1; }
cp www/widget.css pkg/widget.css
# The iframe page too (its files next to widget.js instead of under www/).
cp www/embed.js www/embed.css pkg/
sed -e 's#href="www/embed.css"#href="embed.css"#' -e 's#src="www/embed.js"#src="embed.js"#' embed.html > pkg/embed.html
grep -q 'src="embed.js"' pkg/embed.html || { echo "build-wasm: could not rewrite pkg/embed.html" >&2; exit 1; }
python3 - pkg/package.json <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    pkg = json.load(f)
files = pkg.setdefault("files", [])
for name in ("widget.js", "widget.css", "embed.html", "embed.js", "embed.css"):
    if name not in files:
        files.append(name)
pkg["module"] = "flowmatch.js"
pkg["exports"] = {
    ".": "./flowmatch.js",
    "./widget": "./widget.js",
    "./widget.js": "./widget.js",
    "./widget.css": "./widget.css",
    "./embed.html": "./embed.html",
    "./flowmatch_bg.wasm": "./flowmatch_bg.wasm",
    "./package.json": "./package.json",
}
pkg["keywords"] = ["flow-matching", "webgpu", "wgsl", "wasm", "web-component", "generative-models"]
pkg["browser"] = "flowmatch.js"
effects = pkg.setdefault("sideEffects", [])
if "./widget.js" not in effects:
    effects.append("./widget.js")  # defines the custom element on import
with open(path, "w") as f:
    json.dump(pkg, f, indent=2)
    f.write("\n")
PY
