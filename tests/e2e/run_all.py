"""Runs every tests/e2e/test_*.py file's tests in one process, so that tests asking for the same
browser flags share one Chromium (webdriver.session) instead of starting their own. Prints each
file's header, each test's "ok (<s>)" or traceback and "FAILED", the time per file, and exits 1 if
any test failed. Used by tests/e2e/run.sh when it is given no arguments."""

import glob
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from webdriver import run_tests  # noqa: E402


def main():
    files = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    if not files:
        print("[e2e] no tests/e2e/test_*.py files", flush=True)
        return 1
    failed, times = [], []
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        print(f"[e2e] {os.path.relpath(path)}", flush=True)
        t0 = time.time()
        module = importlib.import_module(name)
        if not getattr(module, "TESTS", None):
            print(f"[e2e] {name} defines no TESTS", flush=True)
            failed.append(name)
            continue
        if run_tests(module.TESTS, [], f"e2e {name.removeprefix('test_')}") != 0:
            failed.append(name)
        times.append((name, time.time() - t0))
    print("[e2e] time per file: " + ", ".join(f"{n} {t / 60:.1f} min" for n, t in times), flush=True)
    if failed:
        print(f"[e2e] failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
