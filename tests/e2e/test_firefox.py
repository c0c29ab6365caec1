"""The demo page's main flows in a second browser engine: headless Firefox ESR, driven by
puppeteer-core over WebDriver BiDi (tests/e2e/firefox/drive.mjs; Debian has no geckodriver).

1. cpu: default prefs, so no navigator.gpu (what most Firefox users on Linux see): the notice
   names WebGPU, the CPU engine trains, a sample-quality reading comes back (the CPU engine
   measures it too), a setting changed through its control restarts training and lands in the
   URL hash, a layer checkbox works, and "Compare solvers" gives one finite point per (solver,
   setting) on the CPU. No page errors.
2. webgpu: with dom.webgpu.enabled and gfx.webgpu.ignore-blocklist Firefox exposes WebGPU on Mesa's
   lavapipe: ?backend=webgpu trains on it (the loss falls over 300 steps, frames reach the canvas);
   the default (auto) page says which backend it chose and why.

Needs /usr/bin/firefox-esr and tests/e2e/firefox/node_modules (scripts/setup.sh installs both).
`tests/e2e/run.sh test_firefox.py [cpu webgpu]`.
"""

import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import log, run_tests  # noqa: E402

URL = os.environ.get("FLOWMATCH_E2E_URL", "http://127.0.0.1:8000/")
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "firefox")


def drive(flow, timeout=900):
    if not os.path.isdir(os.path.join(HERE, "node_modules", "puppeteer-core")):
        raise AssertionError("tests/e2e/firefox/node_modules is missing: run scripts/setup.sh")
    r = subprocess.run(["node", os.path.join(HERE, "drive.mjs"), URL, flow], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert lines, f"drive.mjs {flow} printed no result (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    out = json.loads(lines[-1])
    assert not out.get("failure"), out["failure"]
    return out


def no_errors(out):
    # Firefox logs its own warnings as errors sometimes; the page's own errors come as pageerror or
    # from app.js's WebGPU error hook ("WebGPU error: ...").
    bad = [e for e in out["errors"] if "flowmatch" in e or "WebGPU error" in e or "panicked" in e]
    assert not bad, f"page errors: {bad}"


def test_cpu():
    out = drive("cpu")
    s = out["start"]
    assert s["ready"] and not s["error"] and not s["gpu"], f"Firefox without the prefs should have no navigator.gpu: {s}"
    assert s["backend"] == "cpu", s
    assert out["noticeShown"] and "WebGPU" in out["noticeShown"], out["noticeShown"]
    t = out["trained"]
    assert not t["qualityError"] and math.isfinite(t["sw2"]) and t["sw2"] > 0, f"no sample-quality reading on the CPU: {t}"
    log(f"CPU: {t['stepsRead']} steps, loss {t['lossStart']:.3f} -> {t['lossRecent']:.3f}, sliced W2 {t['sw2']:.3f}")
    a = out["after"]
    assert a["width"] == "16" and "width=16" in a["hash"] and a["step"] < out["before"], f"a width change did not restart training: {out['before']} -> {a}"
    pts = out["comparison"]
    assert pts and len(pts) == 20, pts
    assert all(math.isfinite(p["sw2"]) and p["sw2"] >= 0 and p["nfe"] >= 1 for p in pts), pts
    assert {p["solver"] for p in pts} == {"euler", "midpoint", "rk4", "dopri5"}, pts
    log("comparison on the CPU: " + ", ".join(f"{p['solver']} {p['nfe']:.0f}: {p['sw2']:.3f}" for p in pts[::4]))
    no_errors(out)


def test_webgpu():
    out = drive("webgpu")
    s = out["start"]
    assert s["gpu"], f"Firefox with dom.webgpu.enabled should expose navigator.gpu: {s}"
    assert s["backend"] == "webgpu" and not s["error"], s
    t = out["trained"]
    assert not t["error"], t
    assert t["lossRecent"] < 0.85 * t["lossStart"], f"the loss did not fall on WebGPU: {t['lossStart']} -> {t['lossRecent']}"
    assert t["framesPresented"] >= 3, t
    log(f"WebGPU (lavapipe): {t['stepsRead']} steps, loss {t['lossStart']:.3f} -> {t['lossRecent']:.3f}, {t['framesPresented']} frames")
    a = out["auto"]
    assert not a["error"] and a["reason"], a
    log(f"auto: {a['backend']} ({a['reason']})")
    no_errors(out)


TESTS = {"cpu": test_cpu, "webgpu": test_webgpu}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e firefox"))
