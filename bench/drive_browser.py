#!/usr/bin/env python3
"""Drives www/bench.html?config=C&steps=N&baseline=tfjs in headless Chromium (WebGPU enabled)
and prints the page's JSON, one line per config. Uses the stdlib WebDriver client of
tests/e2e/webdriver.py. Started by bench/run-browser.sh (which serves the repository)."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from webdriver import Driver  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--configs", default="S,M")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--baseline", default="tfjs")
    ap.add_argument("--kernels", default="", help="software | tiled (default: the adapter's choice)")
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args()
    failed = False
    with Driver(extra_args=["--enable-unsafe-webgpu"]) as d:
        for config in args.configs.split(","):
            d.get(f"{args.base}/www/bench.html?config={config}&steps={args.steps}&baseline={args.baseline}&kernels={args.kernels}")
            d.wait_for("return ['done', 'error'].includes(document.body.dataset.status)", args.timeout, f"benchmark {config}")
            status = d.js("return document.body.dataset.status")
            text = d.js("return document.getElementById('result').textContent")
            if status != "done":
                failed = True
                print(json.dumps({"config": config, "status": status, "error": text}), flush=True)
                for line in d.console():
                    print(line, file=sys.stderr)
                continue
            r = json.loads(text)
            print(json.dumps(r), flush=True)
            if "tfjs" in r:
                print(f"# {config}: wgpu {r['wgpu']['steps_per_s']} steps/s, tfjs {r['tfjs']['steps_per_s']} steps/s, "
                      f"ratio {r['ratio_steps_per_s']}x (adapter: {r['adapter']})", file=sys.stderr, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
