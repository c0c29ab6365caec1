"""End-to-end tests of issue 19's page controls (class-conditional training, classifier-free
guidance, the SDE sampler, MeanFlow) in headless Chromium over WebDriver.

1. conditional (WebGPU, SwiftShader here): a link with conditional=on&class=3 on 8gaussians round-trips
   and trains; the class picker offers all and the dataset's 8 classes only; the samples gather at
   centre 3 (the class picker acts); trained on (600 steps), the guidance slider re-samples them live
   (the same weights): w = 4 tightens them, w = 2 moves their mean outward; the heat map's and the
   reading's notes name the class; the SDE noise slider moves each particle but keeps them at centre
   3; a drawing in two brush colours trains one class per colour.
   Then (same browser) objective=meanflow shows the 1/2/4/64-step buttons; "1 step" sets nfe = 1 and
   the shown flow is one jump.
2. cpu: the CPU backend cannot train with labels: a link asking for conditional=on names the field,
   says it needs WebGPU, and runs with it off (never silently ignored).

Run by tests/e2e/run.sh (`tests/e2e/run.sh test_generation.py [conditional|cpu]`).
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import log, run_tests, session  # noqa: E402
from test_page import URL, WEBGPU_FIELDS, flow_samples, wait_ready  # noqa: E402

# 8gaussians (shared/spec/datasets.md): centre k at 4·(cos kπ/4, sin kπ/4), class k.
CENTRES = [(4 * math.cos(k * math.pi / 4), 4 * math.sin(k * math.pi / 4)) for k in range(8)]
# The WebGPU-only settings in links (test_page.test_hash round-trips the others on the CPU).
# Trained as tests/generation.rs trains its conditional model (see the guidance check): label
# dropout 0.1, uniform times, a cosine schedule over 2000 steps; t_sampling goes to logit-normal
# before the link round trip.
CONDITIONAL = {"dataset": "8gaussians", "conditional": "on", "class": "3", "label_dropout": "0.1",
               "t_sampling": "uniform", "lr": "0.01", "solver": "euler", "steps": "2000"}
MEANFLOW = {"objective": "meanflow", "solver": "euler", "nfe": "2"}
# 400 steps put 100% of the class-3 samples at centre 3 (SwiftShader, load 17 on 2 cores); 200 keep a margin.
STEPS = int(os.environ.get("FLOWMATCH_E2E_GEN_STEPS", "200"))
# Steps before the guidance check (see there; 200 steps took 10 s at load 7).
GUIDED_STEPS = 600
# Euler steps of the guidance check, as tests/generation.rs (the page's 16 gave the same numbers
# within 0.03 at w = 1-8).
GUIDED_NFE = 50
SPREAD_MAX = 0.5
OUTWARD_MIN = 0.1
# Steps on a two-colour drawing before its classes are checked, and the share of each class's
# samples that must lie on its stroke's side (measured 100% for both classes, seeds default and 5;
# tests/generation.rs measures the same from scratch on the CPU twin).
DRAWING_STEPS = 200
DRAWING_SHARE = 0.8


def nearest(p):
    return min(range(8), key=lambda k: math.hypot(p[0] - CENTRES[k][0], p[1] - CENTRES[k][1]))


def points(flat):
    assert isinstance(flat, list), f"no samples: {flat}"
    return list(zip(flat[0::2], flat[1::2]))


def share_of(pts, k):
    return sum(1 for p in pts if nearest(p) == k) / len(pts)


def slide(d, field, value):
    """Moves the field's slider to `value` as a person would (an input event)."""
    d.js("const r = document.getElementById('r-' + arguments[0]); r.value = arguments[1]; r.dispatchEvent(new Event('input'));", field, value)
    got = d.js("return window.flowmatch.app.get(arguments[0])", field)
    assert float(got) == float(value), f"the {field} slider set {got}, not {value}"


def spread_outward(pts):
    """(RMS distance of the samples to their own mean, the mean's component along centre 3's direction)."""
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    spread = math.sqrt(sum((p[0] - mx) ** 2 + (p[1] - my) ** 2 for p in pts) / n)
    return spread, (mx * CENTRES[3][0] + my * CENTRES[3][1]) / 4


