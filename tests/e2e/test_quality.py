"""End-to-end test of the "Sample quality" card (www/quality.js, src/web/quality_view.rs) in
headless Chromium with WebGPU (SwiftShader), driven over WebDriver.

quality: a small model trains a few hundred steps; the sliced W2 between fresh samples and the
target is read from the GPU every few seconds: it is finite and falls below its initial value;
the straightness, kinetic energy and field error read after it are finite, consistent and shown.
Then "Compare solvers" returns one finite point per (solver, setting): euler, midpoint and rk4 at
4..64 evaluations per sample (one step at least) and dopri5 at five tolerances.

reflow, reflow_cpu: the "Rectified flow" card on each engine (www/reflow.js): Reflow advances the
round, training continues on the pairs for reflow_steps steps, straightness drops, previews draw.
exact: the "Exact field" layer draws orange arrows across the arrow grid.
exactflow, exactflow_cpu: the "Exact flow" layer on each engine with 16 training points: the
particles carried by the exact field land on the points (memorisation), the caption says how
many, and they are drawn in orange.

heatmap: the "Density (log p)" layer, with particles and target hidden, changes (nearly) every
pixel of the world square: log p is drawn for every grid cell (a NaN cell would be discarded and
leave the background), and the layer off restores the picture.

Run by tests/e2e/run.sh (`tests/e2e/run.sh test_quality.py`); the page's URL comes in
FLOWMATCH_E2E_URL.
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import decode_png, log, run_tests, session  # noqa: E402

URL = os.environ.get("FLOWMATCH_E2E_URL", "http://127.0.0.1:8000/")
MODEL = "#dataset=moons&width=32&depth=2&batch=128&particles=512&nfe=16&lr=0.01"
# steps=0: training without end (a run of 2000 steps would end before the readings these tests wait for).
HASH = MODEL + "&steps=0"
TRAIN_STEPS = int(os.environ.get("FLOWMATCH_E2E_QUALITY_STEPS", "300"))


def test_quality():
    with session(["--enable-unsafe-webgpu"]) as d:
        d.get(URL + "?backend=webgpu&case=quality" + HASH)
        d.wait_for("const s = window.flowmatch; return s && (s.ready || s.error);", 90, "the page to start")
        s = d.js("const s = window.flowmatch; return {backend: s.backend, error: s.error, adapter: s.adapter}")
        assert s["backend"] == "webgpu" and not s["error"], f"expected WebGPU: {s}"
        d.wait_for("const s = window.flowmatch; return s.qualityError || Number.isFinite(s.sw2Initial);", 60, "the first sliced W2")
        first = d.js("const s = window.flowmatch; return {e: s.qualityError, v: s.sw2Initial}")
        assert not first["e"], first["e"]
        log(f"initial sliced W2 {first['v']:.4f}")
        t0 = time.time()
        d.wait_for(
            f"const s = window.flowmatch; const h = s.sw2History; return s.error || s.qualityError || "
            f"(s.stepsRead >= {TRAIN_STEPS} && h.length >= 3 && h[h.length - 1].step >= {TRAIN_STEPS} / 2);",
            240, f"{TRAIN_STEPS} steps and sliced W2 readings", progress="window.flowmatch.sw2History.length")
        s = d.js("const s = window.flowmatch; return {error: s.error, qe: s.qualityError, h: s.sw2History, init: s.sw2Initial, step: s.stepsRead}")
        assert not s["error"] and not s["qe"], s
        hist = s["h"]
        log(f"{s['step']} steps in {time.time() - t0:.0f}s; sliced W2 " + ", ".join(f"{p['step']}:{p['sw2']:.3f}" for p in hist))
        assert all(math.isfinite(p["sw2"]) and p["sw2"] >= 0 for p in hist), hist
        assert hist[-1]["sw2"] < s["init"], f"sliced W2 did not decrease: {s['init']} -> {hist[-1]['sw2']}"

        # Straightness, kinetic energy (App.flow_stats) and the field error (App.field_error), kept
        # by App.state(): finite, K = T + S >= S >= 0 up to rounding, shown as numbers (never NaN).
        d.wait_for("const s = window.flowmatch.app.state(); return window.flowmatch.qualityError || (Number.isFinite(s.straightness) && Number.isFinite(s.fieldError));",
                   120, "a straightness reading", progress="window.flowmatch.sw2History.length")
        st = d.js("const s = window.flowmatch.app.state(); return {qe: window.flowmatch.qualityError, s: s.straightness, k: s.kinetic, ms: window.flowmatch.straightnessMs,"
                  " t: s.transportCost, fe: s.fieldError, text: ['straightness', 'kinetic', 'field-error'].map((k) => document.getElementById('stat-' + k).textContent)}")
        log(f"straightness {st['s']}, kinetic energy {st['k']}, transport cost {st['t']}, field error {st['fe']}, shown {st['text']}; last reading {st['ms']:.0f} ms")
        assert not st["qe"], st
        assert st["s"] >= -1e-4 and st["k"] > 0 and abs(st["k"] - st["t"] - st["s"]) <= 1e-3 * st["k"], st
        assert st["fe"] > 0, st
        assert all(t and "NaN" not in t and t != "–" for t in st["text"]), st

        # The chart was drawn: the quality canvas has non-background pixels.
        lit = d.js("const c = document.getElementById('quality'); const g = c.getContext('2d');"
                   "const p = g.getImageData(0, 0, c.width, c.height).data; let n = 0;"
                   "for (let i = 3; i < p.length; i += 4) if (p[i] > 0) n++; return n;")
        assert lit > 100, f"the sliced W2 chart looks empty ({lit} lit pixels)"

        d.js("window.flowmatch.app.pause(); document.getElementById('compare-solvers').click();")
        t1 = time.time()
        d.wait_for("const s = window.flowmatch; return s.qualityError || (!s.comparing && s.solverComparison);", 300, "the solver comparison")
        s = d.js("const s = window.flowmatch; return {qe: s.qualityError, pts: s.solverComparison}")
        assert not s["qe"], s["qe"]
        pts = s["pts"]
        log(f"comparison in {time.time() - t1:.0f}s: " + "; ".join(f"{p['solver']} nfe {p['nfe']:.0f} sw2 {p['sw2']:.3f}" for p in pts))
        want = {("euler", n) for n in (4, 8, 16, 32, 64)} | {("midpoint", n // 2) for n in (4, 8, 16, 32, 64)} | {("rk4", n // 4) for n in (4, 8, 16, 32, 64)}
        got_fixed = [(p["solver"], round(p["setting"])) for p in pts if p["solver"] != "dopri5"]
        assert sorted(got_fixed) == sorted(want), f"fixed-step points {got_fixed}"
        dp = [p for p in pts if p["solver"] == "dopri5"]
        assert len(dp) == 5, dp
        for p in pts:
            assert math.isfinite(p["sw2"]) and p["sw2"] >= 0 and math.isfinite(p["nfe"]) and p["nfe"] >= 1, p
        for p in pts:
            if p["solver"] != "dopri5":
                assert p["nfe"] == p["setting"] * {"euler": 1, "midpoint": 2, "rk4": 4}[p["solver"]], p
        # Tighter tolerances use at least as many evaluations.
        nfes = [p["nfe"] for p in dp]
        assert nfes == sorted(nfes), f"dopri5 evaluations should grow as the tolerance tightens: {nfes}"
        lit = d.js("const c = document.getElementById('solvers'); const g = c.getContext('2d');"
                   "const p = g.getImageData(0, 0, c.width, c.height).data; let n = 0;"
                   "for (let i = 3; i < p.length; i += 4) if (p[i] > 0) n++; return n;")
        assert lit > 100, f"the comparison chart looks empty ({lit} lit pixels)"
        errs = d.js("return window.flowmatch.gpuErrors")
        assert not errs, errs


def canvas_pixels(d):
    png = d.screenshot()
    rect = d.js("const r = document.getElementById('flow').getBoundingClientRect(); return {left: r.left, top: r.top, width: r.width, height: r.height}")
    w, h, ch, px = decode_png(png)
    left, top, cw, chh = (int(round(rect[k])) for k in ("left", "top", "width", "height"))
    side = min(cw, chh)
    # The world square [-extent, extent]^2 fills the shorter side, centred; keep 4% margins.
    x0, y0 = left + (cw - side) // 2 + side // 25, top + (chh - side) // 2 + side // 25
    n = side - 2 * (side // 25)
    out = []
    for yy in range(y0, min(y0 + n, h)):
        row = yy * w * ch
        out.append([tuple(px[row + xx * ch: row + xx * ch + 3]) for xx in range(x0, min(x0 + n, w))])
    return out


def test_heatmap():
    with session(["--enable-unsafe-webgpu"]) as d:
        d.get(URL + "?backend=webgpu&case=heatmap" + HASH)
        d.wait_for("const s = window.flowmatch; return s && (s.ready || s.error);", 90, "the page to start")
        assert d.js("return window.flowmatch.backend") == "webgpu"
        d.wait_for("const s = window.flowmatch; return s.error || s.stepsRead >= 150;", 120, "150 training steps", progress="window.flowmatch.stepsRead")
        d.js("const a = window.flowmatch.app; a.pause(); for (const l of ['particles', 'target', 'trails', 'arrows']) a.set_layer(l, false);")
        d.wait_presented()
        off = canvas_pixels(d)
        assert d.js("return window.flowmatch.app.state().heatmapStep") is None, "a heat map before the layer was shown"
        d.js("document.querySelector('[data-layer=heatmap]').click();")
        total = sum(len(r) for r in off)
        # The first evaluation (4096 cells, 8 midpoint steps with the exact divergence) is encoded
        # with the first frame that shows the layer and takes a few seconds on SwiftShader; the
        # frames rendered after it draw it.
        step = d.wait_for("return window.flowmatch.app.state().heatmapStep", 60, "the heat map's first evaluation")
        d.wait_presented(timeout=120)
        on = canvas_pixels(d)
        changed = sum(1 for ra, rb in zip(off, on) for a, b in zip(ra, rb) if max(abs(a[k] - b[k]) for k in range(3)) > 4)
        log(f"heat map (step {step}) changed {changed} of {total} pixels of the world square")
        assert total > 10000, f"canvas too small? {total}"
        assert changed > 0.97 * total, f"heat map covers only {changed}/{total} pixels (NaN cells are not drawn)"
        # Warm colours where the density is high (the ramp goes from blue to orange).
        warm = sum(1 for r in on for p in r if p[0] > p[2] + 40)
        assert warm > 0.01 * total, f"no high-density (warm) cells: {warm}"
        d.js("document.querySelector('[data-layer=heatmap]').click();")
        d.wait_presented()
        back = canvas_pixels(d)
        same = sum(1 for ra, rb in zip(off, back) for a, b in zip(ra, rb) if max(abs(a[k] - b[k]) for k in range(3)) <= 4)
        assert same > 0.97 * total, f"turning the layer off should restore the picture ({same}/{total})"
        errs = d.js("return window.flowmatch.gpuErrors")
        assert not errs, errs


# Reflow: pairs of the page's Euler 16-step flow, a short round (tests/rectified.rs measures the
# same model at 1000 pairs of 20 Euler steps and 100 reflow steps: straightness down 126-282x).
# Runs of 2000 steps (the default): on the CPU the first run has ended before the pause, so the
# round also shows that reflow's pairs start a new run.
REFLOW_HASH = MODEL + "&reflow_pairs=1000&reflow_steps=150"
REFLOW_BEFORE = int(os.environ.get("FLOWMATCH_E2E_REFLOW_BEFORE", "200"))


def lit_pixels(d, cid):
    return d.js("const c = document.getElementById(arguments[0]); const g = c.getContext('2d');"
                "const p = g.getImageData(0, 0, c.width, c.height).data; let n = 0;"
                "for (let i = 0; i < p.length; i += 4) if (p[i] + p[i + 1] + p[i + 2] > 120) n++; return n;", cid)


def reading(d, call):
    """Awaits `window.flowmatch.app.<call>` (a Promise) and returns its value (or {error})."""
    return d.js_async(f"window.flowmatch.app.{call}.then((v) => done(v), (e) => done({{error: String(e.message || e)}}));")


def reflow_case(backend):
    """The "Rectified flow" card on `backend`: after REFLOW_BEFORE steps (paused), Reflow makes the
    pairs on the engine, the round counter reads 2-rectified, training resumes on the pairs from
    the same step and pauses exactly reflow_steps later; the straightness of the model's own paths
    drops by a large factor, and both previews (many steps, one Euler step) are drawn."""
    with session(["--enable-unsafe-webgpu"]) as d:
        d.get(URL + f"?backend={backend}&case=reflow-{backend}" + REFLOW_HASH)
        d.wait_for("const s = window.flowmatch; return s && (s.ready || s.error);", 90, "the page to start")
        assert d.js("return window.flowmatch.backend") == backend
        assert d.js("return document.getElementById('stat-reflow-round').textContent") == "1-rectified"
        d.wait_for(f"const s = window.flowmatch; return s.error || s.stepsRead >= {REFLOW_BEFORE};", 240, f"{REFLOW_BEFORE} steps",
                   progress="window.flowmatch.stepsRead")
        d.js("window.flowmatch.app.pause();")
        d.wait_for("const s = window.flowmatch.app.state(); return !s.training && s.stepsDone === s.step;", 60, "training to pause",
                   progress="window.flowmatch.app.state().stepsDone")
        start = d.js("return window.flowmatch.app.state().step")
        before = reading(d, "flow_stats()")
        one_before = reading(d, "one_step_preview()")
        assert "error" not in before and "error" not in one_before, (before, one_before)

        d.js("document.getElementById('reflow').click();")
        d.wait_for("const s = window.flowmatch; return s.error || s.reflowError || s.app.state().reflowRound === 1;", 120,
                   "the reflow pairs", progress="window.flowmatch.app.state().workDone")
        s = d.js("const s = window.flowmatch; return {e: s.error, re: s.reflowError, pairs: s.app.state().reflowPairs}")
        assert not s["e"] and not s["re"] and s["pairs"] == 1000, s
        end = start + 150
        d.wait_for(f"const s = window.flowmatch.app.state(); return s.error || (!s.training && s.stepsRead >= {end});", 240,
                   "the reflow round's steps", progress="window.flowmatch.stepsRead")
        s = d.js("const s = window.flowmatch.app.state(); return {step: s.step, until: s.reflowUntil, round: s.reflowRound}")
        assert s == {"step": end, "until": None, "round": 1}, f"the round should train exactly 150 steps from {start}: {s}"
        d.wait_for("return document.getElementById('stat-reflow-round').textContent === '2-rectified'"
                   " && document.getElementById('reflow-status').textContent.startsWith('Round 1 done')", 10, "the round's name and its end")
        after = reading(d, "flow_stats()")
        one_after = reading(d, "one_step_preview()")
        assert "error" not in after and "error" not in one_after, (after, one_after)
        log(f"{backend}: straightness {before['straightness']:.4f} -> {after['straightness']:.5f} "
            f"(factor {before['straightness'] / max(after['straightness'], 1e-12):.0f}); one-step SW2 {one_before['sw2']:.4f} -> {one_after['sw2']:.4f}")
        # Measured here over three runs each: straightness down 106-132x (CPU engine, 1.16-1.23 ->
        # 0.009-0.011) and 118-184x (WebGPU on SwiftShader, 0.93-1.10 -> 0.005-0.008); natively the
        # same model straightens 126-282x over five seeds (tests/rectified.rs). 5x is far below all
        # of them, yet fails a round that did not train on the pairs (straightness then stays about
        # level). One-step sliced W2 ratios measured 0.17-0.22 (CPU) and 0.21-0.25 (WebGPU),
        # natively 0.17-0.26: below 0.6 of the value before.
        assert after["straightness"] * 5 < before["straightness"], (before, after)
        assert one_after["sw2"] < 0.6 * one_before["sw2"], (one_before, one_after)

        # The previews: drawn after the round (the card refreshes them when the step moved).
        d.wait_for(f"return window.flowmatch.oneStepHistory.some((p) => p.step >= {end} && p.round === 1)", 120, "a preview of the round's model",
                   progress="window.flowmatch.app.state().workDone")
        for cid in ("preview-one", "preview-many"):
            n = lit_pixels(d, cid)
            assert n > 50, f"{cid} looks empty ({n} lit pixels)"
        errs = d.js("return window.flowmatch.gpuErrors")
        assert not errs, errs


def test_reflow():
    reflow_case("webgpu")


def test_reflow_cpu():
    reflow_case("cpu")


def orange(p):
    # (255, 158, 100) at the arrows' opacity (0.22 to 0.72 by speed) over the background (11, 14, 20):
    # red above blue by 30 and above green by 15 from opacity 0.3 on; the background and the
    # learned (blue-white) arrows are never redder than blue.
    return p[0] > p[2] + 30 and p[0] > p[1] + 15


def test_exact_field():
    """The "Exact field" layer: with every other layer off and the flow stopped at t = 0.5, turning it
    on draws orange arrows in most cells of the 24x24 arrow grid (the exact field is nowhere zero
    at t = 0.5 inside the world square); off again restores the picture."""
    with session(["--enable-unsafe-webgpu"]) as d:
        d.get(URL + "?backend=webgpu&case=exact" + HASH)
        d.wait_for("const s = window.flowmatch; return s && (s.ready || s.error);", 90, "the page to start")
        d.js("const a = window.flowmatch.app; a.pause(); a.set_flow_playing(false); a.set_time(0.5);"
             " for (const l of ['particles', 'target', 'trails', 'arrows', 'heatmap']) a.set_layer(l, false);")
        d.wait_presented()
        off = canvas_pixels(d)
        assert d.js("return window.flowmatch.app.state().exactT") is None
        d.js("document.querySelector('[data-layer=exact]').click();")
        d.wait_for("const s = window.flowmatch.app.state(); return s.exactNote || s.exactT === 0.5;", 120, "the exact field at t = 0.5",
                   progress="window.flowmatch.app.state().workDone")
        assert not d.js("return window.flowmatch.app.state().exactNote")
        d.wait_presented(timeout=120)
        on = canvas_pixels(d)
        n = len(on)
        assert n > 100 and not any(orange(p) for r in off for p in r), "orange before the layer was on"
        # Cells of the arrow grid (the world square is `on`, 4% margins cut) holding orange pixels.
        cells = {(24 * (y + n // 25) // (n + 2 * (n // 25)), 24 * (x + n // 25) // (n + 2 * (n // 25)))
                 for y, r in enumerate(on) for x, p in enumerate(r) if orange(p)}
        log(f"exact field: orange in {len(cells)} of 576 arrow cells")
        assert len(cells) > 0.5 * 576, f"exact arrows in only {len(cells)} cells"
        d.js("document.querySelector('[data-layer=exact]').click();")
        d.wait_presented()
        back = canvas_pixels(d)
        assert not any(orange(p) for r in back for p in r), "orange left after the layer was turned off"
        errs = d.js("return window.flowmatch.gpuErrors")
        assert not errs, errs


def exact_flow_case(backend):
    """The "Exact flow" layer with 16 training points (`points=16`, σmin = 0, 100 Euler steps):
    with every other layer off and the flow stopped at t = 1, turning it on carries the shown
    particles' starting draw through the exact field of the 16 points; at least 95% of the 512
    land within 0.01 of one (tests/rectified.rs measured 98-99% within 1e-3 at 100 steps, the
    rest between two close points), on at least 8 different points, the caption under the layers
    says so, and orange particles are drawn; off again, none are."""
    flags = ["--enable-unsafe-webgpu"] if backend == "webgpu" else []
    with session(flags) as d:
        d.get(URL + f"?backend={backend}&case=exactflow_{backend}" + HASH.replace("nfe=16", "nfe=100") + "&points=16&sigma_min=0")
        d.wait_for("const s = window.flowmatch; return s && (s.ready || s.error);", 90, "the page to start")
        assert d.js("return window.flowmatch.backend") == backend
        d.js("const a = window.flowmatch.app; a.pause(); a.set_flow_playing(false); a.set_time(1.0);"
             " for (const l of ['particles', 'target', 'trails', 'arrows', 'heatmap', 'exact']) a.set_layer(l, false);")
        d.wait_presented()
        off = canvas_pixels(d)
        assert d.js("return window.flowmatch.app.state().exactFlow") is None
        d.js("document.querySelector('[data-layer=exactflow]').click();")
        d.wait_for("const f = window.flowmatch.app.state().exactFlow; return f && (f.note || f.landed !== null);", 180,
                   "the exact flow to land", progress="window.flowmatch.app.state().workDone")
        f = d.js("return window.flowmatch.app.state().exactFlow")
        log(f"exact flow ({backend}): {f}")
        assert not f["note"], f
        assert (f["particles"], f["points"], f["steps"], f["stepsDone"]) == (512, 16, 100, 100), f
        assert f["landed"] >= 0.95 * 512 and f["pointsHit"] >= 8, f
        # The panel (captions) is redrawn every 250 ms: wait for it to show the landed count.
        d.wait_for("const e = document.getElementById('exactflow-note'); return !e.hidden && e.textContent.includes('landed');", 30,
                   "the exact flow's caption")
        caption = d.js("const e = document.getElementById('exactflow-note'); return e.hidden ? '' : e.textContent")
        assert f"{f['landed']} of 512 particles landed" in caption, caption
        d.wait_presented(timeout=120)
        on = canvas_pixels(d)
        assert not any(orange(p) for r in off for p in r), "orange before the layer was on"
        lit = sum(orange(p) for r in on for p in r)
        assert lit > 0, "no orange particles drawn"
        d.js("document.querySelector('[data-layer=exactflow]').click();")
        d.wait_presented()
        assert not any(orange(p) for r in canvas_pixels(d) for p in r), "orange left after the layer was turned off"
        assert d.js("return window.flowmatch.app.state().exactFlow") is None
        errs = d.js("return window.flowmatch.gpuErrors")
        assert not errs, errs


def test_exact_flow():
    exact_flow_case("webgpu")


def test_exact_flow_cpu():
    exact_flow_case("cpu")


TESTS = {"quality": test_quality, "heatmap": test_heatmap, "reflow": test_reflow, "reflow_cpu": test_reflow_cpu, "exact": test_exact_field,
         "exactflow": test_exact_flow, "exactflow_cpu": test_exact_flow_cpu}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e"))
