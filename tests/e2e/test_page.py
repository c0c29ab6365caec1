"""End-to-end tests of the demo page (index.html) in headless Chromium, driven over WebDriver.

1. WebGPU (--enable-unsafe-webgpu, SwiftShader here): the page trains a few hundred steps, the loss
   goes down, and the canvas' pixels show the particles on the two moons and not in the gap
   between them. Screenshot: artifacts/e2e-webgpu.png.
2. No WebGPU (no flag: no adapter): the notice is shown and the CPU backend trains a run of 2000
   steps, rests at its end with a note (and reads the final model's quality), and Train more starts
   another; changing the solver keeps the run, changing the width restarts it; Reset with the same seed
   replays the same losses. Screenshot: artifacts/e2e-cpu.png.
3. URL hash: a hash with every field set round-trips (address bar, controls, App.query()); a hash
   with invalid values names each bad field, keeps its default and applies the rest.
4. preset: the preset menu lists exactly presets_json()'s figures; choosing one applies its
   configuration over the defaults (hash and controls follow), its views (layer checkboxes) and
   names its paper with a link; training goes on; changing a setting by hand leaves the preset.

Run by tests/e2e/run.sh, which builds the wasm package and serves the repository root; the page's
URL comes in FLOWMATCH_E2E_URL. `python3 tests/e2e/test_page.py [webgpu|cpu|hash|preset ...]` runs some.
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import decode_png, log, run_tests, save, session  # noqa: E402

URL = os.environ.get("FLOWMATCH_E2E_URL", "http://127.0.0.1:8000/")
# Steps before the loss check, and before the pixel check (SwiftShader trains ~20-25 steps/s with
# the page's software-adapter defaults; moons are recognisable after ~1000 steps).
LOSS_STEPS = int(os.environ.get("FLOWMATCH_E2E_STEPS", "300"))
PIXEL_STEPS = int(os.environ.get("FLOWMATCH_E2E_PIXEL_STEPS", "1200"))
STATE = "return window.flowmatch"


def wait_ready(d, timeout=90):
    d.wait_for("const s = window.flowmatch; return s && (s.ready || s.error);", timeout, "the page to start")
    s = d.js("const s = window.flowmatch; return {ready: s.ready, error: s.error, backend: s.backend, adapter: s.adapter, present: s.present}")
    assert s["ready"] and not s["error"], f"page failed to start: {s}"
    return s


# ---- moons geometry (shared/spec/datasets.md): arcs of radius 2, noise 0.1 ------------------------

def moon_distance(x, y):
    """Distance from (x, y) to the nearer of the two noise-free moon arcs."""
    def arc(cx, cy, upper):
        inside = (y >= cy) if upper else (y <= cy)
        if inside:
            return abs(math.hypot(x - cx, y - cy) - 2.0)
        ends = [(cx + 2, cy), (cx - 2, cy)]
        return min(math.hypot(x - ex, y - ey) for ex, ey in ends)
    return min(arc(-1.0, -0.5, True), arc(1.0, 0.5, False))


def particle_pixels(png, rect, extent):
    """World coordinates of the canvas pixels that show a particle (saturated colour; the target
    samples are grey, the background near-black)."""
    w, h, ch, px = decode_png(png)
    left, top, cw, chh = (int(round(rect[k])) for k in ("left", "top", "width", "height"))
    unit = 2.0 * extent / min(cw, chh)
    cx, cy = left + cw / 2.0, top + chh / 2.0
    out = []
    for yy in range(max(top, 0), min(top + chh, h)):
        row = yy * w * ch
        for xx in range(max(left, 0), min(left + cw, w)):
            i = row + xx * ch
            r, g, b = px[i], px[i + 1], px[i + 2]
            hi, lo = max(r, g, b), min(r, g, b)
            if hi > 90 and hi - lo > 60:
                out.append(((xx + 0.5 - cx) * unit, (cy - yy - 0.5) * unit))
    return out


def test_webgpu():
    with session(["--enable-unsafe-webgpu"]) as d:
        d.get(URL + "?backend=webgpu&case=webgpu#dataset=moons")
        s = wait_ready(d)
        log(f"backend {s['backend']} ({s['adapter']}), presented via {s['present']}")
        assert s["backend"] == "webgpu", f"expected the WebGPU backend with --enable-unsafe-webgpu, got {s}"
        t0 = time.time()
        d.wait_for(f"const s = window.flowmatch; return s.error || s.stepsRead >= {LOSS_STEPS};", 120, f"{LOSS_STEPS} training steps", progress="window.flowmatch.stepsRead")
        s = d.js(STATE + ".app.state()")
        assert not s["error"], s["error"]
        log(f"{s['stepsRead']} steps read in {time.time() - t0:.1f}s ({s['stepsPerSec']:.1f} steps/s); "
            f"loss {s['lossStart']:.3f} -> {s['lossRecent']:.3f}")
        assert math.isfinite(s["lossStart"]) and math.isfinite(s["lossRecent"]), s
        assert s["lossRecent"] < 0.85 * s["lossStart"], f"loss did not go down: {s['lossStart']} -> {s['lossRecent']}"
        d.wait_for(f"const s = window.flowmatch; return s.error || s.stepsRead >= {PIXEL_STEPS};", 120, f"{PIXEL_STEPS} training steps", progress="window.flowmatch.stepsRead")
        s = d.js(STATE + ".app.state()")
        assert not s["error"], s["error"]
        log(f"{s['stepsRead']} steps after {time.time() - t0:.1f}s; loss {s['lossRecent']:.3f}")

        # Freeze the model, show t = 1 with the newest weights, then read the canvas.
        d.js("const a = window.flowmatch.app; a.pause(); a.set_time(1); a.set_layer('trails', false); a.set_layer('arrows', false);")
        d.wait_for("const s = window.flowmatch.app.state(); return s.trajStep === s.step;", 30, "the flow to be integrated with the final weights", progress="window.flowmatch.app.state().workDone")
        d.wait_presented()
        png = d.screenshot()
        save("e2e-webgpu.png", png)
        rect = d.js("const r = document.getElementById('flow').getBoundingClientRect(); return {left: r.left, top: r.top, width: r.width, height: r.height}")
        pts = particle_pixels(png, rect, s["extent"])
        assert len(pts) > 500, f"too few particle pixels on the canvas ({len(pts)}): is anything drawn?"
        # Fractions of particle pixels: on the moons (within 0.45 of an arc), far from both (> 0.7),
        # and in the gap around the origin (r < 0.5). N(0, I) pushed through an untrained model
        # gives about 0.56 / 0.19 / 0.12; a trained one about 0.8 / 0.07 / 0.04.
        near = sum(1 for p in pts if moon_distance(*p) < 0.45) / len(pts)
        far = sum(1 for p in pts if moon_distance(*p) > 0.7) / len(pts)
        gap = sum(1 for x, y in pts if math.hypot(x, y) < 0.5) / len(pts)
        log(f"{len(pts)} particle pixels: {near:.0%} on the moons, {far:.0%} far from them, {gap:.1%} in the central gap")
        assert near > 0.72, f"only {near:.0%} of particle pixels lie on the moons"
        assert far < 0.12, f"{far:.0%} of particle pixels are far from both moons"
        assert gap < 0.07, f"{gap:.1%} of particle pixels sit in the gap between the moons"


def test_cpu_fallback():
    with session([]) as d:
        d.get(URL + "?case=cpu#dataset=moons")
        s = wait_ready(d)
        assert s["backend"] == "cpu", f"expected the CPU fallback without WebGPU, got {s}"
        notice = d.js("const n = document.getElementById('notice'); return !n.hidden && n.getBoundingClientRect().height > 0 ? n.textContent : null")
        assert notice and "WebGPU" in notice, f"no visible notice about WebGPU: {notice!r}"
        log(f"notice: {notice[:90]}...")
        # The readout says why in the browser's terms, not wgpu's list of native backends it was
        # built without ("vulkan support not compiled in, ...").
        reason = d.js("return document.getElementById('backend-reason').textContent")
        assert reason.startswith("CPU: no WebGPU adapter: ") and "compiled in" not in reason, f"backend reason: {reason!r}"
        log(f"backend reason: {reason}")
        # A run: 2000 steps (the command line's default), the learning rate decaying to 0 over
        # them (cosine); then training rests and says so, and Train more starts another run.
        d.wait_for("const s = window.flowmatch.app.state(); return s.error || s.runDone;", 120, "the run of 2000 steps to end", progress="window.flowmatch.app.state().step")
        s1 = d.js(STATE + ".app.state()")
        assert (s1["step"], s1["runEnd"], s1["training"], s1["error"]) == (2000, 2000, False, None), s1
        assert math.isfinite(s1["loss"]), s1
        shown = d.js("const n = document.getElementById('run-note'); return [!n.hidden && n.getBoundingClientRect().height > 0 ? n.textContent : null, document.getElementById('play').textContent]")
        assert shown[0] and "2000 steps" in shown[0] and "decayed to 0" in shown[0] and shown[1] == "Train more", f"the run's end is not explained: {shown}"
        log(f"the run ends at step 2000 and rests: {shown[0][:70]}...")
        d.wait_for("return (window.flowmatch.sw2History || []).some((p) => p.step === 2000)", 60, "a quality reading of the run's final weights")
        time.sleep(0.5)
        assert d.js(STATE + ".app.state().step") == 2000, "training went on past the run's end"
        d.js("document.getElementById('play').click()")
        d.wait_for("return window.flowmatch.app.state().step > 2000", 30, "Train more to train another run")
        s2 = d.js(STATE + ".app.state()")
        assert s2["runEnd"] == 4000 and not s2["runDone"], f"Train more did not start a run of 2000 more steps: {s2}"
        assert d.js("return document.getElementById('run-note').hidden"), "the run's note stays up while training"
        log(f"Train more: another run to step {s2['runEnd']}, {s2['stepsPerSec']:.0f} steps/s")

        # Through the controls: a solver change applies without retraining; a model change restarts.
        change = "const e = document.getElementById('f-' + arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('change'));"
        before = d.js(STATE + ".app.state().step")
        d.js(change, "solver", "rk4")
        after = d.js(STATE + ".app.state().step")
        assert after >= before, f"changing the solver restarted training ({before} -> {after})"
        assert d.js("return window.flowmatch.app.get('solver')") == "rk4"
        # The change and the read in one script: between two WebDriver calls the restarted small
        # model can train past the old step count on a loaded machine (seen: 1494 -> 4380).
        restarted = d.js(change + " return " + STATE.removeprefix("return ") + ".app.state().step;", "width", "16")
        assert restarted < after, f"changing the width did not restart training ({after} -> {restarted})"
        assert "width=16" in d.js("return location.hash"), "the hash does not follow the controls"

        # Reset with the same seed replays the same run.
        runs = []
        for _ in range(2):
            runs.append(d.js("const a = window.flowmatch.app; a.pause(); a.reset(); for (let i = 0; i < 5; i++) a.step_once(); return Array.from(a.losses());"))
        assert len(runs[0]) == 10 and runs[0] == runs[1], f"reset did not replay the run: {runs}"
        log(f"reset replays the same 5 losses: {[round(x, 4) for x in runs[0][1::2]]}")
        d.js("window.flowmatch.app.play()")
        d.wait_presented()
        save("e2e-cpu.png", d.screenshot())


# A value other than the default for every field (tol included; the test fails if a field lacks
# one or has its default); the round trip then checks that
# those that act on the page reach the engine (model size, particles, solver tolerance), not only
# the controls. (`steps` and `samples` are command-line settings carried in the link.)
HASH_VALUES = {
    "dataset": "8gaussians", "source": "circles", "width": "24", "depth": "4", "activation": "tanh",
    "lr": "0.005", "schedule": "constant", "batch": "64", "steps": "1234", "seed": "7", "sigma_min": "0.01", "path": "cosine",
    "coupling": "ot", "weight_decay": "0.001", "solver": "dopri5", "nfe": "48", "tol": "0.0001",
    "samples": "500", "particles": "700", "t_mean": "0.5", "t_std": "0.8", "t_u": "2", "label_dropout": "0.2", "noise": "0.5",
    "reflow_pairs": "777", "reflow_steps": "55", "points": "5000",
}
# Settings the CPU backend cannot do (it refuses them by name): their links round-trip on WebGPU
# in test_generation.py; here they keep their defaults.
WEBGPU_FIELDS = {"t_sampling", "objective", "conditional", "class", "guidance", "sampler"}
# The packed parameters of the width-24, depth-4 MLP on (x, y, t): 3·24+24, 3 × (24·24+24), 24·2+2,
# and the output bias padded to 4 floats (`ModelShape::param_len`).
HASH_PARAMS = 3 * 24 + 24 + 3 * (24 * 24 + 24) + 24 * 2 + 4


def flow_samples(d):
    """The particles at t = 1 once the shown flow is integrated with the current weights."""
    d.wait_for("const s = window.flowmatch.app.state(); return s.trajStep !== null && s.trajStep === s.step;", 60,
               "the flow to be integrated with the current weights", progress="window.flowmatch.app.state().workDone")
    return d.js_async("window.flowmatch.app.samples().then((a) => done(Array.from(a)), (e) => done(String(e)))")


def test_hash():
    with session([]) as d:
        d.get(URL + "?case=defaults")
        wait_ready(d)
        defaults = d.js("return window.flowmatch.app.query()")
        pairs = [kv.split("=", 1) for kv in defaults.split("&")]
        missing = [k for k, _ in pairs if k not in HASH_VALUES and k not in WEBGPU_FIELDS]
        assert not missing, f"fields without a test value in HASH_VALUES (give each one a value other than its default): {missing}"
        same = [k for k, v in pairs if HASH_VALUES.get(k) == v]
        assert not same, f"the test's values equal the defaults for {same}: the round trip would not show them"
        full = "&".join(f"{k}={HASH_VALUES.get(k, v)}" for k, v in pairs)

        d.get(URL + "?case=roundtrip#" + full)
        wait_ready(d)
        got = d.js("return {hash: location.hash, query: window.flowmatch.app.query(), errors: window.flowmatch.hashErrors,"
                   " controls: Object.fromEntries([...document.querySelectorAll('[data-field]')].map(e => [e.dataset.field, e.value]))}")
        assert got["errors"] == [], f"a valid hash was rejected: {got['errors']}"
        assert got["hash"] == "#" + full, f"hash did not round-trip:\n  sent {full}\n  got  {got['hash'][1:]}"
        assert got["query"] == full, got["query"]
        for k, v in pairs:
            want = HASH_VALUES.get(k, v)
            assert got["controls"].get(k) == want, f"control for {k} shows {got['controls'].get(k)!r}, hash says {want!r}"
        log(f"hash with all {len(pairs)} fields round-trips (address bar, controls, App.query)")
        # ... and the engine runs with them: its model has the width and depth of the hash, its
        # flow the particles, and the tolerance acts (the same weights integrated by dopri5 at
        # tol 0.1 end elsewhere than at 1e-4, and 1e-4 again gives the first result exactly).
        # A freshly initialised MLP's field is nearly straight: dopri5 meets both tolerances in
        # the same steps. Some training bends it.
        d.wait_for("const s = window.flowmatch; return s.error || s.stepsRead >= 300", 120, "300 training steps", progress="window.flowmatch.stepsRead")
        d.js("window.flowmatch.app.pause()")
        n_params = d.js_async("window.flowmatch.app.params().then((p) => done(p.length), (e) => done(String(e)))")
        assert n_params == HASH_PARAMS, f"the model has {n_params} parameters, not those of width 24 and depth 4 ({HASH_PARAMS})"
        tight = flow_samples(d)
        assert isinstance(tight, list) and len(tight) == 2 * 700, f"expected 700 particles at t = 1, got {tight if isinstance(tight, str) else len(tight) // 2}"
        d.js("window.flowmatch.app.set('tol', '0.1')")
        loose = flow_samples(d)
        d.js("window.flowmatch.app.set('tol', '0.0001')")
        again = flow_samples(d)
        moved = max(abs(a - b) for a, b in zip(tight, loose))
        assert moved > 1e-4, f"tol 0.1 and tol 0.0001 give the same samples (largest difference {moved}): tol does not act"
        assert again == tight, "tol 0.0001 again does not reproduce its samples"
        log(f"the engine has {n_params} parameters and 700 particles; tol 0.1 moves the samples by up to {moved:.3f}")

        d.get(URL + "?case=invalid#width=abc&depth=4&solver=rk5&lr=0.02")
        wait_ready(d)
        got = d.js("""const a = window.flowmatch.app, box = document.getElementById('hash-errors');
            return {errors: window.flowmatch.hashErrors, box: box.hidden ? null : box.textContent,
                    widthError: document.getElementById('err-width').hidden ? null : document.getElementById('err-width').textContent,
                    widthInvalid: document.getElementById('f-width').getAttribute('aria-invalid'),
                    width: a.get('width'), depth: a.get('depth'), lr: a.get('lr'), solver: a.get('solver'), hash: location.hash}""")
        fields = sorted(e["field"] for e in got["errors"])
        assert fields == ["solver", "width"], f"expected errors for width and solver, got {got['errors']}"
        assert got["box"] and "width" in got["box"] and "solver" in got["box"], f"the page does not name the bad fields: {got['box']!r}"
        assert got["widthError"] and "abc" in got["widthError"] and got["widthInvalid"] == "true", got
        assert (got["depth"], got["lr"]) == ("4", "0.02"), f"valid fields were not kept: {got}"
        width = d.js("return new URLSearchParams(window.flowmatch.app.defaults()).get('width')")
        assert got["width"] == width and got["solver"] == "euler", f"bad fields did not fall back to the defaults (width {width}): {got}"
        assert "depth=4" in got["hash"] and f"width={width}" in got["hash"], got["hash"]
        log(f"invalid hash: {' | '.join(e['message'] for e in got['errors'])}")


def test_preset():
    with session([]) as d:  # the CPU backend: the menu does not depend on the engine
        d.get(URL)
        wait_ready(d)
        presets = d.js("return import('./pkg/flowmatch.js').then((m) => JSON.parse(m.presets_json()))")
        options = d.js("return [...document.querySelectorAll('#preset option')].map((o) => o.value).filter((v) => v)")
        assert options == [p["name"] for p in presets], f"the menu {options} is not presets_json()'s list"
        p = next(p for p in presets if p["name"] == "otcfm-8gaussians-moons")
        d.js("const s = document.getElementById('preset'); s.value = 'otcfm-8gaussians-moons'; s.dispatchEvent(new Event('change'));")
        got = d.js("""const app = window.flowmatch.app, about = document.getElementById('preset-about');
            return {source: app.get('source'), coupling: app.get('coupling'), batch: app.get('batch'), width: app.get('width'),
                    hash: location.hash, control: document.querySelector('[data-field=coupling]').value,
                    layers: Object.fromEntries([...document.querySelectorAll('#layers input')].map((b) => [b.dataset.layer, b.checked])),
                    about: about.textContent, link: about.querySelector('a') && about.querySelector('a').href,
                    step: window.flowmatch.step, error: window.flowmatch.error};""")
        assert got["error"] is None, got
        assert (got["source"], got["coupling"], got["batch"]) == ("8gaussians", "ot", "128"), f"the preset's configuration: {got}"
        defaults = d.js("return Object.fromEntries(new URLSearchParams(window.flowmatch.app.defaults()))")
        assert got["width"] == defaults["width"], f"fields the preset does not name should be the defaults: {got['width']} vs {defaults['width']}"
        assert "coupling=ot" in got["hash"] and got["control"] == "ot", got
        assert got["layers"]["trajectories"] and got["layers"]["target"] and not got["layers"]["field"], got["layers"]
        assert p["paper"] in got["about"] and got["link"] == p["url"], f"the paper is not named: {got['about']!r} {got['link']}"
        log(f"preset {p['name']}: {got['hash']}; layers {got['layers']}; {got['about'][:140]}...")
        d.wait_for("return window.flowmatch.step > arguments[0] + 5 || window.flowmatch.error", 60, "training after the preset", args=(got["step"],),
                   progress="window.flowmatch.step")
        assert d.js("return window.flowmatch.error") is None
        d.js("const s = document.querySelector('[data-field=solver]'); s.value = 'rk4'; s.dispatchEvent(new Event('change'));")
        left = d.js("return {value: document.getElementById('preset').value, about: document.getElementById('preset-about').textContent, solver: window.flowmatch.app.get('solver')}")
        assert left == {"value": "", "about": "", "solver": "rk4"}, f"a setting changed by hand should leave the preset: {left}"


TESTS = {"webgpu": test_webgpu, "cpu": test_cpu_fallback, "hash": test_hash, "preset": test_preset}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e"))