def train_to(d, steps):
    """Trains on until `steps` training steps were read, then pauses."""
    d.js(f"const a = window.flowmatch.app; if (a.step_limit() && a.step_limit() < {steps}) a.set_step_limit(0); a.play()")
    d.wait_for(f"const s = window.flowmatch; return s.error || s.stepsRead >= {steps}", 150, f"{steps} training steps", progress="window.flowmatch.stepsRead")
    d.js("window.flowmatch.app.pause()")
    assert d.js("return window.flowmatch.error") is None
    log(f"trained to step {d.js('return window.flowmatch.app.state().step')}")


def hash_of(values):
    return "&".join(f"{k}={v}" for k, v in values.items())


def round_trips(d, values):
    """The page's link holds `values` (each one reached the configuration, no error)."""
    got = d.js("return {errors: window.flowmatch.hashErrors, query: window.flowmatch.app.query()}")
    assert got["errors"] == [], f"a valid link was rejected: {got['errors']}"
    pairs = dict(kv.split("=", 1) for kv in got["query"].split("&"))
    wrong = {k: (v, pairs.get(k)) for k, v in values.items() if pairs.get(k) != v}
    assert not wrong, f"link fields did not round-trip (sent, got): {wrong}"


def test_conditional():
    with session(["--enable-unsafe-webgpu"]) as d:
        d.get(URL + "?backend=webgpu&case=conditional#" + hash_of(CONDITIONAL))
        s = wait_ready(d)
        assert s["backend"] == "webgpu", s
        round_trips(d, CONDITIONAL)
        offered = d.js("return [...document.querySelectorAll('[data-field=class] option')].filter((o) => !o.hidden).map((o) => o.value)")
        assert offered == ["all"] + [str(k) for k in range(8)], f"the class picker offers {offered}"
        d.wait_for(f"const s = window.flowmatch; return s.error || s.stepsRead >= {STEPS}", 150, f"{STEPS} training steps", progress="window.flowmatch.stepsRead")
        assert d.js("return window.flowmatch.error") is None
        d.js("window.flowmatch.app.pause()")
        one = points(flow_samples(d))
        at3 = share_of(one, 3)
        # Unconditional samples would put ~1/8 at each centre.
        assert at3 > 0.6, f"class 3 was picked but only {at3:.0%} of the samples are nearest centre 3"
        d.js("const s = document.querySelector('[data-field=class]'); s.value = 'all'; s.dispatchEvent(new Event('change'));")
        every = points(flow_samples(d))
        assert share_of(every, 3) < 0.4, f"class all still gathers {share_of(every, 3):.0%} at centre 3"
        d.js("const s = document.querySelector('[data-field=class]'); s.value = '3'; s.dispatchEvent(new Event('change'));")

        # Guidance (slider): the same weights re-sampled at once with the guided field; the samples
        # tighten and their mean moves outward (issue 19). Measured in this browser (SwiftShader,
        # load 7-16; spread = RMS distance to the samples' mean, out = the mean along centre 3's
        # direction), trained as below to ~660 steps, seeds default / 5: w = 1 -> 2 -> 4 -> 8:
        # spread 0.66 -> 0.25 -> 0.10 -> 0.03 / 0.65 -> 0.18 -> 0.04 -> 0.001, out 3.88 -> 4.34 ->
        # 4.42 -> 4.11 / 4.18 -> 4.46 -> 4.27 -> 3.77. Strong guidance collapses this small
        # model's samples towards one point whose outward shift varies (+0.05 to +1.76 over ten
        # models of 450-1500 steps, other recipes included) and at w = 8 is sometimes inward; at
        # w = 2 the mean moved out by +0.20 to +0.69 in all eight models where it was measured
        # (before ~450 steps it can move in: -0.48 at w = 4 after 228 steps).
        # tests/generation.rs checks w = 4 on the CPU twin (seeds 0-5: out by 0.33-1.07). Bars:
        # spread at w = 4 below half of w = 1's (measured ratios 0.01-0.15 for this recipe), the
        # mean at w = 2 out by at least OUTWARD_MIN = 0.1 (half the smallest measured shift).
        train_to(d, GUIDED_STEPS)
        d.js(f"window.flowmatch.app.set('nfe', '{GUIDED_NFE}')")
        one = points(flow_samples(d))
        slide(d, "guidance", "2")
        mild = points(flow_samples(d))
        slide(d, "guidance", "4")
        guided = points(flow_samples(d))
        assert all(math.isfinite(v) for p in mild + guided for v in p), "guidance gave non-finite samples"
        (s1, o1), (s2, o2), (s4, o4) = spread_outward(one), spread_outward(mild), spread_outward(guided)
        assert s4 < SPREAD_MAX * s1, f"guidance 4 should shrink the spread: {s1:.3f} -> {s4:.3f}"
        assert o2 > o1 + OUTWARD_MIN, f"guidance 2 should move the mean outward: {o1:.3f} -> {o2:.3f} along centre 3's direction"
        # What the heat map and the sliced W2 reading measure is said on the page (engine::notes).
        notes = d.js("return {heat: document.getElementById('heatmap-note').textContent, shown: !document.getElementById('heatmap-note').hidden,"
                     " quality: document.getElementById('quality-about').textContent}")
        assert notes["shown"] and "class 3's guided flow (w = 4)" in notes["heat"] and "class 3's target points" in notes["quality"], notes
        slide(d, "guidance", "1")
        d.js("window.flowmatch.app.set('nfe', '16')")

        # The SDE (Euler–Maruyama, same marginals): every particle's path changes, the samples stay at centre 3.
        d.js("const s = document.querySelector('[data-field=sampler]'); s.value = 'sde'; s.dispatchEvent(new Event('change'));")
        slide(d, "noise", "1")
        sde = points(flow_samples(d))
        moved = sum(math.hypot(a[0] - b[0], a[1] - b[1]) for a, b in zip(one, sde)) / len(one)
        assert moved > 0.05, f"noise 1 hardly moved the samples (mean {moved:.4f})"
        assert share_of(sde, 3) > 0.6, f"the SDE's samples left centre 3: {share_of(sde, 3):.0%}"
        assert d.js("return window.flowmatch.error") is None
        drawing_classes(d)

        # The link round-trips every WebGPU-only setting (test_page.WEBGPU_FIELDS) at a value other than its default.
        slide(d, "guidance", "2.5")
        d.js("const s = document.querySelector('[data-field=t_sampling]'); s.value = 'logit-normal'; s.dispatchEvent(new Event('change'));")
        link = d.js("return window.flowmatch.app.query()")
        values = dict(kv.split("=", 1) for kv in link.split("&"))
        defaults = dict(kv.split("=", 1) for kv in d.js("return window.flowmatch.app.defaults()").split("&"))
        same = [k for k in WEBGPU_FIELDS - {"objective"} if values[k] == defaults[k]]
        assert not same, f"{same} still at their defaults: the round trip would not show them"
        d.get(URL + "?backend=webgpu&case=conditional-link#" + link)
        wait_ready(d)
        round_trips(d, values)
        log(f"{STEPS} steps: {at3:.0%} at centre 3 (class all: {share_of(every, 3):.0%}); {GUIDED_STEPS} steps, guidance 1 -> 2 -> 4: spread {s1:.3f} -> {s2:.3f} -> {s4:.3f}, outward {o1:.2f} -> {o2:.2f} -> {o4:.2f}; "
            f"SDE noise 1: particles moved {moved:.2f} on average, {share_of(sde, 3):.0%} at centre 3")
        meanflow(d)  # in the same browser: a WebGPU start on SwiftShader is dear


