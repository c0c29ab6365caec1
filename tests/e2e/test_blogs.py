"""The blog-engine recipes of docs/EMBEDDING.md, built with the real tools and run in headless
Chromium under the strict Content-Security-Policy of tests/e2e/test_widget.py.

1. hugo: a small Hugo site (Debian's `hugo`) with the shipped shortcode
   (examples/hugo/layouts/shortcodes/flowmatch.html) and `markup.goldmark.renderer.unsafe = true`;
   one post embeds two figures, one through the shortcode and one as raw HTML in the Markdown.
   Both train (their step counters pass 20, finite losses) on one shared device, with no CSP
   violation and nothing loaded from another origin. The same site built without `unsafe` drops
   the raw figure ("raw HTML omitted"): why the setting is part of the recipe.
2. markdown: a plain Markdown post with the raw-HTML figure (the Jekyll recipe: kramdown, like
   python-markdown, passes raw HTML through), converted by python-markdown (`.venv`, PyPI), trains.

The package's files come from pkg/ (tests/e2e/run.sh builds it), copied where a blog hosts them
(`/flowmatch/`). Run by `tests/e2e/run.sh test_blogs.py [hugo markdown]`.
"""

import functools
import http.server
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webdriver import log, run_tests, session  # noqa: E402
from test_widget import CSP, LISTEN_JS, foreign_resources, state, wait  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# The package's files a blog hosts: those pkg/package.json lists (the widget imports its chart,
# download and formatting modules from next to itself).
def package_files():
    import json
    with open(os.path.join(ROOT, "pkg", "package.json")) as f:
        return [n for n in json.load(f)["files"] if not n.endswith("/")]


# Small, fast figures: SwiftShader trains them at tens of steps per second.
SMALL = 'width="16" depth="2" batch="64" particles="300" nfe="8" train-steps="0"'

HUGO_CONFIG = """baseURL = "/"
title = "A flow-matching blog"
disableKinds = ["taxonomy", "term", "RSS", "sitemap"]
[markup.goldmark.renderer]
unsafe = {unsafe}
"""

# A bare single-page layout (a real theme has its own); the first script records CSP violations.
HUGO_SINGLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ .Title }}</title>
<script src="/listen.js"></script></head>
<body><main><h1>{{ .Title }}</h1>{{ .Content }}</main></body></html>
"""
HUGO_LIST = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ .Title }}</title></head><body></body></html>
"""

POST = """---
title: "Two flows"
---
Conditional flow matching learns a velocity field. Here it is, through the shortcode:

{{{{< flowmatch id="shortcode" dataset="moons" {small} >}}}}Noise flowing onto two moons.{{{{< /flowmatch >}}}}

and as raw HTML pasted into the Markdown:

<flow-matching-demo id="raw" dataset="8gaussians" {small}>Eight Gaussians.</flow-matching-demo>

The end.
"""

MARKDOWN_POST = """# A post in plain Markdown

Raw HTML passes through python-markdown (and Jekyll's kramdown) untouched:

<script type="module" src="/flowmatch/widget.js"></script>
<flow-matching-demo id="md" dataset="circles" {small}>Circles.</flow-matching-demo>

That is all.
"""

MARKDOWN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>markdown</title>
<script src="/listen.js"></script></head>
<body><main>{body}</main></body></html>
"""


class CSPHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        pass


class Site:
    """A temporary web root with the package under /flowmatch/, served on 127.0.0.1."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="flowmatch-blog-")
        self.root = os.path.join(self.dir, "public")
        os.makedirs(os.path.join(self.root, "flowmatch"))
        for name in package_files():
            src = os.path.join(ROOT, "pkg", name)
            assert os.path.isfile(src), f"pkg/{name} is missing: run scripts/build-wasm.sh (tests/e2e/run.sh does)"
            shutil.copy(src, os.path.join(self.root, "flowmatch", name))
        with open(os.path.join(self.root, "listen.js"), "w") as f:
            f.write(LISTEN_JS)
        handler = functools.partial(CSPHandler, directory=self.root)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


