"""Reliability of the demo page in headless Chromium (WebGPU on SwiftShader), driven over WebDriver.

1. divergence: after a good snapshot exists, lr = 1e3 → training pauses with a message naming the
   learning rate, no "NaN" anywhere on the page, the Restore button shows; lr back to 0.01 and
   Restore → training resumes from the snapshot's step and stays finite.
2. device_loss: GPUDevice.destroy() mid-training → a new device is opened, the model continues
   from the last snapshot's step (not from 0) within a few seconds, and the loss after resuming is
   no worse than around the snapshot.
3. reconfig: 200 reconfigurations (width, dataset, batch, particles alternating) → the live engine
   buffer count (state.liveBuffers, src/gpu/counter.rs) returns to its start; the page still trains.
4. save_load: save → load round trip is bit-identical (parameter readback and file bytes); a
   truncated file, a file of another shape and a random file are each refused with their own
   message and the current model is kept.
5. soak: the S model (width 64, depth 3, batch 256) trains FLOWMATCH_E2E_SOAK_STEPS (default
   20,000) steps at a fixed pace; JS heap (after a forced GC) and liveBuffers at the end are within a
   small margin of the start. On SwiftShader this takes long (see README: about the time printed).

`python3 tests/e2e/test_reliability.py [divergence|device_loss|reconfig|save_load|soak ...]`, or
`tests/e2e/run.sh test_reliability.py [names]`.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import Driver, log, run_tests  # noqa: E402

URL = os.environ.get("FLOWMATCH_E2E_URL", "http://127.0.0.1:8000/")
WEBGPU = ["--enable-unsafe-webgpu"]
SOAK_STEPS = int(os.environ.get("FLOWMATCH_E2E_SOAK_STEPS", "20000"))
STATE = ("const s = window.flowmatch; return {step: s.step, training: s.training, diverged: s.diverged, error: s.error,"
         " snapshotStep: s.snapshotStep, canRestore: s.canRestore, recoveries: s.recoveries, recovering: s.recovering,"
         " deviceGeneration: s.deviceGeneration, devicesOpened: s.devicesOpened, liveBuffers: s.liveBuffers,"
         " lossRecent: s.lossRecent, stepsRead: s.stepsRead, trajStep: s.trajStep}")


def wait_ready(d, timeout=90):
    d.wait_for("const s = window.flowmatch; return s && (s.ready || s.error);", timeout, "the page to start")
    s = d.js("const s = window.flowmatch; return {ready: s.ready, error: s.error, backend: s.backend}")
    assert s["ready"] and not s["error"] and s["backend"] == "webgpu", f"page failed to start on WebGPU: {s}"
    d.wait_for("return !!document.getElementById('save-model')", 10, "the model buttons")


def run_async(d, expr, timeout=60):
    """Evaluates a promise-returning JS expression; returns its value or {'error': message}."""
    d.js(f"window.__r = undefined; Promise.resolve().then(() => {expr}).then(v => window.__r = {{ok: v === undefined ? null : v}},"
         " e => window.__r = {error: String(e && e.message || e)});")
    r = d.wait_for("return window.__r", timeout, expr)
    return r


def losses(d):
    flat = d.js("return Array.from(window.flowmatch.app.losses())")
    return [(int(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]


def mean(xs):
    return sum(xs) / len(xs)


def test_divergence():
    with Driver(WEBGPU) as d:
        d.get(URL + "?case=divergence")
        wait_ready(d)
        d.wait_for("const s = window.flowmatch; return s.snapshotStep !== null && s.snapshotStep >= 60", 120, "a good snapshot")
        d.js("window.flowmatch.app.set('lr', '1000')")
        d.wait_for("return window.flowmatch.diverged", 60, "the divergence to be detected")
        time.sleep(1.5)
        s = d.js(STATE)
        assert not s["training"], f"training did not pause: {s}"
        msg = s["error"] or ""
        assert "diverged" in msg and "learning rate (1000)" in msg and "Restore last good weights" in msg, msg
        page = d.js("return {text: document.body.innerText, banner: document.getElementById('error').textContent,"
                    " restoreShown: !document.getElementById('restore').hidden}")
        assert "NaN" not in page["text"].replace(msg, ""), "NaN is shown on the page"
        assert "learning rate" in page["banner"], page["banner"]
        assert page["restoreShown"], "the Restore button is not shown after a divergence"
        log(f"message: {msg}")
        snap = s["snapshotStep"]
        d.js("window.flowmatch.app.set('lr', '0.01'); document.getElementById('restore').click()")
        d.wait_for(f"const s = window.flowmatch; return s.training && !s.diverged && s.stepsRead > {snap} + 60", 60, "training to resume")
        time.sleep(2)
        s = d.js(STATE)
        assert not s["diverged"] and s["error"] is None, f"diverged again after restore: {s}"
        after = [l for st, l in losses(d) if st >= snap]
        assert after and min(st for st, _ in losses(d) if st >= snap) == snap, "the loss curve does not continue at the snapshot's step"
        assert all(l == l and abs(l) < 1e30 for l in after), "non-finite losses after restore"
        assert s["trajStep"] is not None and s["trajStep"] >= snap
        log(f"restored step {snap}, resumed to step {s['step']}, loss {s['lossRecent']:.4f}")


# Keeps every GPUDevice the page opens, so the test can destroy one as a driver reset would (the
# published package has no such hook).
CAPTURE_DEVICES = """
window.__gpuDevices = [];
if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    window.__gpuDevices.push(device);
    return device;
  };
}
"""
DESTROY_DEVICE = "window.__gpuDevices.at(-1).destroy()"


def test_device_loss():
    with Driver(WEBGPU) as d:
        d.on_new_document(CAPTURE_DEVICES)
        d.get(URL + "?case=device-loss")
        wait_ready(d)
        d.wait_for("const s = window.flowmatch; return s.snapshotStep !== null && s.snapshotStep >= 300", 180, "a snapshot at step ≥ 300")
        before = d.js(STATE)
        assert before["deviceGeneration"] == 1 and before["recoveries"] == 0, before
        d.js(DESTROY_DEVICE)
        t0 = time.time()
        d.wait_for("const s = window.flowmatch; return s.recoveries === 1 && !s.recovering", 30, "the recovery")
        t_recovered = time.time() - t0
        s = d.js(STATE)
        snap = s["snapshotStep"]
        assert s["deviceGeneration"] == 2 and s["devicesOpened"] == 2, f"no new device: {s}"
        d.wait_for(f"const s = window.flowmatch; return s.stepsRead >= {snap} + 120", 60, "training to resume on the new device")
        t_resumed = time.time() - t0
        pts = losses(d)
        resumed = [st for st, _ in pts if st >= snap]
        assert min(resumed) == snap, f"training did not continue from the snapshot's step {snap} (first step after: {min(resumed)})"
        # Loss "at the snapshot": mean of the 60 steps before it; after resuming: the first 60 steps
        # from it. Minibatch noise on 60-step means is a few percent (batch 128); training only
        # lowers the loss, so 15% covers the noise, while a restart from the initial weights shows
        # up as a loss several times higher.
        pre = [l for st, l in pts if snap - 60 <= st < snap]
        post = [l for st, l in pts if snap <= st < snap + 60]
        assert len(pre) >= 40 and len(post) >= 40, (len(pre), len(post))
        first = [l for st, l in pts if st < 60]
        log(f"recovered in {t_recovered:.1f}s, training again after {t_resumed:.1f}s; loss before {mean(pre):.4f}, "
            f"after {mean(post):.4f} (initial {mean(first):.4f}); lost {before['step'] - snap} unsnapshotted steps at most")
        assert mean(post) <= 1.15 * mean(pre), f"loss after recovery {mean(post)} is worse than before {mean(pre)}"
        assert t_resumed < 30, t_resumed
        errs = d.js("return window.flowmatch.error")
        assert errs is None, errs
        # A second loss: the new device is watched too.
        d.js(DESTROY_DEVICE)
        d.wait_for("const s = window.flowmatch; return s.recoveries === 2 && !s.recovering", 30, "the second recovery")
        snap2 = d.js("return window.flowmatch.snapshotStep")
        d.wait_for(f"const s = window.flowmatch; return s.stepsRead >= {snap2} + 40", 60, "training after the second loss")
        s = d.js(STATE)
        assert s["deviceGeneration"] == 3 and s["error"] is None and s["step"] >= snap2 >= snap, s
        log(f"second loss: device 3, continued from step {snap2}")


def settle_buffers(d):
    """Pauses training and the periodic sliced-W2 reading (whose probe sampler is a transient set of
    buffers, freed when each reading resolves) and returns the engine's live buffer count."""
    d.js("window.flowmatch.app.pause(); window.flowmatch.qualityAuto = false;")
    d.wait_for("return !window.flowmatch.qualityInFlight", 60, "the sliced-W2 reading in flight to finish")
    time.sleep(2.0)
    return d.js("return window.flowmatch.liveBuffers")


