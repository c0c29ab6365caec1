"""End-to-end tests of the embeddable widget (<flow-matching-demo>, www/widget.js) in headless
Chromium with WebGPU (SwiftShader), every page served with a strict Content-Security-Policy.

The test starts its own server (stdlib http.server on a free 127.0.0.1 port, serving the repository
root) that adds the header
    Content-Security-Policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'
to every response, and serves a few test pages from memory under /__test/ (no inline script or
style: they would be blocked). A first script on each page records `securitypolicyviolation`
events; the browser log is checked too.

1. blog: www/blog-example.html — each of the three figures, scrolled into view, trains (its step
   counter advances, the loss is finite) and renders (particle pixels on its canvas in a
   screenshot); the three share one GPU device (devicesOpened == 1); no CSP violation, and every
   resource the page loaded came from its own origin. Screenshot: artifacts/e2e-widget-blog.png.
2. offscreen: on the same page, a figure scrolled out of view stops (no frames, the step counter
   stays put for 3 s), releases its GPU buffers (`FlowMatchingDemo.releaseAfterMs` set to 0 here)
   and, scrolled back, is rebuilt and carries on from the same step with the same loss history.
   Then the device is lost while figure 1 is off screen holding its buffers: the figure on screen
   recovers, and figure 1, scrolled back, recovers on the same new device from its snapshot.
10. many: a page of 40 figures in five rows a screen apart, scrolled row by row: each row trains,
   the rows left behind release their buffers, and the live GPU bytes with the last row on screen
   stay at what one row holds (not five).
3. csp: the CSP really is enforced (a probe page's inline style attribute is blocked and reported),
   and the widget page runs under it with no violation.
4. invalid: invalid attributes (unknown dataset, negative width and size, text for numbers, an
   unknown controls value) each show an inline message naming the attribute and what it accepts;
   those settings fall back to their defaults, valid ones are kept, the figure still trains; live
   attribute changes apply (valid) or fall back with a message (invalid).
5. api: play/pause/reset, step/loss getters, progress events, train-steps stops exactly at N (and
   play() then trains another run of N),
   exports (PNG, samples CSV with one row per particle, WebM recording), themes (forced, and
   auto following an emulated prefers-color-scheme), and shadow-DOM isolation both ways.

9. preset: preset="otcfm-8gaussians-moons" applies the preset's configuration (single attributes
   beside it win) and views; an unknown preset gets a message listing every allowed name (from
   presets_json) and the figure trains with the defaults; a live preset change applies; the model
   saves as safetensors (saveModel, the .safetensors export button) and loads back bit-identically.

6. embed: embed.html#<demo hash> fills the frame with one figure configured by the hash (widget
   options too: controls=none), reports an unknown field, and follows hash changes.
7. package: pkg/package.json lists the widget files and exports; a page loading pkg/widget.js (the
   published layout) trains, with its stylesheet and wasm taken from next to the module.
8. cpu: without WebGPU the widget says so, trains on the CPU backend, stops exactly at train-steps
   and exports its samples.
11. gpu_error: real WebGPU errors reach the figure's error message, once each, and the figure
   stays usable: a new model whose buffer the device refuses (a test hook makes the next
   "trainer.*" buffer one byte word over the device's limit: a real validation error in the
   build's error scope) → "WebGPU refused building a 64×2 model …; the model you had is kept", the
   settings, step and weights from before are back, Train carries on from there; then an error no
   scope catches (an oversized buffer created on the figure's device from the page) → one message,
   training paused, Train resumes it.
The off-screen test also hides the tab (document.hidden + visibilitychange): the figure stops
and resumes.

Run by `tests/e2e/run.sh test_widget.py [blog offscreen many csp invalid api cpu embed package preset gpu_error]` (which builds pkg/).
"""

import functools
import http.server
import math
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import CAPTURE_DEVICES, DESTROY_DEVICE, decode_png, log, run_tests, save, session  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'"

# ---- pages served from memory ------------------------------------------------------------------

LISTEN_JS = """// Records CSP violations from the first moment of the page.
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""

PAGE_CSS = """/* Page rules that must not reach into the widgets. */
button { font-family: "Comic Sans MS", cursive; color: rgb(255, 0, 0); }
canvas { border: 7px dashed rgb(255, 0, 0); }
.row { display: flex; gap: 16px; align-items: flex-start; }
.row > * { flex: 0 0 380px; margin: 0; }
"""

WIDGETS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>widget test</title>
<script src="/__test/listen.js"></script>
<link rel="stylesheet" href="/__test/page.css">
<script type="module" src="/www/widget.js"></script>
</head><body>
<div class="row">
  <flow-matching-demo id="api" dataset="moons" width="16" depth="2" batch="64" particles="400" nfe="8"
      controls="full" train-steps="40" theme="light"></flow-matching-demo>
  <flow-matching-demo id="bad" dataset="spiralz" width="-3" lr="fast" size="-200" controls="some"
      depth="2" batch="64" particles="300" nfe="8" theme="dark"></flow-matching-demo>
</div>
<p class="stats" id="page-stats">page text in a class the widget also uses</p>
<button id="page-button" type="button">page button</button>
</body></html>
"""

PROBE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>csp probe</title>
<script src="/__test/listen.js"></script>
</head><body><p id="probe" style="color: rgb(1, 2, 3)">inline style must be blocked</p></body></html>
"""

PKG_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>package layout</title>
<script src="/__test/listen.js"></script>
<script type="module" src="/pkg/widget.js"></script>
</head><body>
<flow-matching-demo id="pkg" dataset="circles" width="16" depth="2" batch="64" particles="300" nfe="8" size="320"></flow-matching-demo>
</body></html>
"""

PRESET_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>presets</title>
<script src="/__test/listen.js"></script>
<link rel="stylesheet" href="/__test/page.css">
<script type="module" src="/www/widget.js"></script>
</head><body>
<div class="row">
  <flow-matching-demo id="ot" preset="otcfm-8gaussians-moons" width="16" depth="2" particles="300" nfe="8" controls="full"
      train-steps="20"></flow-matching-demo>
  <flow-matching-demo id="nope" preset="ot-moons" width="16" depth="2" batch="64" particles="300" nfe="8" train-steps="5"></flow-matching-demo>
</div>
</body></html>
"""

# 40 small figures in five rows of eight, a screen apart: one row is on screen at a time.
MANY_CSS = """.many { display: flex; flex-wrap: wrap; gap: 4px; }
.many > flow-matching-demo { flex: 0 0 110px; margin: 0; }
.gap { height: 150vh; }
"""
MANY_FIGURE = ('<flow-matching-demo dataset="moons" width="16" depth="2" batch="64" particles="200" nfe="8" '
               'controls="none" size="110x82"></flow-matching-demo>')
MANY_HTML = ("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>40 figures</title>
<script src="/__test/listen.js"></script>
<link rel="stylesheet" href="/__test/many.css">
<script type="module" src="/www/widget.js"></script>
</head><body>
""" + "".join(f'<div class="many" id="row{r}">{MANY_FIGURE * 8}</div><div class="gap"></div>' for r in range(5))
             + "</body></html>\n")

