#!/usr/bin/env python3
"""The demo page's own training rate against the bench page's, in one headless Chromium on one
adapter (SwiftShader here), and how quickly the page answers input meanwhile.

1. www/bench.html?config=S&steps=N: the engine alone (`flowmatch bench`'s measurement).
2. index.html?backend=webgpu#width=64&depth=3&batch=256 (the S model) with the page drawing:
   after a warm-up (the first completions, then WARMUP seconds), steps confirmed done per
   second over WINDOW seconds (`state().stepsDone`), while a key press ('f': play/stop the flow)
   goes in every 2 s through WebDriver's input actions (trusted events); the page records, per
   press, the ms from the event to its handler and to the next frame (`state().inputDelays`), and
   the worst lateness of a 50 ms timer (`state().maxTimerLagMs`). Then the bench page again:
   the machine's speed drifts (other guests on the host: `steal_cores`), so `ratio` is the
   page's rate over the mean of the two bench rates.
3. --extra HASH[;HASH...]: the same page measurement for other models (e.g. the reliability
   soak's), reported under `extra` (the bench page has only S, M and L).
4. --cpu 1 (default): the same pair on the CPU backend: the bench page's CPU side (our CPU
   trainer alone, one thread) against index.html?backend=cpu training S while it draws.
5. index.html (backend auto) with the same model: which backend the page picks, and why, its
   rate against the bench page's WebGPU rate and its input figures (--auto 0 skips it).

Besides the rates, each page run reports what the loop saw at the end of its window: queue depth
(steps), completion latency, steps queued per frame, animation frames and presented frames per
second, the device ms per unit of each kind of work (`state().gpuMs`) and the share of the window's
device time each kind took (`state().gpuBusyS`), the cores each kind of
Chromium process used (renderer, gpu-process, ...) and the renderer's main-thread seconds per second
(CDP Performance metrics); and the machine's load average before and after (the machine is shared: compare page and bench of one run only).

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


def chromium_cpu_s():
    """CPU seconds (user + system) used so far by each Chromium process: {pid: (kind, seconds)},
    kind being renderer, gpu-process, utility, ... or browser. `cores` turns two readings into
    where the two cores went while the page trained."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                # Chromium rewrites its child processes' argv into one space-separated string.
                cmd = f.read().replace(b"\0", b" ").split()
            if not cmd or os.path.basename(cmd[0]) not in (b"chromium", b"chrome", b"headless_shell"):
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = next((a.split(b"=", 1)[1].decode() for a in cmd if a.startswith(b"--type=")), "browser")
        out[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)
    return out


def cores(before, after, secs):
    """Cores busy per kind of Chromium process between two `chromium_cpu_s` readings (processes
    alive at both only: a page load replaces the renderer)."""
    out = {}
    for pid, (kind, s1) in after.items():
        if pid in before:
            out[kind] = out.get(kind, 0.0) + (s1 - before[pid][1]) / secs
    return {k: round(v, 2) for k, v in out.items()}


def main_thread_s(d):
    """The renderer's main-thread seconds so far by kind (CDP Performance.getMetrics)."""
    d.cmd("POST", "/goog/cdp/execute", {"cmd": "Performance.enable", "params": {}})
    m = d.cmd("POST", "/goog/cdp/execute", {"cmd": "Performance.getMetrics", "params": {}})
    keep = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
    return {x["name"]: x["value"] for x in m["metrics"] if x["name"] in keep}