def test_reconfig():
    with Driver(WEBGPU) as d:
        d.get(URL + "?case=reconfig#particles=500")
        wait_ready(d)
        d.wait_for("return window.flowmatch.stepsRead > 20", 60, "some training")
        start = settle_buffers(d)
        assert start > 0, start
        t0 = time.time()
        created0 = d.js("return window.flowmatch.app.state().buffersCreated")
        r = run_async(d, """(async () => {
            const app = window.flowmatch.app, frame = () => new Promise(r => requestAnimationFrame(r));
            const sets = [['width', ['24', '32']], ['dataset', ['circles', 'moons']], ['batch', ['64', '128']], ['particles', ['300', '500']]];
            let peak = 0;
            for (let i = 0; i < 200; i++) {
                const [key, vals] = sets[i % 4];
                app.set(key, vals[Math.floor(i / 4) % 2]);
                if (i % 10 === 9) await frame();
                peak = Math.max(peak, app.state().liveBuffers);
            }
            return {peak, query: app.query()};
        })()""", timeout=600)
        assert "ok" in r, r
        created = d.js("return window.flowmatch.app.state().buffersCreated") - created0
        log(f"200 reconfigurations in {time.time() - t0:.0f}s; {created} buffers created; peak liveBuffers {r['ok']['peak']}")
        # 150 of them rebuild the model (trainer: 13 buffers, two samplers: 6 each), 50 the particles.
        assert created >= 150 * 25 + 50 * 6, f"the reconfigurations did not rebuild the engine ({created} buffers created)"
        assert r["ok"]["peak"] == start, f"more than one model alive at a time: peak {r['ok']['peak']}, start {start}"

        end = settle_buffers(d)
        assert end == start, f"liveBuffers {start} before, {end} after 200 reconfigurations"
        # A model too big for the device: refused before allocation, with the largest batch/width
        # that fit; the current model stays.
        q0 = d.js("return window.flowmatch.app.query()")
        d.js("window.flowmatch.app.apply_hash('#width=1024&depth=8&batch=65536')")
        big = d.js("return {error: window.flowmatch.app.state().error, query: window.flowmatch.app.query(), live: window.flowmatch.app.state().liveBuffers}")
        log(f"too big: {big['error']}")
        assert big["error"] and "does not fit this GPU" in big["error"] and "the largest batch that fits at width 1024 is" in big["error"], big
        assert big["query"] == q0 and big["live"] == start, f"the current model was not kept: {big}"
        d.js("window.flowmatch.app.play()")
        s0 = d.js("return window.flowmatch.stepsRead")
        assert d.js("return window.flowmatch.app.state().error") is None
        d.wait_for(f"return window.flowmatch.stepsRead > {s0} + 20", 30, "training after the reconfigurations")
        s = d.js(STATE)
        assert s["error"] is None, s
        log(f"liveBuffers {start} → {end}; page still trains (step {s['step']})")


