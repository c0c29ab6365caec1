#!/usr/bin/env python3
"""Drives www/bench.html in headless Chromium (WebGPU enabled), one page load per config, and
prints the page's JSON, one line per config, with the machine's load average before and after
the page ran (the page measures flowmatch and the baselines one after the other; ratios within a
line come from the same page load). Uses the stdlib WebDriver client of tests/e2e/webdriver.py.
Started by bench/run-browser.sh (which serves the repository)."""
import argparse
import json
import os
import sys
from urllib.parse import urlencode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from webdriver import Driver  # noqa: E402


def summary(config, r):
    """One human line per side: every figure with its adapter, and the ratios."""
    out = []
    for side in ("gpu", "cpu"):
        s = r.get(side)
        if not s:
            continue
        ours = s.get("wgpu") or s.get("ours")
        parts = [f"{config} {side}: flowmatch {ours['steps_per_s']} steps/s"]
        for lib in ("jax", "tfjs", "reference"):
            if lib in s:
                parts.append(f"{lib} {s[lib]['steps_per_s']} ({s.get('ratio_vs_' + lib)}x)")
        out.append(", ".join(parts) + f" [adapter: {s['adapter']!r}, {s['device_type']}]")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--configs", default="S,M")
    ap.add_argument("--steps", type=int, default=0, help="timed GPU steps (0: about two seconds of flowmatch)")
    ap.add_argument("--cpu-steps", type=int, default=0, help="timed CPU steps (0: about two seconds of flowmatch)")
    ap.add_argument("--baselines", default="tfjs,jax")
    ap.add_argument("--sides", default="gpu,cpu")
    ap.add_argument("--reference", action="store_true", help="also time the scalar CPU reference")
    ap.add_argument("--kernels", default="", help="software | tiled (default: the adapter's choice)")
    ap.add_argument("--coupling", default="independent", help="the CPU side's batch coupling: independent | ot")
    ap.add_argument("--per-submit", type=int, default=0, help="GPU side: training steps per queue submit (0: the trainer's most)")
    ap.add_argument("--pkg", default="pkg", help="the package directory to load (e.g. a wasm-opt build)")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    failed = False
    with Driver(extra_args=["--enable-unsafe-webgpu"]) as d:
        for config in args.configs.split(","):
            query = urlencode({"config": config, "steps": args.steps, "cpu_steps": args.cpu_steps, "baselines": args.baselines,
                               "sides": args.sides, "kernels": args.kernels, "reference": "1" if args.reference else "0", "pkg": args.pkg,
                               "coupling": args.coupling, "per_submit": args.per_submit})
            load_before = os.getloadavg()
            d.get(f"{args.base}/www/bench.html?{query}")
            d.wait_for("return ['done', 'error'].includes(document.body.dataset.status)", args.timeout, f"benchmark {config}", poll=2)
            status = d.js("return document.body.dataset.status")
            text = d.js("return document.getElementById('result').textContent")
            load = {"loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                    "cpus": os.cpu_count()}
            if status != "done":
                failed = True
                print(json.dumps({"config": config, "status": status, "error": text, **load}), flush=True)
                for line in d.console():
                    print(line, file=sys.stderr)
                continue
            r = json.loads(text)
            r.update(load)
            print(json.dumps(r), flush=True)
            for line in summary(config, r):
                print("# " + line, file=sys.stderr, flush=True)
            print(f"# load average before {load['loadavg_before']}, after {load['loadavg_after']}", file=sys.stderr, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