def stats(pts):
    """(spread: RMS distance to the samples' own mean, outward: the mean's component along centre 3's direction)."""
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    spread = math.sqrt(sum((p[0] - mx) ** 2 + (p[1] - my) ** 2 for p in pts) / n)
    u = (CENTRES[3][0] / 4, CENTRES[3][1] / 4)
    return spread, mx * u[0] + my * u[1]


def drawing_classes(d):
    """A drawing in two brush colours trains the conditional model with one class per colour: the
    brush-colour radios are there, the drawing is accepted as a labelled target, and each class's
    samples move to its own stroke (colour 1 upper left, colour 2 lower right)."""
    radios = d.js("return document.querySelectorAll('#brush-colours input[type=radio]').length")
    assert radios == d.js("return import('./pkg/flowmatch.js').then((m) => m.brush_classes())") == 4, f"{radios} brush colours"
    d.js("const a = window.flowmatch.app; a.clear_drawing(); document.querySelector('#brush-colours input[value=\"0\"]').click();"
         " a.draw_stroke(-3, 2, -1, 2, 0.4, false); document.querySelector('#brush-colours input[value=\"1\"]').click();"
         " a.draw_stroke(1, -2, 3, -2, 0.4, false); a.commit_drawing();")
    info = d.js("return window.flowmatch.app.target_info()")
    assert info["custom"] and info["kind"] == "drawing", info
    bad = d.js("try { window.flowmatch.app.set_brush_class(4); return null; } catch (e) { return String(e.message || e); }")
    assert bad and "0 to 3" in bad, f"a fifth colour should be refused: {bad}"
    train_to(d, d.js("return window.flowmatch.stepsRead") + DRAWING_STEPS)
    shares = []
    for k in [0, 1]:
        d.js(f"const s = document.querySelector('[data-field=class]'); s.value = '{k}'; s.dispatchEvent(new Event('change'));")
        pts = points(flow_samples(d))
        shares.append(sum(1 for p in pts if (p[1] > p[0]) == (k == 0)) / len(pts))
    log(f"drawing in two colours, {DRAWING_STEPS} more steps: class 0 {shares[0]:.0%} upper left, class 1 {shares[1]:.0%} lower right")
    assert min(shares) >= DRAWING_SHARE, f"each class's samples should be on its stroke's side of y = x: {shares}"
    d.js("const s = document.querySelector('[data-field=class]'); s.value = '3'; s.dispatchEvent(new Event('change'));")