def test_save_load():
    with Driver(WEBGPU) as d:
        d.get(URL + "?case=save-load")
        wait_ready(d)
        d.wait_for("return window.flowmatch.stepsRead > 100", 60, "training")
        d.js("window.flowmatch.app.pause()")
        time.sleep(0.5)
        r = run_async(d, """(async () => {
            const app = window.flowmatch.app;
            const bits = (f) => Array.from(new Uint32Array(f.buffer, f.byteOffset, f.length));
            const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
            const tryLoad = (bytes, reshape) => { try { app.load_model(bytes, reshape); return null; } catch (e) { return String(e.message || e); } };
            const out = {};
            const A = await app.save_model();
            const p1 = bits(await app.params());
            const step1 = app.state().step;
            app.set('width', '16');                       // another model
            out.otherShapeParams = (await app.params()).length;
            const C = await app.save_model();               // a width-16 file for the mismatch case
            out.loadA = tryLoad(A, true);                   // reconfigures back to width 32
            out.widthAfterLoad = app.get('width');
            out.stepAfterLoad = app.state().step;
            const p2 = bits(await app.params());
            out.paramsIdentical = eq(p1, p2);
            out.nParams = p1.length;
            out.stepSaved = step1;
            const B = await app.save_model();
            out.bytesIdentical = eq(Array.from(A), Array.from(B));
            out.fileBytes = A.length;
            const kept = async () => eq(bits(await app.params()), p1) && app.get('width') === '32';
            out.truncated = tryLoad(A.slice(0, A.length - 37), true);
            out.keptAfterTruncated = await kept();
            out.otherShape = tryLoad(C, false);
            out.keptAfterOtherShape = await kept();
            const R = new Uint8Array(A.length);
            let x = 12345;
            for (let i = 0; i < R.length; i++) { x = (x * 1103515245 + 12345) >>> 0; R[i] = x >>> 24; }
            out.random = tryLoad(R, true);
            out.keptAfterRandom = await kept();
            const D = A.slice(); D[D.length - 20] ^= 0x40;  // one flipped bit in the weights
            out.corrupt = tryLoad(D, true);
            out.keptAfterCorrupt = await kept();
            return out;
        })()""", timeout=120)
        assert "ok" in r, r
        o = r["ok"]
        log({k: v for k, v in o.items()})
        assert o["loadA"] is None, o["loadA"]
        assert o["widthAfterLoad"] == "32" and o["stepAfterLoad"] == o["stepSaved"], o
        assert o["paramsIdentical"] and o["bytesIdentical"], "save → load is not bit-identical"
        assert o["truncated"] and "truncated" in o["truncated"], o["truncated"]
        assert o["otherShape"] and "width 16" in o["otherShape"] and "width 32" in o["otherShape"], o["otherShape"]
        assert o["random"] and "not a flowmatch model file" in o["random"], o["random"]
        assert o["corrupt"] and "checksum" in o["corrupt"], o["corrupt"]
        assert len({o["truncated"], o["otherShape"], o["random"], o["corrupt"]}) == 4, "the errors are not distinct"
        for k in ("keptAfterTruncated", "keptAfterOtherShape", "keptAfterRandom", "keptAfterCorrupt"):
            assert o[k], f"{k}: the current model was not kept"


