#!/usr/bin/env bash
# Builds the WebAssembly package into pkg/ (an ES module + .wasm, and a publishable package.json):
# cargo builds the library for wasm32, the wasm-bindgen CLI (the crate's version, installed by
# scripts/setup.sh) writes the ES module glue, and package.json is written from Cargo.toml.
#   scripts/build-wasm.sh [--release | --dev]     (default --release)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
case "${1:---release}" in
  --release) flags=(--release) dir=release ;;
  --dev) flags=() dir=debug ;;
  *) echo "build-wasm: unknown option '$1': expected --release or --dev" >&2; exit 2 ;;
esac
cargo build --lib "${flags[@]}" --target wasm32-unknown-unknown >&2
wasm="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/$dir/flowmatch.wasm"
rm -rf pkg
wasm-bindgen --target web --out-dir pkg --no-typescript "$wasm"
cp README.md pkg/
printf '*\n' > pkg/.gitignore

# The embeddable widget (and its iframe page) ships in the same package (www/widget.js imports '../pkg/flowmatch.js' in
# the repository; next to flowmatch.js in pkg/ that becomes './flowmatch.js'), and package.json
# lists them with `exports`, `module` and keywords.
sed "s#from '../pkg/flowmatch.js'#from './flowmatch.js'#" www/widget.js > pkg/widget.js
grep -q "from './flowmatch.js'" pkg/widget.js || { echo "build-wasm: could not rewrite the import in pkg/widget.js" >&2; exit 1; }
# Its modules (chart, download, number formatting) go next to it.
cp www/widget.css www/chart.js www/download.js www/format.js pkg/
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
    "repository": {"type": "git", "url": crate["repository"]},
    "files": ["flowmatch_bg.wasm", "flowmatch.js"] + (["snippets/"] if os.path.isdir("pkg/snippets") else []),
}
files = pkg["files"]
for name in ("widget.js", "widget.css", "chart.js", "download.js", "format.js", "embed.html", "embed.js", "embed.css"):
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
