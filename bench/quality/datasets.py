"""The standard 2D targets of shared/spec/datasets.md, written from the spec's table alone.

Independent of the Rust generators (src/targets/datasets.rs): numpy's PCG64 generator and its own
normal sampler, float64. Used for the PyTorch reference's fresh batches and for the scorer's fresh
target samples. `sample(name, n, rng)` returns an (n, 2) float64 array.
"""
import numpy as np

NAMES = ["moons", "circles", "8gaussians", "checkerboard", "25gaussians", "spirals", "swissroll", "pinwheel"]


def sample(name, n, rng):
    u = lambda: rng.random(n)
    nrm = lambda: rng.standard_normal(n)
    k = lambda m: rng.integers(0, m, n)
    if name == "checkerboard":
        a = -2.0 + 4.0 * u()
        b = u() - 2.0 * k(2)
        b = b + np.mod(np.floor(a), 2.0)
        return np.stack([a, b], 1) / 0.45
    if name == "moons":
        s = np.pi * u()
        upper = u() < 0.5
        px = np.where(upper, np.cos(s), 1.0 - np.cos(s))
        py = np.where(upper, np.sin(s), 1.0 - np.sin(s) - 0.5)
        px = px + 0.05 * nrm()
        py = py + 0.05 * nrm()
        return 2.0 * np.stack([px - 0.5, py - 0.25], 1)
    if name == "8gaussians":
        th = k(8) * np.pi / 4.0
        return np.stack([4.0 * np.cos(th) + 0.5 * nrm(), 4.0 * np.sin(th) + 0.5 * nrm()], 1)
    if name == "25gaussians":
        i, j = k(5), k(5)
        return np.stack([(i - 2.0) * 2.0 + 0.1 * nrm(), (j - 2.0) * 2.0 + 0.1 * nrm()], 1)
    if name == "circles":
        r = np.where(u() < 0.5, 4.0, 2.0)
        th = 2.0 * np.pi * u()
        return np.stack([r * np.cos(th) + 0.08 * nrm(), r * np.sin(th) + 0.08 * nrm()], 1)
    if name == "spirals":
        s = np.sqrt(u()) * 3.0 * np.pi
        sign = np.where(u() < 0.5, 1.0, -1.0)
        px, py = sign * -s * np.cos(s), sign * s * np.sin(s)
        return np.stack([px / 2.5 + 0.1 * nrm(), py / 2.5 + 0.1 * nrm()], 1)
    if name == "swissroll":
        s = 1.5 * np.pi + 3.0 * np.pi * u()
        return np.stack([s * np.cos(s) / 3.0 + 0.1 * nrm(), s * np.sin(s) / 3.0 + 0.1 * nrm()], 1)
    if name == "pinwheel":
        kk = k(5)
        fx = 1.0 + 0.3 * nrm()
        fy = 0.1 * nrm()
        phi = 2.0 * np.pi * kk / 5.0 + 0.25 * np.exp(fx)
        c, s = np.cos(phi), np.sin(phi)
        return 2.0 * np.stack([fx * c - fy * s, fx * s + fy * c], 1)
    raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(NAMES)}")