def page_rate(d, base, query, warmup, window, hash_=S, readings=True):
    # steps=0: training without end (a page run of 2000 steps would end inside the window).
    d.get(f"{base}/index.html{query}{hash_}&steps=0")
    if not readings:
        d.js("window.flowmatch.qualityAuto = false;")
    d.wait_for("const s = window.flowmatch; return s && (s.error || (s.ready && s.stepsDone > 0));", 600, "the page's first completed steps")
    if not readings:  # again: the quality card sets it when it starts
        d.js("window.flowmatch.qualityAuto = false;")
    time.sleep(warmup)
    d.js("window.flowmatch.inputDelays = []; window.flowmatch.maxTimerLagMs = 0;")
    cpu0, main0 = chromium_cpu_s(), main_thread_s(d)
    s0 = d.js("const s = window.flowmatch; return {done: s.stepsDone, t: performance.now(), backend: s.backend,"
              " presented: s.framesPresented, frames: s.frames, busy: s.gpuBusyS}")
    t_end = time.time() + window
    while time.time() < t_end:
        press(d, "f")
        time.sleep(2.0)
    s1 = d.js("const s = window.flowmatch; return {done: s.stepsDone, t: performance.now(), error: s.error, inputs: s.inputDelays,"
              " timer: s.maxTimerLagMs, depth: s.queueDepth, latency: s.latencyMs, backend: s.backend, reason: s.backendReason,"
              " presented: s.framesPresented, frames: s.frames, perFrame: s.stepsPerFrame, gpuMs: s.gpuMs,"
              " budget: s.trainBudgetMs, rest: s.frameRestMs, busy: s.gpuBusyS}")
    cpu1, main1 = chromium_cpu_s(), main_thread_s(d)
    secs = (s1["t"] - s0["t"]) / 1000.0
    rate = (s1["done"] - s0["done"]) / secs
    # Cores busy per kind of Chromium process, and the share of the renderer's main thread per kind.
    s1["cores"] = cores(cpu0, cpu1, secs)
    s1["main_thread"] = {k: round((v - main0.get(k, 0.0)) / secs, 3) for k, v in main1.items()}
    s1["frames_per_s"] = round((s1["frames"] - s0["frames"]) / secs, 1)
    s1["presented_per_s"] = round((s1["presented"] - s0["presented"]) / secs, 1)
    # The device's time per kind of work over the window (`state().gpuBusyS`, GPU engine only):
    # what training got, and what drawing and readings took.
    b0, b1 = s0.get("busy") or {}, s1.get("busy") or {}
    s1["device_share"] = {k: round((v - b0.get(k, 0.0)) / secs, 3) for k, v in b1.items()}
    return rate, s1


def loop_seen(s):
    """What the page's loop saw at the end of a window (see the module docs)."""
    r = lambda x: round(x, 2) if isinstance(x, (int, float)) else x  # noqa: E731
    return {"queue_depth": r(s["depth"]), "latency_ms": r(s["latency"]), "steps_per_frame": r(s["perFrame"]),
            "frames_per_s": s["frames_per_s"], "presented_per_s": s["presented_per_s"],
            "train_budget_ms": r(s["budget"]), "frame_rest_ms": r(s["rest"]),
            "gpu_ms": {k: r(v) for k, v in (s["gpuMs"] or {}).items()}, "device_share": s["device_share"], "cores": s["cores"], "main_thread": s["main_thread"]}


def input_figures(s):
    """Per key press: ms from the event to its handler and to the next animation frame."""
    inputs = sorted(x["frameMs"] for x in s["inputs"] if "frameMs" in x)
    handlers = sorted(x["handlerMs"] for x in s["inputs"])
    p95 = lambda v: v[min(len(v) - 1, int(0.95 * len(v)))] if v else None  # noqa: E731
    return {"presses": len(inputs), "input_to_handler_ms_max": round(max(handlers), 1) if handlers else None,
            "input_to_frame_ms_max": round(max(inputs), 1) if inputs else None,
            "input_to_frame_ms_p95": round(p95(inputs), 1) if inputs else None, "timer_lag_ms_max": round(s["timer"], 1)}


def bench_page(d, base, steps):
    """www/bench.html for S: its report, and the cores each kind of process used while it ran (its
    load, warm-up and timed steps), to set beside the page's. Exits with the error it reports."""
    d.get(f"{base}/www/bench.html?config=S&steps={steps}")
    cpu0, t0 = chromium_cpu_s(), time.time()
    d.wait_for("return ['done', 'error'].includes(document.body.dataset.status)", 1800, "the bench page")
    used = cores(cpu0, chromium_cpu_s(), time.time() - t0)
    text = d.js("return document.getElementById('result').textContent")
    if d.js("return document.body.dataset.status") != "done":
        print(json.dumps({"error": text}))
        sys.exit(1)
    return json.loads(text), used


