"""Minimal W3C WebDriver client (Python 3 stdlib only) for driving headless Chromium through
/usr/bin/chromedriver, plus a small PNG decoder for reading screenshot pixels.

Used by tests/e2e/test_page.py; started by tests/e2e/run.sh.
"""

import atexit
import base64
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zlib

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
BASE_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]
# Where screenshots of the e2e tests go (the repository's artifacts/ unless overridden).
ARTIFACTS = os.environ.get("FLOWMATCH_E2E_ARTIFACTS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "artifacts"))


def log(*a):
    """A test's progress line, indented under its "<prefix> <name>" header."""
    print("  ", *a, flush=True)


def save(name, png):
    """Writes PNG bytes to ARTIFACTS/name and logs the path."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    with open(path, "wb") as f:
        f.write(png)
    log(f"screenshot: {os.path.normpath(path)}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(RuntimeError):
    pass


class Driver:
    """One chromedriver process and one browser session."""

    def __init__(self, extra_args=(), window=(1280, 900)):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="chromedriver-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        self.profile = tempfile.mkdtemp(prefix="flowmatch-e2e-profile-")
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = None
        deadline = time.time() + 20
        while True:
            try:
                self._request("GET", "/status")
                break
            except (OSError, WebDriverError):
                if time.time() > deadline or self.proc.poll() is not None:
                    tail = self.log_tail()
                    self.close()
                    raise WebDriverError(f"chromedriver did not start; its log ends: {tail}")
                time.sleep(0.1)
        args = BASE_ARGS + [f"--user-data-dir={self.profile}", f"--window-size={window[0]},{window[1]}"] + list(extra_args)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 120000, "pageLoad": 120000},
        }}}
        try:
            value = self._request("POST", "/session", caps)
        except Exception:
            self.close()
            raise
        self.session = value["sessionId"]

    def _request(self, method, path, body=None, timeout=120):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read())
            except ValueError:
                raise WebDriverError(f"{method} {path}: HTTP {e.code}") from None
            raise WebDriverError(f"{method} {path}: {payload.get('value', payload)}") from None
        return payload.get("value")

    def cmd(self, method, path, body=None):
        return self._request(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        """Runs `script` as a function body (use `return`)."""
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def on_new_document(self, source):
        """Runs `source` at the start of every page this session loads, before the page's own
        scripts (Chromium's Page.addScriptToEvaluateOnNewDocument through chromedriver). Returns
        its identifier: a shared session (`session`) outlives the test, so remove it when done
        (`remove_on_new_document`)."""
        r = self.cmd("POST", "/goog/cdp/execute", {"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": {"source": source}})
        return r["identifier"]

    def remove_on_new_document(self, identifier):
        self.cmd("POST", "/goog/cdp/execute", {"cmd": "Page.removeScriptToEvaluateOnNewDocument", "params": {"identifier": identifier}})

    @contextlib.contextmanager
    def on_every_document(self, source):
        """`on_new_document(source)` for the duration of a `with` block, removed after it (a shared
        session outlives the test)."""
        identifier = self.on_new_document(source)
        try:
            yield
        finally:
            self.remove_on_new_document(identifier)

    def wait_for(self, script, timeout, what, poll=0.5, progress=None, args=()):
        """Polls `script` until it returns something truthy; raises with `what` and the last state
        after `timeout` seconds. With `progress` (a JS expression whose value changes while the
        page works towards the condition, e.g. "window.flowmatch.stepsRead"), it fails only after
        `timeout` seconds WITHOUT a change of that value: a slow or loaded machine makes the wait
        longer, a page that stopped working fails. `args` are passed to both scripts."""
        deadline = time.time() + timeout
        last = self.js(f"return {progress}", *args) if progress else None
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if progress:
                now = self.js(f"return {progress}", *args)
                if now != last:
                    last, deadline = now, time.time() + timeout
            if time.time() > deadline:
                state = self.js("return JSON.stringify(Object.fromEntries(Object.entries(window.flowmatch || {}).filter(([k, v]) => typeof v !== 'function' && k !== 'app')))")
                stalled = f" ({progress} stayed at {last})" if progress else ""
                raise AssertionError(f"timed out after {timeout}s{stalled} waiting for {what}; page state: {state}")
            time.sleep(poll)

    def js_async(self, script, *args):
        """Runs `script` with `done` bound to WebDriver's async callback (call `done(value)`)."""
        body = "const done = arguments[arguments.length - 1];\n" + script
        return self.cmd("POST", "/execute/async", {"script": body, "args": list(args)})

    def frames(self, n):
        """Waits for `n` animation frames of the page (requestAnimationFrame callbacks): every
        animation loop on the page had `n` chances to run. Tests that check that something does
        NOT happen (a paused or off-screen figure) wait for frames, not for time."""
        self.js_async("let k = arguments[0]; const tick = () => (--k <= 0 ? done(true) : requestAnimationFrame(tick));"
                      " requestAnimationFrame(tick);", n)

    def wait_presented(self, state="window.flowmatch.app.state()", frames=2, timeout=60):
        """Waits until `frames` more frames have reached the canvas (`framesPresented` of the App
        state given by the JS expression `state`). With the readback presenter one frame can be
        on its way when this is called, so 2 means: at least one frame drawn after this call.
        `timeout` is a stall window, not a deadline: it fails only when neither a frame nor any other
        work of the engine (`workDone`: GPU submissions completed) finished for that long. On a
        loaded machine a software adapter may need many seconds per frame behind queued work."""
        p0 = self.js(f"return {state}.framesPresented")
        self.wait_for(f"return {state}.framesPresented >= {p0 + frames}", timeout, f"{frames} more frames on the canvas",
                      progress=f"{state}.framesPresented + '/' + {state}.workDone")

    def console(self):
        """Browser console entries since the last call (chromedriver's log endpoint)."""
        for path in ("/se/log", "/log"):
            try:
                return [f"{e.get('level')}: {e.get('message')}" for e in self.cmd("POST", path, {"type": "browser"})]
            except WebDriverError:
                continue
        return []

    def screenshot(self):
        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def close(self):
        if self.session:
            try:
                self._request("DELETE", f"/session/{self.session}", timeout=20)
            except Exception:
                pass
            self.session = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
        # The log is read only while the driver lives (log_tail); left behind, every session's
        # log piled up in /tmp (355 after a few days of test runs).
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def log_tail(self, n=2000):
        """The last `n` characters of chromedriver's log (for an error message)."""
        try:
            self.log.flush()
            with open(self.log.name, errors="replace") as f:
                return f.read()[-n:]
        except OSError as e:
            return f"(unreadable: {e})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def alive(self):
        try:
            self.cmd("GET", "/url")
            return True
        except Exception:
            return False

    def reset(self):
        """Back to a blank tab for the next test: no page, the console log drained, no media
        emulation (test_widget's theme test emulates prefers-color-scheme through CDP), and no
        model kept by the demo page (www/keep.js: its stored model would be offered back to the
        next test's page, and leaving would ask first)."""
        try:
            self.js_async("const k = window.flowmatch && window.flowmatch.keep;"
                          " if (k) k.forget().then(() => done(true)); else done(false);")
        except WebDriverError:
            pass
        self.get("about:blank")
        self.console()
        self.cmd("POST", "/goog/cdp/execute", {"cmd": "Emulation.setEmulatedMedia", "params": {"media": "", "features": []}})


_sessions = {}


@contextlib.contextmanager
def session(extra_args=(), window=(1280, 900)):
    """A browser for one test, shared with the later tests of this process that ask for the same
    flags and window size: starting Chromium and chromedriver costs seconds per test, and every
    test starts from its own page load anyway. Each use begins on about:blank with the console log
    drained and media emulation off (`Driver.reset`); a test that fails closes its browser, so the
    next test gets a fresh one."""
    key = (tuple(extra_args), tuple(window))
    d = _sessions.pop(key, None)
    if d is not None and not d.alive():
        d.close()
        d = None
    if d is None:
        d = Driver(extra_args, window)
    else:
        d.reset()
    try:
        yield d
    except BaseException:
        d.close()
        raise
    _sessions[key] = d


@atexit.register
def close_sessions():
    for d in _sessions.values():
        d.close()
    _sessions.clear()


def decode_png(data):
    """8-bit RGB/RGBA non-interlaced PNG → (width, height, channels, bytearray of rows)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {color}, interlace {interlace})")
    ch = 4 if color == 6 else 3
    raw = zlib.decompress(b"".join(idat))
    stride = width * ch
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(ch, stride):
                line[i] = (line[i] + line[i - ch]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - ch] if i >= ch else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - ch] if i >= ch else 0
                b = prev[i]
                c = prev[i - ch] if i >= ch else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return width, height, ch, out


def run_tests(tests, names, prefix="e2e"):
    """Runs the named tests of `tests` ({name: function}; all of them when `names` is empty), one
    after another, printing "<prefix> <name>: ok (<s>)" or the traceback and "FAILED". Returns the
    process exit status: 0 when all passed, 1 otherwise."""
    import time
    import traceback
    failed = []
    for name in names or list(tests):
        print(f"{prefix} {name}", flush=True)
        t0 = time.time()
        try:
            tests[name]()
            print(f"{prefix} {name}: ok ({time.time() - t0:.0f}s)", flush=True)
        except Exception:
            traceback.print_exc()
            print(f"{prefix} {name}: FAILED", flush=True)
            failed.append(name)
    if failed:
        print(f"{prefix} failed: {', '.join(failed)}")
        return 1
    print(f"{prefix}: all passed")
    return 0


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