def build_hugo(src, dest, unsafe):
    """Writes the Hugo site into `src` and builds it into `dest`; returns the post's HTML."""
    os.makedirs(os.path.join(src, "content", "posts"), exist_ok=True)
    os.makedirs(os.path.join(src, "layouts", "_default"), exist_ok=True)
    shutil.copytree(os.path.join(ROOT, "examples", "hugo", "layouts", "shortcodes"), os.path.join(src, "layouts", "shortcodes"), dirs_exist_ok=True)
    files = {
        "config.toml": HUGO_CONFIG.format(unsafe="true" if unsafe else "false"),
        "layouts/_default/single.html": HUGO_SINGLE,
        "layouts/_default/list.html": HUGO_LIST,
        "content/posts/two-flows.md": POST.format(small=SMALL),
    }
    for name, text in files.items():
        with open(os.path.join(src, name), "w") as f:
            f.write(text)
    hugo = shutil.which("hugo")
    assert hugo, "hugo is not installed: run scripts/setup.sh (apt-get install hugo)"
    out = subprocess.run([hugo, "--quiet", "--source", src, "--destination", dest], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"hugo failed: {out.stdout}{out.stderr}"
    with open(os.path.join(dest, "posts", "two-flows", "index.html")) as f:
        return f.read()


def check_trains(d, url, ids, min_step=20):
    """Loads `url`, scrolls to each figure and waits until it trains; checks CSP and origins."""
    d.get(url)
    for fig in ids:
        d.js("document.getElementById(arguments[0]).scrollIntoView({block: 'center'})", fig)
        wait(d, f"const s = document.getElementById('{fig}').state; return s && (s.error || s.step >= {min_step});", 180, f"figure #{fig} to train")
        s = state(d, fig)
        # A real CFM loss is positive: 0 means nothing ran (an invalid pipeline still counts steps).
        assert not s["error"] and s["step"] >= min_step and math.isfinite(s["loss"]) and s["loss"] > 0, f"#{fig}: {s}"
        log(f"{url.rsplit('/', 2)[-2] or url}: #{fig} at step {s['step']}, loss {s['loss']:.3f}, backend {s['backend']}")
    devices = d.js("return [...document.querySelectorAll('flow-matching-demo')].map((w) => w.state && w.state.devicesOpened)")
    assert all(n == 1 for n in devices), f"the figures should share one GPU device: {devices}"
    logs = d.console()  # (read once: each read drains the browser's log)
    problems = d.js("return window.__csp || []") + [m for m in logs if "Content Security Policy" in m or "Refused to" in m]
    assert not problems, f"CSP violations: {problems}"
    gpu_errors = [m for m in logs if "WGSL" in m or "Invalid" in m]
    assert not gpu_errors, f"WebGPU errors: {gpu_errors[:3]}"
    foreign = foreign_resources(d)
    assert not foreign, f"resources from other origins: {foreign}"


def test_hugo():
    with Site() as site:
        src = os.path.join(site.dir, "hugo")
        html = build_hugo(src, os.path.join(site.root), unsafe=True)
        assert html.count("<flow-matching-demo") == 2, html
        assert html.count('src="/flowmatch/widget.js"') == 1, "the shortcode emits the module script once per page"
        assert 'train-steps="0"' in html, "dashed attribute names survive Hugo's templates"
        strict = build_hugo(os.path.join(site.dir, "hugo-strict"), os.path.join(site.dir, "strict"), unsafe=False)
        assert strict.count("<flow-matching-demo") == 1 and "raw HTML omitted" in strict, \
            "without markup.goldmark.renderer.unsafe Hugo should drop the raw figure (and keep the shortcode's)"
        with session(["--enable-unsafe-webgpu"]) as d:
            check_trains(d, site.url + "/posts/two-flows/", ["shortcode", "raw"])


def test_markdown():
    python = os.environ.get("FLOWMATCH_PYTHON", os.path.join(ROOT, ".venv", "bin", "python"))
    with Site() as site:
        src = os.path.join(site.dir, "post.md")
        with open(src, "w") as f:
            f.write(MARKDOWN_POST.format(small=SMALL))
        out = subprocess.run([python, "-m", "markdown", src], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"python-markdown failed (run scripts/setup.sh for .venv): {out.stderr}"
        assert "<flow-matching-demo" in out.stdout and '<script type="module"' in out.stdout, out.stdout
        os.makedirs(os.path.join(site.root, "md"))
        with open(os.path.join(site.root, "md", "index.html"), "w") as f:
            f.write(MARKDOWN_PAGE.format(body=out.stdout))
        with session(["--enable-unsafe-webgpu"]) as d:
            check_trains(d, site.url + "/md/", ["md"])


TESTS = {"hugo": test_hugo, "markdown": test_markdown}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv[1:], "e2e blogs"))
