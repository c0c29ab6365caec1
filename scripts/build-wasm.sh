#!/usr/bin/env bash
# Builds the WebAssembly package into pkg/: the ES module + .wasm with TypeScript declarations,
# the embeddable widget and its iframe page, LICENSE, and a publishable package.json. cargo builds
# the library for wasm32 (.cargo/config.toml adds +simd128), the wasm-bindgen CLI (the crate's
# version, installed by scripts/setup.sh) writes the ES module glue and flowmatch.d.ts, and
# package.json is written from Cargo.toml.
#   scripts/build-wasm.sh [--release|--dev|--profiling] [--features F]     (default --release)
# --profiling is a release build that keeps the wasm's function names. --features bench adds the
# browser benchmark's entry point (runBench, www/bench.html; used by bench/run-browser.sh); the
# published package is built without it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile="--release"
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release|--dev|--profiling) profile="$1" ;;
    --features) [ $# -ge 2 ] || { echo "build-wasm: --features needs a value (e.g. bench)" >&2; exit 2; }
                cargo_args+=(--features "$2"); shift ;;
    *) echo "build-wasm: unknown argument '$1' (expected --release, --dev, --profiling or --features F)" >&2; exit 2 ;;
  esac
  shift
done
case "$profile" in
  --release|--profiling) flags=(--release) dir=release ;;
  --dev) flags=() dir=debug ;;
esac
cargo build --lib "${flags[@]}" ${cargo_args[@]+"${cargo_args[@]}"} --target wasm32-unknown-unknown >&2
wasm="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/$dir/flowmatch.wasm"
rm -rf pkg
wasm-bindgen --target web --out-dir pkg "$wasm"
cp README.md pkg/
printf '*\n' > pkg/.gitignore

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
# lists them with `exports`, `types`, `module` and keywords.
sed "s#from '../pkg/flowmatch.js'#from './flowmatch.js'#" www/widget.js > pkg/widget.js
grep -q "from './flowmatch.js'" pkg/widget.js || { echo "build-wasm: could not rewrite the import in pkg/widget.js" >&2; exit 1; }
# Its modules (chart, download, number formatting, frame pacing: the one list of them), its
# declarations and the licence go next to it.
export WIDGET_MODULES="chart.js download.js format.js pace.js"
for m in $WIDGET_MODULES; do cp "www/$m" pkg/; done
cp www/widget.d.ts www/widget.css LICENSE pkg/
# The iframe page too (its files next to widget.js instead of under www/).
cp www/embed.js www/embed.css pkg/
sed -e 's#href="www/embed.css"#href="embed.css"#' -e 's#src="www/embed.js"#src="embed.js"#' embed.html > pkg/embed.html
grep -q 'src="embed.js"' pkg/embed.html || { echo "build-wasm: could not rewrite pkg/embed.html" >&2; exit 1; }
python3 - pkg/package.json <<'PY'
import json, os, sys, tomllib
path = sys.argv[1]
with open("Cargo.toml", "rb") as f:
    crate = tomllib.load(f)["package"]
pkg = {
    "name": crate["name"],
    "type": "module",
    "description": crate["description"],
    "version": crate["version"],
    "license": crate["license"],
    "files": ["flowmatch_bg.wasm", "flowmatch.js", "flowmatch.d.ts", "flowmatch_bg.wasm.d.ts"]
    + (["snippets/"] if os.path.isdir("pkg/snippets") else []),
}
# No public repository URL exists yet: no `repository` field rather than a placeholder (add one to
# Cargo.toml and it is copied here).
if "repository" in crate:
    pkg["repository"] = {"type": "git", "url": crate["repository"]}
files = pkg["files"]
modules = os.environ["WIDGET_MODULES"].split()
for name in ["widget.js", "widget.d.ts", "widget.css", *modules, "embed.html", "embed.js", "embed.css", "LICENSE"]:
    if name not in files:
        files.append(name)
missing = [n for n in files if not os.path.exists(os.path.join(os.path.dirname(path), n))]
if missing:
    sys.exit(f"build-wasm: package.json lists missing files {missing}")
pkg["module"] = "flowmatch.js"
pkg["types"] = "flowmatch.d.ts"
main = {"types": "./flowmatch.d.ts", "default": "./flowmatch.js"}
widget = {"types": "./widget.d.ts", "default": "./widget.js"}
# Every shipped file has an entry (README and LICENSE are documents, not imports).
pkg["exports"] = {
    ".": main,
    "./flowmatch.js": main,
    "./flowmatch_bg.wasm": "./flowmatch_bg.wasm",
    "./widget": widget,
    "./widget.js": widget,
    "./widget.css": "./widget.css",
    **{f"./{m}": f"./{m}" for m in modules},
    "./embed.html": "./embed.html",
    "./embed.js": "./embed.js",
    "./embed.css": "./embed.css",
    "./package.json": "./package.json",
}
pkg["keywords"] = ["flow-matching", "webgpu", "wgsl", "wasm", "web-component", "generative-models"]
pkg["browser"] = "flowmatch.js"
effects = pkg.setdefault("sideEffects", [])
for name in ("./widget.js", "./embed.js"):
    if name not in effects:
        effects.append(name)  # define the custom element / build the figure on import
with open(path, "w") as f:
    json.dump(pkg, f, indent=2)
    f.write("\n")
PY
