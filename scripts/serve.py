#!/usr/bin/env python3
"""Serves the flowmatch site (and only the site) on 127.0.0.1: the files the pages need, listed
once in SITE below, never the repository around them (no /.git/, /src/, /Cargo.toml) and no
directory listings. Requests whose Host header is not 127.0.0.1:PORT or localhost:PORT are
refused with 421 (a DNS-rebinding page on another name cannot read the site through the
browser). Used by scripts/demo.sh and tests/e2e/run.sh, so the e2e suite tests what users run.

    python3 scripts/serve.py PORT [--quiet]

Python 3 standard library only.
"""

import argparse
import http.server
import os
import sys
import urllib.parse

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# The site: the pages, their scripts and styles (www/), the wasm package (pkg/, written by
# scripts/build-wasm.sh) and the icon. A folder ends with '/'. One list: add a shipped file here.
SITE = ("index.html", "embed.html", "favicon.svg", "www/", "pkg/")


def allowed(path, site):
    """Whether the URL path `path` (decoded, starting with '/') names a file of `site`. Paths
    with '..', '.'-segments, backslashes or NULs are never allowed."""
    rel = path.lstrip("/")
    if rel == "":
        rel = "index.html"
    parts = rel.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts) or "\\" in rel or "\0" in rel:
        return None
    for entry in site:
        if entry.endswith("/") and rel.startswith(entry) or rel == entry:
            return rel
    return None


class Handler(http.server.SimpleHTTPRequestHandler):
    site = SITE
    hosts = ()
    quiet = False
    # Module scripts and wasm need their types (wasm's streaming compile insists on it).
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
                      ".svg": "image/svg+xml"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=ROOT, **kwargs)

    def _check(self):
        """The file to serve (relative path), or None after sending the refusal."""
        host = (self.headers.get("Host") or "").lower()
        if host not in self.hosts:
            self.send_error(421, f"Misdirected Request: this server answers to {' or '.join(self.hosts)} only")
            return None
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        rel = allowed(path, self.site)
        full = rel and os.path.join(ROOT, *rel.split("/"))
        if not full or not os.path.isfile(full):
            self.send_error(404, "Not Found")
            return None
        return rel

    def send_head(self):
        rel = self._check()
        if rel is None:
            return None
        self.path = "/" + rel  # what SimpleHTTPRequestHandler opens (a file: never a listing)
        return super().send_head()

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def list_directory(self, path):  # never reached (only files pass _check); kept closed anyway
        self.send_error(404, "Not Found")
        return None

    def log_message(self, fmt, *args):
        if not self.quiet:
            super().log_message(fmt, *args)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--quiet", action="store_true", help="no request log")
    args = ap.parse_args(argv)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]
    Handler.hosts = (f"127.0.0.1:{port}", f"localhost:{port}")
    Handler.quiet = args.quiet
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
