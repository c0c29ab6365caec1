#!/usr/bin/env python3
"""The demo page's own training rate against the bench page's, in one headless Chromium on one
adapter (SwiftShader here), and how quickly the page answers input meanwhile.

1. www/bench.html?config=S&steps=N: the engine alone (`flowmatch bench`'s measurement).
2. index.html?backend=webgpu#width=64&depth=3&batch=256 (the S model) with the page drawing:
   after a warm-up (the first completions, then WARMUP seconds), steps confirmed done per
   second over WINDOW seconds (`state().stepsDone`), while a key press ('f': play/stop the flow)
   goes in every 2 s through WebDriver's input actions (trusted events); the page records, per
   press, the ms from the event to its handler and to the next frame (`state().inputDelays`), and
   the worst lateness of a 50 ms timer (`state().maxTimerLagMs`).
3. index.html (backend auto) with the same model: which backend the page picks, and why.

Prints one JSON line: {bench_steps_per_s, page_steps_per_s, ratio, input_ms_max, input_ms_p95,
frame_ms_max, timer_lag_ms_max, auto_backend, auto_reason, ...}. Started by bench/run-page.sh."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from webdriver import Driver  # noqa: E402

S = "#width=64&depth=3&batch=256"


def press(d, key):
    """A trusted key press through WebDriver's input actions."""
    d.cmd("POST", "/actions", {"actions": [{"type": "key", "id": "kbd", "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]})


def page_rate(d, base, query, warmup, window):
    d.get(f"{base}/index.html{query}{S}")
    d.wait_for("const s = window.flowmatch; return s && (s.error || (s.ready && s.stepsDone > 0));", 600, "the page's first completed steps")
    time.sleep(warmup)
    d.js("window.flowmatch.inputDelays = []; window.flowmatch.maxTimerLagMs = 0;")
    s0 = d.js("const s = window.flowmatch; return {done: s.stepsDone, t: performance.now(), backend: s.backend}")
    t_end = time.time() + window
    while time.time() < t_end:
        press(d, "f")
        time.sleep(2.0)
    s1 = d.js("const s = window.flowmatch; return {done: s.stepsDone, t: performance.now(), error: s.error, inputs: s.inputDelays,"
              " timer: s.maxTimerLagMs, depth: s.queueDepth, latency: s.latencyMs, backend: s.backend, reason: s.backendReason,"
              " presented: s.framesPresented, frames: s.frames}")
    rate = (s1["done"] - s0["done"]) / ((s1["t"] - s0["t"]) / 1000.0)
    return rate, s1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--steps", type=int, default=200, help="timed steps of the bench page")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--window", type=float, default=30.0)
    args = ap.parse_args()
    with Driver(["--enable-unsafe-webgpu"]) as d:
        d.get(f"{args.base}/www/bench.html?config=S&steps={args.steps}")
        d.wait_for("return ['done', 'error'].includes(document.body.dataset.status)", 1800, "the bench page")
        text = d.js("return document.getElementById('result').textContent")
        if d.js("return document.body.dataset.status") != "done":
            print(json.dumps({"error": text}))
            sys.exit(1)
        bench = json.loads(text)
        rate, s = page_rate(d, args.base, "?backend=webgpu", args.warmup, args.window)
        inputs = sorted(x["frameMs"] for x in s["inputs"] if "frameMs" in x)
        handlers = sorted(x["handlerMs"] for x in s["inputs"])
        p95 = lambda v: v[min(len(v) - 1, int(0.95 * len(v)))] if v else None  # noqa: E731
        out = {
            "adapter": bench.get("adapter"), "bench_steps_per_s": bench["steps_per_s"], "page_steps_per_s": round(rate, 2),
            "ratio": round(rate / bench["steps_per_s"], 3), "presses": len(inputs),
            "input_to_handler_ms_max": round(max(handlers), 1) if handlers else None,
            "input_to_frame_ms_max": round(max(inputs), 1) if inputs else None, "input_to_frame_ms_p95": round(p95(inputs), 1) if inputs else None,
            "timer_lag_ms_max": round(s["timer"], 1), "queue_depth": s["depth"], "latency_ms": s["latency"], "page_error": s["error"],
            "window_s": args.window,
        }
        auto, sa = page_rate(d, args.base, "", args.warmup, 10.0)
        out.update({"auto_backend": sa["backend"], "auto_reason": sa["reason"], "auto_steps_per_s": round(auto, 2)})
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
