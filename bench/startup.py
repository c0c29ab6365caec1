#!/usr/bin/env python3
"""Page weight and start-up of the demo page (issue 17, item 6), as a new visitor sees them.

For each backend (webgpu: the page's default; cpu: index.html?cpu=1) and each of --repeats cold
loads (a fresh browser profile, so nothing is cached), loads index.html in headless Chromium and
records, in milliseconds from navigation start (the page's performance.now()):
  wasm_loaded        the wasm file's last byte arrived (Resource Timing),
  first_frame        window.flowmatch.ready (the first drawn frame with particles),
  first_step         window.flowmatch.step >= 1 (a training step ran or was queued),
  first_trained_frame  the first frame with first_frame true and window.flowmatch.trajStep >= 1
                     (drawn particles that come from trained weights).
A watcher installed before the page's own scripts checks window.flowmatch on every animation
frame (so the times are frame-accurate).
Bytes: every file the page fetched from this server, raw and gzip -9 (what a compressing server
sends), summed per kind (wasm, js, css, html). One JSON line per load, then a summary line.
Run from the repository root with the page served, or through bench/run-startup.sh.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
from urllib.parse import urlparse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from webdriver import Driver  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# Installed before any of the page's scripts (CDP Page.addScriptToEvaluateOnNewDocument): checks
# window.flowmatch on every animation frame from the document's start and keeps the first time
# each condition held in window.__startup.
WATCH = """
(() => {
  const t = (window.__startup = {});
  function check() {
    const s = window.flowmatch, now = performance.now();
    if (s && s.error) t.error = String(s.error);
    if (s) {
      for (const [k, ok] of [['first_frame', s.ready], ['first_step', s.step >= 1], ['first_trained_frame', s.ready && s.trajStep >= 1]]) {
        if (t[k] === undefined && ok) t[k] = now;
      }
    }
    if (t.first_frame !== undefined && t.first_trained_frame !== undefined) {
      const nav = performance.getEntriesByType('navigation')[0];
      Object.assign(t, { dom_content_loaded: nav.domContentLoadedEventEnd, load_event: nav.loadEventEnd, backend: s.backend, adapter: s.adapter,
                         resources: performance.getEntriesByType('resource').map((e) => ({ name: e.name, end: e.responseEnd })) });
      t.done = true;
    } else if (!t.error) requestAnimationFrame(check);
  }
  requestAnimationFrame(check);
})();
"""


def kind(path):
    ext = os.path.splitext(path)[1].lstrip(".")
    return {"mjs": "js"}.get(ext, ext or "other")


def weigh(resources, base):
    """Raw and gzip -9 bytes of every same-origin file the page fetched, per kind."""
    files, totals = [], {}
    for r in resources:
        u = urlparse(r["name"])
        if f"{u.scheme}://{u.netloc}" != base:
            continue
        path = os.path.normpath(os.path.join(ROOT, u.path.lstrip("/")))
        if not os.path.isfile(path):
            continue
        data = open(path, "rb").read()
        raw, gz = len(data), len(gzip.compress(data, compresslevel=9, mtime=0))
        files.append({"file": u.path, "raw": raw, "gzip": gz})
        t = totals.setdefault(kind(path), {"raw": 0, "gzip": 0, "files": 0})
        t["raw"] += raw
        t["gzip"] += gz
        t["files"] += 1
    return files, totals


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--backends", default="webgpu,cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--page", default="index.html")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    base = args.base.rstrip("/")
    summary = {}
    for backend in args.backends.split(","):
        for i in range(args.repeats):
            url = f"{base}/{args.page}" + ("?cpu=1" if backend == "cpu" else "")
            load_before = os.getloadavg()
            with Driver(extra_args=["--enable-unsafe-webgpu"]) as d:
                d.cmd("POST", "/goog/cdp/execute", {"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": WATCH}})
                d.get(url)
                r = d.wait_for("const t = window.__startup; return t && (t.done || t.error) ? t : null", args.timeout, f"{backend} start-up", poll=0.5)
                if "error" not in r and r["backend"] == "webgpu":
                    info = d.cmd("POST", "/execute/async", {"script": "const done = arguments[0]; navigator.gpu.requestAdapter().then((a) => done(a ? "
                                 "[a.info.vendor, a.info.architecture, a.info.description].filter(Boolean).join(' ') + (a.info.isFallbackAdapter ? ' (fallback adapter)' : '') : null))", "args": []})
                    r["adapter"] = f"{info} ({r['adapter']})"
            if "error" in r:
                print(json.dumps({"backend": backend, "error": r["error"]}), flush=True)
                sys.exit(1)
            wasm = [x["end"] for x in r["resources"] if x["name"].endswith(".wasm") and urlparse(x["name"]).path.startswith("/pkg/")]
            files, totals = weigh([{"name": f"{base}/{args.page}"}] + r["resources"], base)
            line = {"page": args.page, "requested": backend, "backend": r["backend"], "adapter": r["adapter"], "load": i + 1,
                    "wasm_loaded": round(wasm[0]) if wasm else None}
            for k in ("dom_content_loaded", "load_event", "first_frame", "first_step", "first_trained_frame"):
                line[k] = round(r[k])
            line.update({"bytes": totals, "files": files,
                         "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in os.getloadavg()]})
            print(json.dumps(line), flush=True)
            summary.setdefault(backend, []).append(line)
    for backend, lines in summary.items():
        med = lambda k: round(statistics.median(x[k] for x in lines if x[k] is not None))  # noqa: E731
        b = lines[0]["bytes"]
        print(f"# {backend} ({lines[0]['backend']}, adapter {lines[0]['adapter']!r}): median of {len(lines)} cold loads: wasm loaded "
              f"{med('wasm_loaded')} ms, first frame {med('first_frame')} ms, first step {med('first_step')} ms, first trained frame "
              f"{med('first_trained_frame')} ms; bytes " + ", ".join(f"{k} {v['raw']} raw / {v['gzip']} gzip" for k, v in sorted(b.items())),
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