GPU_ERROR_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gpu errors</title>
<script src="/__test/listen.js"></script>
<script type="module" src="/www/widget.js"></script>
</head><body>
<flow-matching-demo id="fig" dataset="moons" width="16" depth="2" batch="64" particles="300" nfe="8" controls="full"></flow-matching-demo>
</body></html>
"""

# Test hook: the next buffer whose label starts with window.__failBuffer is asked for one word over
# the device's size limit (a real validation error, where the page created it).
FAIL_BUFFER = """
window.__failBuffer = null;
if (self.GPUDevice) {
  const createBuffer = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (desc) {
    if (window.__failBuffer && desc && String(desc.label || '').startsWith(window.__failBuffer)) {
      window.__failBuffer = null;
      desc = Object.assign({}, desc, {size: this.limits.maxBufferSize + 4});
    }
    return createBuffer.call(this, desc);
  };
}
"""

MEMORY = {
    "/__test/gpu-error.html": ("text/html; charset=utf-8", GPU_ERROR_HTML),
    "/__test/many.css": ("text/css", MANY_CSS),
    "/__test/many.html": ("text/html; charset=utf-8", MANY_HTML),
    "/__test/listen.js": ("text/javascript", LISTEN_JS),
    "/__test/page.css": ("text/css", PAGE_CSS),
    "/__test/widgets.html": ("text/html; charset=utf-8", WIDGETS_HTML),
    "/__test/probe.html": ("text/html; charset=utf-8", PROBE_HTML),
    "/__test/pkg.html": ("text/html; charset=utf-8", PKG_HTML),
    "/__test/presets.html": ("text/html; charset=utf-8", PRESET_HTML),
}


class CSPHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self):
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path in MEMORY:
            ctype, body = MEMORY[path]
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


class Server:
    def __enter__(self):
        handler = functools.partial(CSPHandler, directory=ROOT)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- helpers -----------------------------------------------------------------------------------

def js_async(d, script, *args):
    """Runs `script` with `done` = the callback (WebDriver's async execute)."""
    body = "const done = arguments[arguments.length - 1];\n" + script
    return d.cmd("POST", "/execute/async", {"script": body, "args": list(args)})


def wait(d, script, timeout, what, *args, progress=None):
    """`Driver.wait_for` with arguments for the script (and the `progress` expression)."""
    return d.wait_for(script, timeout, what, poll=0.4, progress=progress, args=args)


def figure(index):
    """JS for the index-th <flow-matching-demo> on the page."""
    return f"document.querySelectorAll('flow-matching-demo')[{index}]"


def steps_of(which):
    """A progress expression: the step counter of a figure (by index or id)."""
    w = figure(which) if isinstance(which, int) else f"document.getElementById('{which}')"
    return f"({w}.state && {w}.state.step)"


WIDGET_STATE = """const w = arguments[0] === null ? null : (typeof arguments[0] === 'number'
    ? document.querySelectorAll('flow-matching-demo')[arguments[0]] : document.getElementById(arguments[0]));
const s = w.state;
return s && {step: s.step, loss: w.loss, frames: s.frames, training: s.training, error: s.error,
  devicesOpened: s.devicesOpened, deviceGeneration: s.deviceGeneration, backend: s.backend, software: s.software,
  lossStart: s.lossStart, present: s.present, messages: w.messages, runEnd: s.runEnd, runDone: s.runDone};"""


def state(d, which):
    return d.js(WIDGET_STATE, which)


def csp_problems(d):
    violations = d.js("return window.__csp || []")
    log_lines = [m for m in d.console() if "Content Security Policy" in m or "Refused to" in m]
    return violations + log_lines


def foreign_resources(d):
    return d.js("""return performance.getEntriesByType('resource').map((e) => e.name)
        .filter((n) => { const u = new URL(n, location.href); return !['data:', 'blob:'].includes(u.protocol) && u.origin !== location.origin; });""")


def canvas_rect(d, which):
    return d.js("""const w = typeof arguments[0] === 'number' ? document.querySelectorAll('flow-matching-demo')[arguments[0]] : document.getElementById(arguments[0]);
        const r = w.shadowRoot.querySelector('canvas.flow').getBoundingClientRect();
        return {left: r.left, top: r.top, width: r.width, height: r.height};""", which)


def particle_pixel_count(png, rect):
    """Pixels inside `rect` that show a particle (saturated colour on the dark plot background)."""
    w, h, ch, px = decode_png(png)
    left, top = int(rect["left"]), int(rect["top"])
    right, bottom = int(rect["left"] + rect["width"]), int(rect["top"] + rect["height"])
    count = 0
    for yy in range(max(top, 0), min(bottom, h)):
        row = yy * w * ch
        for xx in range(max(left, 0), min(right, w), 2):
            i = row + xx * ch
            r, g, b = px[i], px[i + 1], px[i + 2]
            if max(r, g, b) > 90 and max(r, g, b) - min(r, g, b) > 60:
                count += 1
    return count


# ---- tests -------------------------------------------------------------------------------------

def scroll_to(d, index):
    d.js("document.querySelectorAll('flow-matching-demo')[arguments[0]].scrollIntoView({block: 'center'})", index)


def test_blog():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d:
        d.get(srv.url + "/www/blog-example.html")
        n = d.js("return document.querySelectorAll('flow-matching-demo').length")
        assert n == 3, f"the blog example should have three figures, has {n}"
        for i in range(3):
            scroll_to(d, i)
            t0 = time.time()
            wait(d, "const w = document.querySelectorAll('flow-matching-demo')[arguments[0]]; const s = w.state;"
                    " return (s && s.error) || (s && s.step >= 20 && Number.isFinite(w.loss));", 120,
                 f"figure {i + 1} to train 20 steps with a finite loss", i, progress=steps_of(i))
            s = state(d, i)
            assert not s["error"], f"figure {i + 1}: {s['error']}"
            assert s["backend"] == "webgpu", f"figure {i + 1} is not on WebGPU: {s}"
            assert not s["messages"], f"figure {i + 1} reports attribute problems: {s['messages']}"
            d.wait_presented(f"{figure(i)}.state")  # frames drawn with the newest particles
            png = d.screenshot()
            count = particle_pixel_count(png, canvas_rect(d, i))
            log(f"figure {i + 1}: step {s['step']}, loss {s['loss']:.3f} after {time.time() - t0:.1f}s; "
                f"{count} particle pixels ({s['present']})")
            assert math.isfinite(s["loss"]), s
            assert count > 150, f"figure {i + 1} looks blank: {count} particle pixels"
            if i == 1:
                save("e2e-widget-blog.png", png)
        states = [state(d, i) for i in range(3)]
        opened = {s["devicesOpened"] for s in states}
        gens = {s["deviceGeneration"] for s in states}
        log(f"devicesOpened {opened}, device generations {gens}")
        assert opened == {1} and len(gens) == 1, f"the three figures did not share one device: {states}"
        problems = csp_problems(d)
        assert not problems, f"CSP violations on the blog page: {problems}"
        foreign = foreign_resources(d)
        assert not foreign, f"requests outside the page's origin: {foreign}"
        log("no CSP violations; every resource came from the page's own origin")


def test_offscreen():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d, d.on_every_document(CAPTURE_DEVICES):
        d.get(srv.url + "/www/blog-example.html")
        scroll_to(d, 0)
        # stepsRead, not step: lossStart is the mean of the first 10 losses READ; with reads lagging
        # behind queued steps (a loaded machine) it would still move after `before` is taken.
        wait(d, "const s = document.querySelectorAll('flow-matching-demo')[0].state; return s && (s.error || s.stepsRead >= 15);", 120, "figure 1 to train",
             progress=steps_of(0))
        before = state(d, 0)
        assert not before["error"], before
        d.js("customElements.get('flow-matching-demo').releaseAfterMs = 0")
        d.js("window.scrollTo(0, document.documentElement.scrollHeight)")
        visible = d.js("const r = document.querySelectorAll('flow-matching-demo')[0].getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight;")
        assert not visible, "figure 1 is still on screen after scrolling to the bottom"
        # The figure's own signal that its IntersectionObserver callback took it off the loop.
        wait(d, f"return {figure(0)}.shadowRoot.querySelector('.stage').classList.contains('offscreen')", 30, "figure 1 to stop off-screen")
        # Released at once (releaseAfterMs = 0 below; the default waits 10 s): the App and its
        # GPU buffers are freed.
        wait(d, f"const s = {figure(0)}.state; return s && s.released", 30, "figure 1 to release its GPU buffers")
        s1 = state(d, 0)
        d.frames(90)  # the page's animation loop ran 90 times: a running figure would have moved
        s2 = state(d, 0)
        log(f"off-screen: step {s1['step']} -> {s2['step']}, frames {s1['frames']} -> {s2['frames']} over 90 animation frames")
        assert s2["step"] == s1["step"], f"an off-screen figure kept training: {s1['step']} -> {s2['step']}"
        assert s2["frames"] == s1["frames"], f"an off-screen figure kept rendering: {s1['frames']} -> {s2['frames']}"
        scroll_to(d, 0)
        wait(d, "return document.querySelectorAll('flow-matching-demo')[0].state.step > arguments[0];", 120,
             "figure 1 to resume training", s2["step"])
        s3 = state(d, 0)
        log(f"back on screen: step {s2['step']} -> {s3['step']}; loss history kept (first losses {s3['lossStart']:.3f})")
        assert s3["step"] > s2["step"] and not s3["error"], s3
        assert s3["lossStart"] == before["lossStart"], f"training restarted instead of resuming: {before['lossStart']} -> {s3['lossStart']}"

        # A hidden tab: headless Chromium never hides its one tab, so the test makes document.hidden
        # true and fires visibilitychange (what the browser does when the tab goes to the background).
        d.js("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true}); document.dispatchEvent(new Event('visibilitychange'));")
        wait(d, f"return {figure(0)}.shadowRoot.querySelector('.stage').classList.contains('offscreen')", 30, "figure 1 to stop in a hidden tab")
        h1 = state(d, 0)
        d.frames(60)
        h2 = state(d, 0)
        assert (h2["step"], h2["frames"]) == (h1["step"], h1["frames"]), f"a hidden tab kept running: {h1} -> {h2}"
        d.js("delete document.hidden; document.dispatchEvent(new Event('visibilitychange'));")
        wait(d, "return document.querySelectorAll('flow-matching-demo')[0].state.step > arguments[0];", 120, "figure 1 to resume after the tab is shown", h2["step"])
        log(f"hidden tab: step stays at {h2['step']}; shown again: resumes")
        offscreen_device_loss(d)


def offscreen_device_loss(d):
    """The device is lost while figure 1 is off screen holding its buffers (not released) and
    figure 3 trains on screen: figure 3 recovers; figure 1, back on screen, notices the loss at its
    first frame and recovers on the same new device from its last snapshot."""
    d.js("customElements.get('flow-matching-demo').releaseAfterMs = 1e9")
    d.wait_for(f"return {figure(0)}.state.snapshotStep", 60, "a snapshot of figure 1", progress=steps_of(0))
    scroll_to(d, 2)
    wait(d, f"return {figure(0)}.shadowRoot.querySelector('.stage').classList.contains('offscreen')", 30, "figure 1 to stop off-screen")
    wait(d, f"const s = {figure(2)}.state; return s && (s.error || s.snapshotStep !== null);", 120, "figure 3 to train and snapshot", progress=steps_of(2))
    held = d.js(f"const s = {figure(0)}.state; return {{released: !!s.released, step: s.step, snap: s.snapshotStep, opened: s.devicesOpened}}")
    assert not held["released"], held
    d.js(DESTROY_DEVICE)
    wait(d, f"const s = {figure(2)}.state; return s.recoveries === 1 && !s.recovering && !s.error && s.stepsRead > s.snapshotStep", 60,
         "figure 3 to recover and train", progress=steps_of(2))
    scroll_to(d, 0)
    wait(d, f"const s = {figure(0)}.state; return s.error || (s.recoveries === 1 && !s.recovering && s.stepsRead > arguments[0]);", 60,
         "figure 1 to recover on screen", held["snap"], progress=steps_of(0))
    s = d.js(f"const s = {figure(0)}.state; return {{error: s.error, opened: s.devicesOpened, gen: s.deviceGeneration, snap: s.snapshotStep}}")
    first = d.js(f"const f = Array.from({figure(0)}._app.losses()); const s = []; for (let i = 0; i < f.length; i += 2) s.push(f[i]); return s.filter((x) => x >= arguments[0])[0];", held["snap"])
    assert s["error"] is None and s["opened"] == held["opened"] + 1 and s["gen"] == held["opened"] + 1, f"figure 1 after the loss: {s} (before: {held})"
    assert first == held["snap"], f"figure 1 did not continue from its snapshot at step {held['snap']} (first step after: {first})"
    log(f"device lost with figure 1 off screen at step {held['step']}: figure 3 recovered; figure 1, back on screen, continued from its snapshot "
        f"(step {held['snap']}) on the same new device ({s['opened']} opened)")


def test_many():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d:
        many_figures(d, srv)


def many_figures(d, srv):
    t0 = time.time()
    d.get(srv.url + "/__test/many.html")
    d.js("customElements.get('flow-matching-demo') && (customElements.get('flow-matching-demo').releaseAfterMs = 0)")
    row = "Array.from(document.querySelectorAll('#row' + arguments[0] + ' > flow-matching-demo'))"
    one_row = None
    for r in range(5):
        d.js("document.getElementById('row' + arguments[0]).scrollIntoView({block: 'start'});"
             " customElements.whenDefined('flow-matching-demo').then((c) => { c.releaseAfterMs = 0; });", r)
        wait(d, f"return {row}.every((w) => w.state && !w.state.released && (w.state.error || w.state.stepsRead >= 3));", 120,
             f"row {r + 1}'s eight figures to train", r, progress=f"{row}.map((w) => w.state ? w.state.stepsRead : -1).join()".replace("arguments[0]", str(r)))
        errors = d.js(f"return {row}.map((w) => w.state.error).filter((e) => e)", r)
        assert not errors, f"row {r + 1}: {errors}"
        if r > 0:
            wait(d, "return Array.from(document.querySelectorAll('flow-matching-demo')).slice(0, 8 * arguments[0]).every((w) => w.state && w.state.released);",
                 60, f"rows 1-{r} to release their GPU buffers", r)
        live = d.js(f"const s = {row}[0].state; return {{bytes: s.liveBytes, buffers: s.liveBuffers}}", r)
        if r == 0:
            one_row = live
        log(f"row {r + 1} on screen: {live['buffers']} live buffers, {live['bytes'] / 1e6:.2f} MB")
    steps = d.js("return Array.from(document.querySelectorAll('flow-matching-demo')).map((w) => w.state.step)")
    assert len(steps) == 40 and min(steps) >= 3, steps
    # With the rows left behind released, the last row holds what the first did (a little more or
    # less: status reads in flight); without the release it would be five rows' worth.
    assert live["bytes"] <= 1.5 * one_row["bytes"], f"40 figures, one row on screen: {live} vs one row alone {one_row}"
    log(f"40 figures: {live['bytes'] / 1e6:.2f} MB live with one row of 8 on screen ({one_row['bytes'] / 8e6:.2f} MB a figure); {time.time() - t0:.0f} s")


def test_csp():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d:
        import urllib.request
        with urllib.request.urlopen(srv.url + "/www/widget.js") as r:
            assert r.headers.get("Content-Security-Policy") == CSP, r.headers
        d.get(srv.url + "/__test/probe.html")
        color = d.js("return getComputedStyle(document.getElementById('probe')).color")
        probe = d.js("return window.__csp")
        style = [v for v in probe if v.startswith("style-src")]
        assert color != "rgb(1, 2, 3)" and style, f"the CSP is not enforced (inline style applied: {color}, violations: {probe})"
        log(f"CSP enforced: the probe's inline style was blocked ({style[0]})")
        d.console()
        d.get(srv.url + "/__test/widgets.html")
        wait(d, "const w = document.getElementById('api'); return w.state && w.state.step >= 10;", 120, "the widget to train under the CSP", progress=steps_of("api"))
        problems = csp_problems(d)
        assert not problems, f"CSP violations with the widget: {problems}"
        foreign = foreign_resources(d)
        assert not foreign, f"requests outside the page's origin: {foreign}"
        sheet = d.js("return [...document.getElementById('api').shadowRoot.querySelectorAll('link[rel=stylesheet]')].map(l => l.sheet && l.sheet.cssRules.length)")
        assert sheet and sheet[0] and sheet[0] > 10, f"the widget's stylesheet did not load under the CSP: {sheet}"
        log(f"the widget runs under the strict CSP with no violation (widget.css: {sheet[0]} rules)")


def test_invalid():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d:
        d.get(srv.url + "/__test/widgets.html")
        wait(d, "const w = document.getElementById('bad'); return w.state && (w.state.error || w.state.step >= 5);", 120, "the widget with invalid attributes to start", progress=steps_of("bad"))
        got = d.js("""const w = document.getElementById('bad'), list = w.shadowRoot.querySelector('.messages');
            return {shown: !list.hidden && list.getBoundingClientRect().height > 0,
                    items: Object.fromEntries([...list.querySelectorAll('li')].map(li => [li.dataset.attribute, li.textContent])),
                    dataset: w.state && w.shadowRoot && w.config, error: w.state.error,
                    width: w.getBoundingClientRect().width};""")
        items = got["items"]
        for attr, needle in [("dataset", "spiralz"), ("width", "-3"), ("lr", "fast"), ("size", "-200"), ("controls", "some")]:
            assert attr in items, f"no inline message for {attr}: {items}"
            assert needle in items[attr] and attr in items[attr], f"message for {attr} does not name it and its value: {items[attr]!r}"
        assert "moons" in items["dataset"] and "checkerboard" in items["dataset"], f"dataset message lists no choices: {items['dataset']}"
        assert "integer from 1 to 1024" in items["width"], items["width"]
        assert "default" in items["lr"], items["lr"]
        assert got["shown"], "the messages are not visible"
        for attr, text in items.items():
            log(f"{attr}: {text}")
        cfg = dict(kv.split("=", 1) for kv in got["dataset"].split("&"))
        defaults = d.js("return Object.fromEntries(new URLSearchParams(arguments[0]))", d.js("return document.getElementById('bad').config"))
        assert cfg["dataset"] == "moons", f"unknown dataset did not fall back to moons: {cfg}"
        assert cfg["width"] == "32" and cfg["lr"] == "0.01", f"width/lr did not fall back to the defaults: {cfg}"
        assert (cfg["depth"], cfg["batch"], cfg["particles"], cfg["nfe"]) == ("2", "64", "300", "8"), f"valid attributes were not kept: {cfg}"
        assert defaults["dataset"] == "moons"
        controls = d.js("return document.getElementById('bad').shadowRoot.querySelector('figure').dataset.controls")
        assert controls == "minimal", f"controls did not fall back to minimal: {controls}"
        assert got["width"] > 300, f"a negative size should fall back to the column width, got {got['width']}px"
        s1 = state(d, "bad")["step"]
        wait(d, "return document.getElementById('bad').state.step > arguments[0]", 120, "the widget with fallbacks to train", s1, progress=steps_of("bad"))

        # Live changes: valid → applied (message gone); invalid → message, default.
        d.js("const w = document.getElementById('bad'); w.setAttribute('dataset', 'circles'); w.setAttribute('nfe', 'abc');")
        got = d.js("""const w = document.getElementById('bad'), list = w.shadowRoot.querySelector('.messages');
            return {items: Object.fromEntries([...list.querySelectorAll('li')].map(li => [li.dataset.attribute, li.textContent])), config: w.config};""")
        cfg = dict(kv.split("=", 1) for kv in got["config"].split("&"))
        assert cfg["dataset"] == "circles", f"a valid dataset change was not applied: {cfg}"
        assert "dataset" not in got["items"], f"the dataset message stayed after a valid value: {got['items']}"
        assert "nfe" in got["items"] and "abc" in got["items"]["nfe"], f"no message for nfe=abc: {got['items']}"
        # The widget's default as the figure states it (its engine's defaults: software adapters take fewer steps than GPUs).
        want = d.js("return new URLSearchParams(document.getElementById('bad').defaults).get('nfe')")
        assert cfg["nfe"] == want, f"nfe=abc did not fall back to the default ({want}): {cfg}"
        log(f"live: dataset=circles applied; {got['items']['nfe']}")


def test_api():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d:
        d.get(srv.url + "/__test/widgets.html")
        d.js("window.__progress = []; document.getElementById('api').addEventListener('progress', (e) => window.__progress.push(e.detail));")
        # train-steps="40": training pauses at exactly step 40.
        wait(d, "const s = document.getElementById('api').state; return s && (s.error || (!s.training && s.step >= 40));", 120, "train-steps=40 to stop training", progress=steps_of("api"))
        s = state(d, "api")
        assert s["step"] == 40 and not s["training"], f"train-steps=40 did not stop at step 40: {s}"
        progress = d.js("return window.__progress")
        assert progress and progress[-1]["step"] <= 40 and all(p["step"] >= 0 for p in progress), progress
        log(f"train-steps=40: stopped at step {s['step']}; {len(progress)} progress events, last {progress[-1]}")
        d.frames(30)
        s = state(d, "api")
        assert (s["step"], s["runDone"], s["runEnd"]) == (40, True, 40), f"training went on past train-steps, or the run's end is not reported: {s}"

        # play() after the run's end trains another run of train-steps steps (the learning-rate
        # schedule starts over); pause() stops; reset() restarts from step 0.
        d.js("document.getElementById('api').play()")
        wait(d, "const s = document.getElementById('api').state; return s.step > 40 && (s.error || !s.training);", 120, "play() to train another run", progress=steps_of("api"))
        s = state(d, "api")
        assert (s["step"], s["runEnd"], s["runDone"]) == (80, 80, True), f"play() after the run's end did not train a run of 40 more steps: {s}"
        d.js("document.getElementById('api').play()")
        wait(d, "return document.getElementById('api').step > 85", 120, "play() to train a third run", progress=steps_of("api"))
        d.js("document.getElementById('api').pause()")
        p1 = d.js("return document.getElementById('api').step")
        d.frames(60)
        assert d.js("return document.getElementById('api').step") == p1, "pause() did not stop training"
        loss = d.js("return document.getElementById('api').loss")
        assert isinstance(loss, (int, float)) and math.isfinite(loss), f"loss getter: {loss}"
        d.js("document.getElementById('api').reset()")
        assert d.js("return document.getElementById('api').step") == 0, "reset() did not restart"
        log(f"play/pause/reset ok (paused at step {p1}, loss {loss:.3f})")
        d.frames(30)
        assert d.js("return document.getElementById('api').state.training") is False, "reset() after pause() should stay paused"
        assert d.js("return document.getElementById('api').step") == 0, "reset() after pause() trained"
        d.js("document.getElementById('api').play()")
        wait(d, "const s = document.getElementById('api').state; return !s.training && s.step === 40;", 120, "train-steps to apply again after reset", progress=steps_of("api"))

        # Exports.
        png = js_async(d, "document.getElementById('api').toPNG().then((b) => done({type: b.type, size: b.size}), (e) => done({error: String(e)}));")
        assert png.get("type") == "image/png" and png.get("size", 0) > 1000, f"PNG export: {png}"
        csv = js_async(d, "document.getElementById('api').samplesCSV().then((t) => done(t), (e) => done('ERROR ' + e));")
        lines = csv.strip().split("\n")
        assert lines[0] == "x,y", f"CSV header: {lines[0]!r} ({csv[:200]!r})"
        pts = [tuple(float(v) for v in line.split(",")) for line in lines[1:]]
        assert len(pts) == 400, f"CSV has {len(pts)} rows for 400 particles"
        assert all(math.isfinite(x) and math.isfinite(y) and abs(x) < 50 and abs(y) < 50 for x, y in pts), "CSV has non-finite or wild samples"
        spread = max(x for x, _ in pts) - min(x for x, _ in pts)
        assert spread > 0.5, f"the samples are all in one place (x spread {spread})"
        webm = js_async(d, "document.getElementById('api').record(1.5).then((b) => b.arrayBuffer().then((a) => done({type: b.type, size: b.size,"
                           " magic: Array.from(new Uint8Array(a.slice(0, 4)))})), (e) => done({error: String(e)}));")
        assert webm.get("type") == "video/webm" and webm.get("size", 0) > 500 and webm.get("magic") == [0x1A, 0x45, 0xDF, 0xA3], f"WebM export: {webm}"
        log(f"exports: PNG {png['size']} B, CSV {len(pts)} samples (x spread {spread:.2f}), WebM {webm['size']} B (EBML header)")

        # Themes and shadow-DOM isolation, both ways.
        look = d.js("""const bg = (id) => getComputedStyle(document.getElementById(id).shadowRoot.querySelector('figure')).backgroundColor;
            const w = document.getElementById('api').shadowRoot;
            const btn = getComputedStyle(w.querySelector('button')), cv = getComputedStyle(w.querySelector('canvas.flow'));
            return {light: bg('api'), dark: bg('bad'), btnColor: btn.color, btnFont: btn.fontFamily, canvasBorder: cv.borderTopWidth,
                    pageStatsFont: getComputedStyle(document.getElementById('page-stats')).fontFamily,
                    pageButton: getComputedStyle(document.getElementById('page-button')).color};""")
        log(f"themes: light {look['light']}, dark {look['dark']}; widget button {look['btnColor']} {look['btnFont'][:30]}")
        assert look["light"] == "rgb(255, 255, 255)" and look["dark"] == "rgb(15, 19, 27)", f"themes: {look}"
        assert look["btnColor"] != "rgb(255, 0, 0)" and "Comic" not in look["btnFont"], f"page CSS leaked into the widget: {look}"
        assert look["canvasBorder"] == "0px", f"page CSS leaked into the widget's canvas: {look}"
        assert "monospace" not in look["pageStatsFont"], f"widget CSS leaked into the page: {look}"
        assert look["pageButton"] == "rgb(255, 0, 0)", look
        # theme="auto" (no attribute) follows prefers-color-scheme.
        d.js("document.getElementById('api').removeAttribute('theme')")
        bgs = []
        for scheme in ("light", "dark"):
            d.cmd("POST", "/goog/cdp/execute", {"cmd": "Emulation.setEmulatedMedia",
                                               "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]}})
            bgs.append(d.js("return getComputedStyle(document.getElementById('api').shadowRoot.querySelector('figure')).backgroundColor"))
        assert bgs == ["rgb(255, 255, 255)", "rgb(15, 19, 27)"], f"theme=auto does not follow prefers-color-scheme: {bgs}"
        log(f"theme auto: light {bgs[0]}, dark {bgs[1]}")
        problems = csp_problems(d)
        assert not problems, f"CSP violations: {problems}"


def test_cpu():
    with Server() as srv, session([]) as d:  # no --enable-unsafe-webgpu: no adapter
        d.get(srv.url + "/__test/widgets.html")
        wait(d, "const s = document.getElementById('api').state; return s && (s.error || (!s.training && s.step >= 40));", 120, "the CPU widget to reach train-steps", progress=steps_of("api"))
        s = state(d, "api")
        assert s["backend"] == "cpu" and s["step"] == 40 and not s["error"], f"CPU fallback: {s}"
        notice = d.js("const n = document.getElementById('api').shadowRoot.querySelector('.notice'); return n.hidden ? null : n.textContent")
        assert notice and "WebGPU" in notice, f"no notice about the missing WebGPU: {notice!r}"
        csv = js_async(d, "document.getElementById('api').samplesCSV().then((t) => done(t), (e) => done('ERROR ' + e));")
        lines = csv.strip().split("\n")
        assert lines[0] == "x,y" and len(lines) == 401, f"CPU samples CSV: {csv[:200]!r} ({len(lines)} lines)"
        assert all(math.isfinite(float(v)) for line in lines[1:] for v in line.split(","))
        problems = csp_problems(d)
        assert not problems, f"CSP violations: {problems}"
        log(f"CPU backend: stopped at step {s['step']} (train-steps=40), notice shown, {len(lines) - 1} samples exported")


def test_embed():
    with Server() as srv, session(["--enable-unsafe-webgpu"], window=(640, 480)) as d:
        d.get(srv.url + "/embed.html#dataset=circles&width=16&depth=2&batch=64&particles=300&nfe=8&controls=none&bogus=1")
        wait(d, "const w = document.querySelector('flow-matching-demo'); return w.state && (w.state.error || w.state.step >= 10);", 120, "the embedded figure to train", progress=steps_of(0))
        got = d.js("""const w = document.querySelector('flow-matching-demo'), r = w.shadowRoot.querySelector('canvas.flow').getBoundingClientRect();
            return {config: w.config, messages: w.messages, controls: w.shadowRoot.querySelector('figure').dataset.controls,
                    bar: w.shadowRoot.querySelector('.bar').getBoundingClientRect().height, w: r.width, h: r.height, iw: innerWidth, ih: innerHeight};""")
        cfg = dict(kv.split("=", 1) for kv in got["config"].split("&"))
        assert (cfg["dataset"], cfg["width"], cfg["particles"]) == ("circles", "16", "300"), f"the hash was not applied: {cfg}"
        assert got["controls"] == "none" and got["bar"] == 0, f"controls=none still shows controls: {got}"
        assert [m["attribute"] for m in got["messages"]] == ["config"] and "bogus" in got["messages"][0]["message"], f"unknown hash field not reported: {got['messages']}"
        d.js("location.hash = 'dataset=moons&width=16&depth=2&batch=64&particles=300&nfe=8&controls=minimal'")
        wait(d, "return document.querySelector('flow-matching-demo').config.startsWith('dataset=moons')", 20, "a hash change to apply")
        got = d.js("""const w = document.querySelector('flow-matching-demo'), r = w.shadowRoot.querySelector('canvas.flow').getBoundingClientRect();
            return {messages: w.messages, bar: w.shadowRoot.querySelector('.bar').getBoundingClientRect().height, w: r.width, h: r.height, iw: innerWidth, ih: innerHeight};""")
        assert got["messages"] == [], f"messages stayed after a valid hash: {got['messages']}"
        assert got["bar"] > 0, f"controls=minimal shows no controls: {got}"
        assert got["w"] >= got["iw"] - 4 and got["h"] >= got["ih"] - got["bar"] - 4, f"the figure does not fill the frame: {got}"
        problems = csp_problems(d)
        assert not problems, f"CSP violations on embed.html: {problems}"
        log(f"embed.html: hash applied ({cfg['dataset']}, width {cfg['width']}), canvas {got['w']:.0f}x{got['h']:.0f} in a {got['iw']}x{got['ih']} frame; hashchange applies")


# The package's size budget (docs/BENCHMARKS.md, "Package size"): bytes, raw and gzipped (level 9).
SIZE_BUDGET = {
    "flowmatch_bg.wasm": (1_500_000, 550_000),
    "flowmatch.js": (120_000, 25_000),
    "widget.js": (40_000, 12_000),
}


def npm_pack(pkg_dir):
    """`npm pack --dry-run --json` in pkg/: the files npm would publish, with their sizes."""
    import json
    import subprocess
    out = subprocess.run(["npm", "pack", "--dry-run", "--json", "--ignore-scripts"], cwd=pkg_dir, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"npm pack --dry-run failed: {out.stderr}"
    return json.loads(out.stdout)[0]


def declared(dts):
    """Members and attributes the widget's declarations promise."""
    import re
    cls = dts[dts.index("export declare class FlowMatchingDemo"):]
    cls = cls[:cls.index("\n}")]
    members = set(re.findall(r"^  (?:readonly )?([a-zA-Z]\w*)[(:?]", cls, re.M)) - {"addEventListener", "observedAttributes"}
    attrs = set()
    for name in ("FlowMatchingConfigAttribute", "FlowMatchingWidgetAttribute"):
        decl = dts[dts.index(f"export type {name} ="):]
        attrs |= set(re.findall(r"'([a-z-]+)'", decl[:decl.index(";")]))
    return members, attrs


def test_package():
    import gzip
    import json
    pkg_dir = os.path.join(ROOT, "pkg")
    with open(os.path.join(pkg_dir, "package.json")) as f:
        pkg = json.load(f)
    for key in ("name", "version", "description", "license", "files", "exports", "module", "types"):
        assert pkg.get(key), f"pkg/package.json lacks {key}: {pkg}"
    # No public URL exists: no repository field rather than a placeholder.
    assert "repository" not in pkg and "example.invalid" not in json.dumps(pkg), pkg
    for name in ("flowmatch.js", "flowmatch.d.ts", "flowmatch_bg.wasm", "widget.js", "widget.d.ts", "widget.css", "embed.html", "embed.js", "embed.css", "LICENSE"):
        assert name in pkg["files"], f"{name} is not in the package's files: {pkg['files']}"
        assert os.path.isfile(os.path.join(pkg_dir, name)), f"pkg/{name} is missing"
    assert pkg["exports"]["./widget"] == {"types": "./widget.d.ts", "default": "./widget.js"}, pkg["exports"]
    assert pkg["exports"]["."] == {"types": "./flowmatch.d.ts", "default": "./flowmatch.js"}, pkg["exports"]
    with open(os.path.join(ROOT, "www", "widget.js")) as f, open(os.path.join(pkg_dir, "widget.js")) as g:
        want = f.read().replace("from '../pkg/flowmatch.js'", "from './flowmatch.js'")
        assert g.read() == want, "pkg/widget.js is not www/widget.js with the package import: run scripts/build-wasm.sh"
    with open(os.path.join(ROOT, "LICENSE")) as f, open(os.path.join(pkg_dir, "LICENSE")) as g:
        text = g.read()
        assert text == f.read() and text.startswith("MIT License") and pkg["license"] == "MIT"

    # What npm would publish: every file has an export (or is a document, or a declaration file
    # that an export's types or the wasm's companion names), and nothing else sneaks in.
    packed = npm_pack(pkg_dir)
    names = sorted(f["path"] for f in packed["files"])
    targets = set()
    for v in pkg["exports"].values():
        targets |= set(v.values()) if isinstance(v, dict) else {v}
    documents = {"LICENSE", "README.md", "package.json"}
    unexported = [n for n in names if f"./{n}" not in targets and n not in documents and n != "flowmatch_bg.wasm.d.ts"]
    assert not unexported, f"packed files without an export: {unexported}"
    missing = [t for t in targets if t[2:] not in names]
    assert not missing, f"exports name files that are not packed: {missing}"
    # No test hooks in the published API.
    for name in ("flowmatch.d.ts", "flowmatch.js"):
        with open(os.path.join(pkg_dir, name)) as f:
            text = f.read()
        for hook in ("debug_destroy_device", "runBench", "run_bench"):
            assert hook not in text, f"pkg/{name} still exposes the test hook {hook}"
    with open(os.path.join(pkg_dir, "flowmatch.d.ts")) as f:
        dts = f.read()
    for api in ("export class App", "save_model", "load_model", "export function choices", "export default function __wbg_init"):
        assert api in dts, f"flowmatch.d.ts does not declare {api}"
    # The size budget.
    sizes = {}
    for name, (raw_max, gz_max) in SIZE_BUDGET.items():
        with open(os.path.join(pkg_dir, name), "rb") as f:
            data = f.read()
        raw, gz = len(data), len(gzip.compress(data, 9))
        sizes[name] = (raw, gz)
        assert raw <= raw_max and gz <= gz_max, f"{name}: {raw} bytes ({gz} gzipped) is over the budget {raw_max} ({gz_max})"
    log(f"npm pack: {len(names)} files, {packed['size']} bytes packed, {packed['unpackedSize']} unpacked; "
        + ", ".join(f"{n} {r} B raw / {g} B gzip" for n, (r, g) in sizes.items()))

    with open(os.path.join(ROOT, "www", "widget.d.ts")) as f:
        members, attrs = declared(f.read())
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d:
        d.get(srv.url + "/__test/pkg.html")
        wait(d, "const w = document.getElementById('pkg'); return w.state && (w.state.error || w.state.step >= 10);", 120, "the widget from pkg/ to train", progress=steps_of("pkg"))
        got = d.js("""const w = document.getElementById('pkg');
            return {error: w.state.error, css: [...w.shadowRoot.querySelectorAll('link')].map(l => l.href),
                    resources: performance.getEntriesByType('resource').map(e => new URL(e.name).pathname), width: w.getBoundingClientRect().width};""")
        assert not got["error"], got
        assert got["css"] == [srv.url + "/pkg/widget.css"], f"the widget's stylesheet is not taken from next to the module: {got['css']}"
        assert "/pkg/flowmatch_bg.wasm" in got["resources"] and not any(p.startswith("/www/") for p in got["resources"]), got["resources"]
        assert abs(got["width"] - 320) < 1, f"size=320 not applied: {got['width']}"
        # The declarations describe the running element: every declared member exists, and the
        # declared attributes are exactly the observed ones.
        real = d.js("""const C = customElements.get('flow-matching-demo');
            const names = new Set();
            for (let p = C.prototype; p && p !== HTMLElement.prototype; p = Object.getPrototypeOf(p)) Object.getOwnPropertyNames(p).forEach((n) => names.add(n));
            return {members: [...names], attrs: C.observedAttributes};""")
        absent = sorted(members - set(real["members"]))
        assert not absent, f"widget.d.ts declares members the element lacks: {absent}"
        assert set(real["attrs"]) == attrs, f"declared attributes {sorted(attrs)} != observed {sorted(real['attrs'])}"
        problems = csp_problems(d)
        assert not problems, f"CSP violations: {problems}"
        log(f"package: {pkg['name']}@{pkg['version']} files {pkg['files']}; pkg/widget.js loads {sorted(set(got['resources']))}")
        d.get(srv.url + "/pkg/embed.html#dataset=moons&width=16&depth=2&batch=64&particles=300&nfe=8")
        wait(d, "const w = document.querySelector('flow-matching-demo'); return w && w.state && (w.state.error || w.state.step >= 5);", 120, "pkg/embed.html to train", progress=f"(document.querySelector('flow-matching-demo') && {steps_of(0)})")
        res = d.js("return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)")
        assert not any(p.startswith("/www/") for p in res) and "/pkg/embed.js" in res, res
        problems = csp_problems(d)
        assert not problems, f"CSP violations on pkg/embed.html: {problems}"
        log("pkg/embed.html runs from the package directory alone")


def test_preset():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d:
        d.get(srv.url + "/__test/presets.html")
        wait(d, "return ['ot', 'nope'].every((id) => { const s = document.getElementById(id).state; return s && (s.error || (!s.training && s.step >= 5)); });",
             120, "both preset figures to train", progress=f"[{steps_of('ot')}, {steps_of('nope')}]")
        presets = d.js("return import('/pkg/flowmatch.js').then((m) => JSON.parse(m.presets_json()))")
        names = [p["name"] for p in presets]
        got = d.js("""const w = (id) => document.getElementById(id);
            const boxes = Object.fromEntries([...w('ot').shadowRoot.querySelectorAll('.layers label')].map((l) => [l.textContent.trim(), l.querySelector('input').checked]));
            return {ot: w('ot').config, nope: w('nope').config, messages: w('nope').messages, otMessages: w('ot').messages,
                    errors: [w('ot').state.error, w('nope').state.error], boxes,
                    exports: [...w('ot').shadowRoot.querySelectorAll('.exports button')].map((b) => b.textContent)};""")
        assert got["errors"] == [None, None], got
        ot = dict(kv.split("=", 1) for kv in got["ot"].split("&"))
        assert (ot["source"], ot["dataset"], ot["coupling"], ot["batch"]) == ("8gaussians", "moons", "ot", "128"), f"the preset's configuration was not applied: {ot}"
        assert (ot["width"], ot["depth"]) == ("16", "2"), f"single attributes beside the preset did not win: {ot}"
        assert got["boxes"]["trajectories"] and got["boxes"]["target"] and not got["boxes"]["field"] and not got["boxes"]["loss"], f"the preset's views: {got['boxes']}"
        assert not got["otMessages"], got["otMessages"]
        msg = [m for m in got["messages"] if m["attribute"] == "preset"]
        assert msg and 'preset="ot-moons"' in msg[0]["message"] and all(n in msg[0]["message"] for n in names), f"unknown preset message: {got['messages']}"
        nope = dict(kv.split("=", 1) for kv in got["nope"].split("&"))
        assert nope["coupling"] == "independent" and nope["dataset"] == "moons", f"an unknown preset should leave the defaults: {nope}"
        log(f"preset ot: {got['ot']}; views {got['boxes']}; unknown: {msg[0]['message']}")
        assert ".safetensors" in got["exports"] and ".flowmatch" in got["exports"], got["exports"]

        # A live preset change applies (the path presets differ from the defaults in path only).
        d.js("document.getElementById('nope').setAttribute('preset', 'path-vp')")
        wait(d, "const w = document.getElementById('nope'); return w.config.includes('path=vp') && !w.messages.some((m) => m.attribute === 'preset');", 30, "preset=path-vp to apply")

        # The model as safetensors: a safetensors header naming nn.Sequential's tensors, and it loads
        # back into the figure bit-identically.
        r = js_async(d, """(async () => {
            const w = document.getElementById('ot');
            w.pause();
            const bits = (f) => Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length));
            const before = bits(await w._app.params());
            const bytes = new Uint8Array(await (await w.saveModel('safetensors')).arrayBuffer());
            const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
            const header = JSON.parse(new TextDecoder().decode(bytes.slice(8, 8 + n)));
            w._app.load_model(bytes, false);
            const after = bits(await w._app.params());
            let bad = null;
            try { await w.saveModel('onnx'); } catch (e) { bad = String(e.message || e); }
            return {keys: Object.keys(header), same: before.length > 0 && before.every((x, i) => x === after[i]) && before.length === after.length, size: bytes.length, bad};
        })().then(done, (e) => done({error: String(e.message || e)}));""")
        assert "error" not in r, r
        assert "0.weight" in r["keys"] and "0.bias" in r["keys"] and "__metadata__" in r["keys"], r["keys"]
        assert r["same"], "safetensors save → load did not give back the same parameters"
        assert r["bad"] and "onnx" in r["bad"] and "safetensors" in r["bad"], r["bad"]
        log(f"saveModel('safetensors'): {r['size']} B, tensors {sorted(k for k in r['keys'] if k != '__metadata__')[:6]}...; reloaded bit-identically; {r['bad']}")
        problems = csp_problems(d)
        assert not problems, f"CSP violations: {problems}"


def test_gpu_error():
    with Server() as srv, session(["--enable-unsafe-webgpu"]) as d, d.on_every_document(CAPTURE_DEVICES + FAIL_BUFFER):
        d.get(srv.url + "/__test/gpu-error.html")
        wait(d, "const w = document.getElementById('fig'); return w.state && (w.state.error || w.state.step >= 30);", 120, "the figure to train", progress=steps_of("fig"))
        d.js("window.__errors = []; document.getElementById('fig').addEventListener('error', (e) => window.__errors.push(e.detail.message));")
        shown = ("const w = document.getElementById('fig'), e = w.shadowRoot.querySelector('.error');"
                 " return e.hidden ? null : e.textContent;")

        # A new model the device refuses (a real validation error in the build's error scope).
        d.js("window.__failBuffer = 'trainer'; document.getElementById('fig').setAttribute('width', '64');")
        wait(d, "const s = document.getElementById('fig').state; return !!s.error;", 60, "the failed build's message")
        before = state(d, "fig")
        msg = before["error"]
        assert "WebGPU refused building a 64×2 model" in msg and "The model you had is kept" in msg and "press Train" in msg, msg
        assert "max" in msg.lower() or "size" in msg.lower(), f"the device's own words are missing: {msg}"
        wait(d, shown, 10, "the message on the figure")
        config = dict(kv.split("=", 1) for kv in d.js("return document.getElementById('fig').config").split("&"))
        assert config["width"] == "16", f"the settings from before the change are not back: {config}"
        assert before["step"] >= 30 and not before["training"], f"the model from before (step ≥ 30) was not kept, or training goes on: {before}"
        d.frames(30)
        after = state(d, "fig")
        assert after["step"] == before["step"] and after["error"] == msg, f"paused with the message: {after}"
        assert d.js("return window.__errors") == [msg], f"one message per failure: {d.js('return window.__errors')}"
        assert d.js("return window.__failBuffer") is None, "the hook did not fire"
        # Still usable: Train carries on from the kept model (the step counts on from where it was).
        d.js("document.getElementById('fig').play()")
        wait(d, "const s = document.getElementById('fig').state; return !s.error && s.step >= arguments[0] + 20;", 120, "training on from the kept model", before["step"], progress=steps_of("fig"))
        assert d.js(shown) is None, "the message stayed after Train"
        log(f"refused build: {msg}")

        # An error no scope catches: one message, training paused, Train resumes.
        d.js("window.__gpuDevices.at(-1).createBuffer({size: window.__gpuDevices.at(-1).limits.maxBufferSize + 4, usage: GPUBufferUsage.STORAGE});")
        wait(d, "const s = document.getElementById('fig').state; return !!s.error;", 60, "the uncaptured error's message")
        s1 = state(d, "fig")
        assert s1["error"].startswith("WebGPU reported an error (") and "Training is paused" in s1["error"], s1["error"]
        # This error, not one left over from the refused build's work (its invalid buffers were
        # trained on and drawn from until the device's check came back: part of that report).
        assert "exceeds the max buffer size" in s1["error"] and "previous error" not in s1["error"], s1["error"]
        d.frames(30)
        s2 = state(d, "fig")
        assert s2["error"] == s1["error"] and s2["step"] == s1["step"] and not s2["training"], f"not paused with the message: {s2}"
        assert d.js("return window.__errors").count(s1["error"]) == 1, f"one message per failure: {d.js('return window.__errors')}"
        d.js("document.getElementById('fig').play()")
        wait(d, "const s = document.getElementById('fig').state; return !s.error && s.step >= arguments[0] + 20;", 120, "training again", s2["step"], progress=steps_of("fig"))
        assert state(d, "fig")["devicesOpened"] == 1, "the device was replaced"
        log(f"uncaptured: {s1['error']}")


TESTS = {"blog": test_blog, "offscreen": test_offscreen, "many": test_many, "csp": test_csp, "invalid": test_invalid, "api": test_api,
         "cpu": test_cpu, "embed": test_embed, "package": test_package, "preset": test_preset,
         "gpu_error": test_gpu_error}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e widget"))
