"""numpy twins of flowmatch's random streams (src/rng.rs), target pool (src/targets/datasets.rs)
and initialisation (src/model.rs), so the PyTorch reference can swap each of its parts for ours
one at a time (bench/quality/torch_reference.py --rng ours, --pool ours, --init ours).

Bit-exact for the integer hash; float results agree with the Rust/WGSL f32 code to an ulp or so.
"""
import numpy as np

U32 = np.uint32
# rng::stream
X0_A, X0_B, T, TARGET_INDEX, PARTICLE_A, PARTICLE_B, INIT, DATA = 0, 1, 2, 3, 8, 9, 16, 32
DATASET_CODE = {"checkerboard": 0, "moons": 1, "8gaussians": 2, "25gaussians": 3,
                "circles": 4, "spirals": 5, "swissroll": 6, "pinwheel": 7}
POOL = 1 << 17  # targets::DATASET_POINTS


def pcg(v):
    v = np.asarray(v, dtype=U32)
    with np.errstate(over="ignore"):
        state = v * U32(747796405) + U32(2891336453)
        word = ((state >> ((state >> U32(28)) + U32(4))) ^ state) * U32(277803737)
    return (word >> U32(22)) ^ word


def hash4(seed, step, index, stream):
    a = lambda x: np.asarray(x, dtype=U32)
    return pcg(pcg(pcg(pcg(a(stream)) ^ a(index)) ^ a(step)) ^ a(seed))


def unit(h):
    return ((h >> U32(8)).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 16777216.0)


def box_muller(u1, u2):
    r = np.sqrt(np.float32(-2.0) * np.log(u1))
    th = np.float32(2.0 * np.pi) * u2
    return np.stack([r * np.cos(th), r * np.sin(th)], -1).astype(np.float32)


def batch_draws(seed, step, batch, pool_len):
    """x0 (B, 2) float32, t (B,) float32, target indices (B,) of step `step` (src/cpu/batch.rs)."""
    i = np.arange(batch, dtype=U32)
    x0 = box_muller(unit(hash4(seed, step, i, X0_A)), unit(hash4(seed, step, i, X0_B)))
    t = unit(hash4(seed, step, i, T))
    idx = hash4(seed, step, i, TARGET_INDEX) % U32(pool_len)
    return x0, t, idx.astype(np.int64)


def initial_particles(seed, n):
    """The sampler's starting points (src/cpu/ode.rs initial_particles)."""
    i = np.arange(n, dtype=U32)
    return box_muller(unit(hash4(seed, 0, i, PARTICLE_A)), unit(hash4(seed, 0, i, PARTICLE_B)))


# Draws per point of each generator in src/targets/datasets.rs (a normal takes two uniforms).
_DRAWS = {"checkerboard": 3, "moons": 6, "8gaussians": 5, "25gaussians": 6,
          "circles": 6, "spirals": 6, "swissroll": 5, "pinwheel": 5}