def meanflow(d):
    """objective=meanflow: the step buttons, one jump."""
    d.get(URL + "?backend=webgpu&case=meanflow#" + hash_of(MEANFLOW))
    wait_ready(d)
    round_trips(d, MEANFLOW)
    assert d.js("return !document.getElementById('meanflow-steps').hidden"), "the MeanFlow step buttons are hidden with objective=meanflow"
    d.js("window.flowmatch.app.pause(); document.querySelector('#meanflow-steps [data-nfe=\"1\"]').click()")
    d.wait_for("const s = window.flowmatch.app.state(); return s.odeSteps === 1 && s.trajStep === s.step", 60, "the one-jump flow", progress="window.flowmatch.app.state().workDone")
    got = d.js("return {nfe: window.flowmatch.app.get('nfe'), pressed: document.querySelector('#meanflow-steps [data-nfe=\"1\"]').getAttribute('aria-pressed'), error: window.flowmatch.error}")
    assert got == {"nfe": "1", "pressed": "true", "error": None}, got
    d.js("const s = document.querySelector('[data-field=objective]'); s.value = 'fm'; s.dispatchEvent(new Event('change'));")
    assert d.js("return document.getElementById('meanflow-steps').hidden"), "the step buttons stay with objective=fm"
    log("objective=meanflow: step buttons shown, 1 step -> one jump; hidden again with fm")


def test_cpu():
    with session([]) as d:
        d.get(URL + "?backend=cpu&case=gen-cpu#dataset=8gaussians&conditional=on&width=24")
        wait_ready(d)
        got = d.js("return {errors: window.flowmatch.hashErrors, conditional: window.flowmatch.app.get('conditional'), width: window.flowmatch.app.get('width'),"
                   " shown: document.getElementById('hash-errors').textContent}")
        assert [e["field"] for e in got["errors"]] == ["conditional"], got
        assert "WebGPU" in got["errors"][0]["message"] and "WebGPU" in got["shown"], got
        assert (got["conditional"], got["width"]) == ("off", "24"), f"the rest of the link should apply: {got}"
        d.js("const s = document.querySelector('[data-field=objective]'); s.value = 'meanflow'; s.dispatchEvent(new Event('change'));")
        err = d.js("const e = document.getElementById('err-objective'); return e.hidden ? null : e.textContent")
        assert err and "WebGPU" in err and d.js("return window.flowmatch.app.get('objective')") == "fm", err
        log(f"CPU backend: {got['errors'][0]['message']}")


TESTS = {"conditional": test_conditional, "cpu": test_cpu}

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e-generation"))
