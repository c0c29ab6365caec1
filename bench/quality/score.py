"""Sliced Wasserstein-2 scorer, independent of flowmatch's own (src/metrics.rs).

SW2(P, Q) = sqrt(mean over K directions θ of W2²(<P, θ>, <Q, θ>)), directions evenly spaced on
the half circle from a random offset, each 1D W2² exact from the sorted projections of two sets of
equal size. Targets are fresh samples from bench/quality/datasets.py (the spec, not the project's
generators), drawn with a fixed seed per dataset so every run is scored against the same set.

    python score.py FILE.csv --dataset moons [--n 20000]   # one line of JSON per file
    python score.py --floor [--n 20000]                     # target vs target, per dataset
"""
import argparse
import json
import zlib

import numpy as np

import datasets

DIRECTIONS = 512
REF_SEED = 20_000_000  # the scoring set; the floor's second set uses REF_SEED + 1


def reference(name, n, seed=REF_SEED):
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return datasets.sample(name, n, rng)


def sliced_w2(a, b, directions=DIRECTIONS, seed=7):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    off = np.random.default_rng(seed).random() * np.pi
    th = off + np.pi * np.arange(directions) / directions
    d = np.stack([np.cos(th), np.sin(th)], 0)  # (2, K)
    pa = np.sort(a @ d, axis=0)
    pb = np.sort(b @ d, axis=0)
    return float(np.sqrt(np.mean((pa - pb) ** 2)))


def score(samples, name, n=20000):
    """SW2 of the first n samples against n fresh target samples."""
    samples = np.asarray(samples)
    if len(samples) < n:
        raise ValueError(f"need {n} samples, got {len(samples)}")
    return sliced_w2(samples[:n], reference(name, n))


def floor(name, n=20000):
    """SW2 between two independent target samples of size n: the estimator's own noise."""
    return sliced_w2(reference(name, n, REF_SEED + 1), reference(name, n))


def read_csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*")
    ap.add_argument("--dataset")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--floor", action="store_true")
    args = ap.parse_args()
    if args.floor:
        for name in datasets.NAMES:
            print(json.dumps({"dataset": name, "n": args.n, "floor": round(floor(name, args.n), 5)}))
    for f in args.files:
        print(json.dumps({"file": f, "dataset": args.dataset, "n": args.n, "sw2": round(score(read_csv(f), args.dataset, args.n), 5)}))


if __name__ == "__main__":
    main()