def pool(name, n, seed):
    """`sample_dataset(name, n, seed)`: the points the CLI uploads (n = 2^17), float32."""
    k = _DRAWS[name]
    c = np.arange(n * k, dtype=np.uint64).reshape(n, k)
    h = hash4(seed, 0, (c & 0xFFFFFFFF).astype(U32), DATA + DATASET_CODE[name])
    u = unit(h).astype(np.float64)
    below = lambda j, m: ((h[:, j].astype(np.uint64) * m) >> 32).astype(np.float64)
    normal = lambda j: np.sqrt(-2.0 * np.log(u[:, j])) * np.cos(2.0 * np.pi * u[:, j + 1])
    pi = np.pi
    if name == "checkerboard":
        a = -2.0 + 4.0 * u[:, 0]
        b = u[:, 2] - 2.0 * below(1, 2) + np.mod(np.floor(a), 2.0)
        p = np.stack([a / 0.45, b / 0.45], 1)
    elif name == "moons":
        s = pi * u[:, 0]
        up = below(1, 2) == 0
        px = np.where(up, np.cos(s), 1.0 - np.cos(s)) + 0.05 * normal(2)
        py = np.where(up, np.sin(s), 1.0 - np.sin(s) - 0.5) + 0.05 * normal(4)
        p = np.stack([2.0 * (px - 0.5), 2.0 * (py - 0.25)], 1)
    elif name == "8gaussians":
        th = below(0, 8) * pi / 4.0
        p = np.stack([4.0 * np.cos(th) + 0.5 * normal(1), 4.0 * np.sin(th) + 0.5 * normal(3)], 1)
    elif name == "25gaussians":
        p = np.stack([(below(0, 5) - 2.0) * 2.0 + 0.1 * normal(2), (below(1, 5) - 2.0) * 2.0 + 0.1 * normal(4)], 1)
    elif name == "circles":
        r = np.where(below(0, 2) == 0, 4.0, 2.0)
        th = 2.0 * pi * u[:, 1]
        p = np.stack([r * np.cos(th) + 0.08 * normal(2), r * np.sin(th) + 0.08 * normal(4)], 1)
    elif name == "spirals":
        s = np.sqrt(u[:, 0]) * 3.0 * pi
        sign = np.where(below(1, 2) == 0, 1.0, -1.0)
        p = np.stack([sign * -s * np.cos(s) / 2.5 + 0.1 * normal(2), sign * s * np.sin(s) / 2.5 + 0.1 * normal(4)], 1)
    elif name == "swissroll":
        s = 1.5 * pi + 3.0 * pi * u[:, 0]
        p = np.stack([s * np.cos(s) / 3.0 + 0.1 * normal(1), s * np.sin(s) / 3.0 + 0.1 * normal(3)], 1)
    elif name == "pinwheel":
        kk = below(0, 5)
        fx = 1.0 + 0.3 * normal(1)
        fy = 0.1 * normal(3)
        phi = 2.0 * pi * kk / 5.0 + 0.25 * np.exp(fx)
        p = 2.0 * np.stack([fx * np.cos(phi) - fy * np.sin(phi), fx * np.sin(phi) + fy * np.cos(phi)], 1)
    return p.astype(np.float32)


def init_linear(in_dim, out_dim, w_offset, b_offset, seed):
    """One layer of `ModelShape::init_params`: U(-1/sqrt(in), 1/sqrt(in)) keyed by the packed index."""
    bound = np.float32(1.0) / np.sqrt(np.float32(in_dim))
    wi = np.arange(w_offset, w_offset + in_dim * out_dim, dtype=U32)
    bi = np.arange(b_offset, b_offset + out_dim, dtype=U32)
    draw = lambda i: bound * (np.float32(2.0) * unit(hash4(seed, 0, i, INIT)) - np.float32(1.0))
    return draw(wi).reshape(out_dim, in_dim), draw(bi)


def init_params(width, depth, seed):
    """[(W, b)] per linear layer, as `ModelShape::init_params` (packed offsets padded to 4 floats)."""
    align = lambda n: (n + 3) // 4 * 4
    out, off = [], 0
    for l in range(depth + 1):
        i = 3 if l == 0 else width
        o = 2 if l == depth else width
        w_off = off
        off += align(i * o)
        b_off = off
        off += align(o)
        out.append(init_linear(i, o, w_off, b_off, seed))
    return out


def sliced_w2_like_rust(a, b, n_proj, seed):
    """`metrics::sliced_wasserstein2(a, b, n_proj, seed)` (src/metrics.rs), the estimator the Rust
    tests use: directions offset by `Stream::new(seed, 99).uniform()·π`, evenly spaced on the half
    circle."""
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], np.float32).astype(np.float64), np.asarray(b[:n], np.float32).astype(np.float64)
    offset = float(unit(hash4(seed, 0, 0, 99))) * np.pi
    th = offset + np.pi * np.arange(n_proj) / n_proj
    d = np.stack([np.cos(th), np.sin(th)], 0)
    pa, pb = np.sort(a @ d, axis=0), np.sort(b @ d, axis=0)
    return float(np.sqrt(np.mean(np.mean((pa - pb) ** 2, axis=0))))


def regression_test_score(samples, name, n):
    """tests/training.rs `quality_at_least_pytorchs_on_thin_targets`'s score: SW2 with 256
    directions (seed 1) against `sample_dataset(name, n, 987_654)`."""
    return sliced_w2_like_rust(samples[:n], pool(name, n, 987_654), 256, 1)