def steal_s():
    """Seconds of CPU time the hypervisor gave other guests so far, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--steps", type=int, default=200, help="timed steps of the bench page")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--extra", default="", help="';'-separated hashes of other models to time on the page")
    ap.add_argument("--readings", type=int, default=1, help="0: also time the S page with the cards' periodic readings off (state.qualityAuto = false)")
    ap.add_argument("--auto", type=int, default=1, help="1: also the backend-auto run")
    ap.add_argument("--cpu", type=int, default=1, help="1: also the CPU pair (bench page's CPU side, page ?backend=cpu)")
    args = ap.parse_args()
    load0 = loadavg()
    with Driver(["--enable-unsafe-webgpu"]) as d:
        bench, bench_cores = bench_page(d, args.base, args.steps)
        steal0, t0 = steal_s(), time.time()
        rate, s = page_rate(d, args.base, "?backend=webgpu", args.warmup, args.window)
        steal = round((steal_s() - steal0) / (time.time() - t0), 3)
        # The bench page again right after the page: the machine's speed drifts within a run
        # (another VM on the host), so the ratio is to the mean of the two bench rates.
        after = bench_page(d, args.base, args.steps)[0]["steps_per_s"]
        mean = (bench["steps_per_s"] + after) / 2
        out = {
            "adapter": bench.get("adapter"), "bench_steps_per_s": bench["steps_per_s"], "bench_after_steps_per_s": after,
            "page_steps_per_s": round(rate, 2), "ratio": round(rate / mean, 3), **input_figures(s),
            "page_error": s["error"], "window_s": args.window, "page": loop_seen(s), "bench_cores": bench_cores,
            "steal_cores": steal,
        }
        if args.cpu:
            # The same pair on the CPU backend: the bench page's CPU side (our CPU trainer alone,
            # one thread) against the page with ?backend=cpu training S while it draws.
            d.get(f"{args.base}/www/bench.html?config=S&sides=cpu&cpu_rounds=1")
            d.wait_for("return ['done', 'error'].includes(document.body.dataset.status)", 1800, "the bench page (CPU)")
            text = d.js("return document.getElementById('result').textContent")
            if d.js("return document.body.dataset.status") != "done":
                out["cpu"] = {"error": text}
            else:
                bench_cpu = json.loads(text)["cpu"]["ours"]["steps_per_s"]
                rate_c, sc = page_rate(d, args.base, "?backend=cpu", args.warmup, args.window)
                out["cpu"] = {"bench_steps_per_s": bench_cpu, "page_steps_per_s": round(rate_c, 2),
                              "ratio": round(rate_c / bench_cpu, 3), **input_figures(sc), "page_error": sc["error"], "page": loop_seen(sc)}
        if not args.readings:
            rate_q, sq = page_rate(d, args.base, "?backend=webgpu", args.warmup, args.window, S, readings=False)
            out["no_readings"] = {"page_steps_per_s": round(rate_q, 2), "ratio": round(rate_q / mean, 3), "page_error": sq["error"], "page": loop_seen(sq)}
        if args.extra:
            out["extra"] = []
            for h in filter(None, args.extra.split(";")):
                rate_x, sx = page_rate(d, args.base, "?backend=webgpu", args.warmup, args.window, "#" + h.lstrip("#"))
                out["extra"].append({"hash": h, "page_steps_per_s": round(rate_x, 2), "page_error": sx["error"], "page": loop_seen(sx)})
        if args.auto:
            auto, sa = page_rate(d, args.base, "", args.warmup, args.window)
            out.update({"auto_backend": sa["backend"], "auto_reason": sa["reason"], "auto_steps_per_s": round(auto, 2),
                        "auto_ratio_to_bench_webgpu": round(auto / bench["steps_per_s"], 3),
                        "auto": {**input_figures(sa), "page_error": sa["error"], "page": loop_seen(sa)}})
        out["load_average"] = [load0, loadavg()]
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