def heap(d):
    return d.js("if (window.gc) { window.gc(); window.gc(); } return performance.memory ? performance.memory.usedJSHeapSize : null")


def test_soak():
    with Driver(WEBGPU + ["--js-flags=--expose-gc"]) as d:
        d.get(URL + "?case=soak#width=64&depth=3&batch=256&particles=800&nfe=16")
        wait_ready(d)
        d.js("window.flowmatch.app.set_pacing(16)")
        # The page's adaptive backlog cap (about 0.6 s of the measured rate, at least 4 steps)
        # meets status reads that take 0.2–2 s to come back on SwiftShader, which holds S to
        # about 3 steps/s; 128 queued steps keep the adapter busy (10–15 steps/s alongside the
        # page's drawing) so 20,000 steps fit the test command.
        d.js("window.flowmatch.app.set_backlog_cap(128)")
        d.wait_for("return window.flowmatch.stepsRead >= 50", 300, "warm-up")
        time.sleep(1)
        # Buffer counts are read between sliced-W2 readings (each reading's probe is transient);
        # the readings run for the whole soak, as on the page.
        quiet = "window.flowmatch.qualityAuto = false;"
        d.js(quiet)
        d.wait_for("return !window.flowmatch.qualityInFlight", 60, "the sliced-W2 reading in flight to finish")
        h0, b0, s0, t0 = heap(d), d.js("return window.flowmatch.liveBuffers"), d.js("return window.flowmatch.stepsRead"), time.time()
        d.js("window.flowmatch.qualityAuto = true;")
        log(f"start: step {s0}, JS heap {h0 and h0 / 1e6:.1f} MB, liveBuffers {b0}")
        last = time.time()
        while True:
            s = d.js(STATE)
            assert s["error"] is None, s
            if s["stepsRead"] >= SOAK_STEPS:
                break
            if time.time() - last > 60:
                log(f"  step {s['stepsRead']}, {(s['stepsRead'] - s0) / (time.time() - t0):.0f} steps/s, liveBuffers {s['liveBuffers']}")
                last = time.time()
            assert time.time() - t0 < 6 * 3600, "soak run too slow"
            time.sleep(5)
        elapsed = time.time() - t0
        d.js(quiet)
        d.wait_for("return !window.flowmatch.qualityInFlight", 60, "the sliced-W2 reading in flight to finish")
        time.sleep(1)
        h1, b1 = heap(d), d.js("return window.flowmatch.liveBuffers")
        s = d.js(STATE)
        log(f"end: step {s['stepsRead']} after {elapsed:.0f}s ({(s['stepsRead'] - s0) / elapsed:.0f} steps/s), "
            f"JS heap {h1 and h1 / 1e6:.1f} MB, liveBuffers {b1}, loss {s['lossRecent']:.4f}")
        # In flight at any moment: at most one status read, one snapshot and one frame readback
        # (each a transient staging buffer).
        assert abs(b1 - b0) <= 3, f"liveBuffers {b0} → {b1}"
        if h0 and h1:
            # The page keeps bounded state (4000-point loss history); 5 MB covers allocator noise.
            assert h1 - h0 < 5e6, f"JS heap grew {h0 / 1e6:.1f} → {h1 / 1e6:.1f} MB"


TESTS = {"divergence": test_divergence, "device_loss": test_device_loss, "reconfig": test_reconfig,
         "save_load": test_save_load, "soak": test_soak}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e"))
