"""Runs every tests/e2e/test_*.py file's tests, FLOWMATCH_E2E_JOBS files at a time (default 2).

Most of an e2e test's time is spent waiting on the page (frames, completion signals, reads) rather
than computing, so two files at once on a 2-core machine take about half as long as one after the
other (2026-12-03, idle 2-core box: 29 min in a row). Each file runs in its own process
(`run_all.py --file test_x.py`), where tests asking for the same browser flags share one Chromium
(webdriver.session); the longest files start first (`MINUTES`, measured; only the order depends on
it). Every line a file prints is prefixed with its name, as it comes. Prints the time per file and
exits 1 if any test failed. Used by tests/e2e/run.sh when it is given no arguments; with
FLOWMATCH_E2E_JOBS=1 the files run one after another."""

import glob
import importlib
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from webdriver import run_tests  # noqa: E402

# Minutes per file on an idle 2-core machine, one file at a time (2026-12-03, .ci/run's e2e
# phase): the longest start first. A file not listed counts as 2 minutes.
MINUTES = {
    "test_reliability": 8.9, "test_quality": 5.3, "test_targets": 4.1, "test_widget": 3.4, "test_hostile": 2.0,
    "test_page": 1.9, "test_site": 1.1, "test_generation": 1.0, "test_firefox": 0.7, "test_keep": 0.4, "test_blogs": 0.3,
}

# How many lines of each failed test's traceback are printed again at the end (the end of it:
# the assertion and its message).
FAILURE_LINES = 6


def run_file(path):
    """One file's tests in this process; returns its exit status."""
    name = os.path.splitext(os.path.basename(path))[0]
    module = importlib.import_module(name)
    if not getattr(module, "TESTS", None):
        print(f"[e2e] {name} defines no TESTS", flush=True)
        return 1
    return run_tests(module.TESTS, [], f"e2e {name.removeprefix('test_')}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--file":
        return run_file(os.path.join(HERE, os.path.basename(sys.argv[2])))
    files = sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    if not files:
        print("[e2e] no tests/e2e/test_*.py files", flush=True)
        return 1
    jobs_text = os.environ.get("FLOWMATCH_E2E_JOBS", "2")
    if not jobs_text.isdigit() or int(jobs_text) < 1:
        print(f"[e2e] FLOWMATCH_E2E_JOBS must be a whole number of at least 1, got '{jobs_text}'", flush=True)
        return 2
    jobs = int(jobs_text)
    name = lambda p: os.path.splitext(os.path.basename(p))[0]  # noqa: E731
    files.sort(key=lambda p: -MINUTES.get(name(p), 2.0))
    print(f"[e2e] {len(files)} files, {jobs} at a time: {', '.join(name(p) for p in files)}", flush=True)
    lock = threading.Lock()
    failed, times, errors = [], {}, {}
    queue = list(files)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop(0)
                print(f"[e2e] {os.path.relpath(path)}", flush=True)
            t0 = time.time()
            tag = f"[{name(path).removeprefix('test_')}] "
            proc = subprocess.Popen([sys.executable, "-u", os.path.abspath(__file__), "--file", path],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            trace = []  # the lines from a traceback to its test's FAILED line
            for line in proc.stdout:
                with lock:
                    sys.stdout.write(tag + line)
                    sys.stdout.flush()
                if line.startswith("Traceback") or trace:
                    trace.append(line)
                if trace and line.rstrip().endswith(": FAILED"):
                    errors.setdefault(name(path), []).append(trace[-FAILURE_LINES:])
                    trace = []
            status = proc.wait()
            with lock:
                times[name(path)] = time.time() - t0
                if status != 0:
                    failed.append(name(path))

    threads = [threading.Thread(target=worker) for _ in range(min(jobs, len(files)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("[e2e] time per file: " + ", ".join(f"{n} {t / 60:.1f} min" for n, t in sorted(times.items())), flush=True)
    if failed:
        # Again at the end, where a log's tail (all CI keeps) shows them: why each test failed.
        for n in sorted(errors):
            for trace in errors[n]:
                sys.stdout.write("".join(f"[{n.removeprefix('test_')}] {line}" for line in trace))
        print(f"[e2e] failed: {', '.join(sorted(failed))}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
