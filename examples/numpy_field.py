#!/usr/bin/env python3
"""A flowmatch model without flowmatch: numpy + the `safetensors` package (PyPI), nothing else.

Reads a model saved by `flowmatch train --save m.safetensors` (or the page's Save as safetensors),
rebuilds the velocity field v(x, y, t) from its tensors and metadata (docs/MODEL_FORMAT.md), and
integrates it with the same fixed-step solvers as flowmatch (euler, midpoint, rk4).

    python3 examples/numpy_field.py info   m.safetensors
    python3 examples/numpy_field.py field  m.safetensors XYT.csv  [--out V.csv]
    python3 examples/numpy_field.py sample m.safetensors X0.csv   [--solver rk4] [--nfe 20] [--out X1.csv]

CSV files have a header line (`x,y,t` / `x,y`), as the flowmatch command line writes them.
`field` writes `x,y,t,vx,vy`; `sample` writes `x,y` at t = 1. Without --out, to stdout.
The network is `nn.Sequential(Linear(3, W), Act, ..., Linear(W, 2))` on the input (x, y, t):
tensor `{i}.weight` has shape (out, in), `{i}.bias` (out,), for the module indices listed in
the metadata's `linear_layers` (0, 2, 4, ...). Everything is computed in float64.
"""

import argparse
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

# The activation functions, as flowmatch computes them (src/cpu/activation.rs): GELU is the tanh
# approximation (torch.nn.GELU(approximate='tanh')).
ACTIVATIONS = {
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "relu": lambda z: np.maximum(z, 0.0),
    "gelu": lambda z: 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3))),
    "tanh": np.tanh,
}

# Butcher tableaux (c, a, b) of the fixed-step solvers (src/tableau.rs).
TABLEAUX = {
    "euler": ([0.0], [[]], [1.0]),
    "midpoint": ([0.0, 0.5], [[], [0.5]], [0.0, 1.0]),
    "rk4": ([0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
}


class Model:
    """The velocity field of a saved flowmatch model."""

    def __init__(self, path):
        with safe_open(path, framework="numpy") as f:
            self.meta = f.metadata() or {}
        if self.meta.get("inputs") != "x,y,t":
            raise ValueError(f"{path}: expected inputs 'x,y,t', found {self.meta.get('inputs')!r}")
        tensors = load_file(path)
        self.act = ACTIVATIONS[self.meta["activation"]]
        self.layers = []
        for i in self.meta["linear_layers"].split(","):
            w, b = tensors[f"{i}.weight"], tensors[f"{i}.bias"]
            self.layers.append((w.astype(np.float64), b.astype(np.float64)))
        self.step = int(tensors["adam.step"]) if "adam.step" in tensors else None

    def field(self, xyt):
        """v(x, y, t) for an (N, 3) array of inputs: an (N, 2) array."""
        h = np.asarray(xyt, dtype=np.float64)
        for k, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if k + 1 < len(self.layers):
                h = self.act(h)
        return h

    def integrate(self, x0, solver="euler", nfe=100, t0=0.0, t1=1.0):
        """Integrates dx/dt = v(x, t) from t0 to t1 in `nfe` equal steps of `solver`."""
        c, a, b = TABLEAUX[solver]
        x = np.asarray(x0, dtype=np.float64).copy()
        h = (t1 - t0) / nfe
        for k in range(nfe):
            t = t0 + (t1 - t0) * (k / nfe)
            ks = []
            for s in range(len(c)):
                xs = x + h * sum(a[s][j] * ks[j] for j in range(s)) if s else x
                ks.append(self.field(np.column_stack([xs, np.full(len(xs), t + c[s] * h)])))
            x = x + h * sum(bs * ks_ for bs, ks_ in zip(b, ks))
        return x


def read_csv(path, columns):
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if data.shape[1] != columns:
        raise ValueError(f"{path}: expected {columns} columns, found {data.shape[1]}")
    return data


def write_csv(path, header, rows):
    out = open(path, "w") if path else sys.stdout
    out.write(header + "\n")
    for r in rows:
        out.write(",".join(repr(float(v)) for v in r) + "\n")
    if path:
        out.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["info", "field", "sample"])
    p.add_argument("model", help="a .safetensors file saved by flowmatch")
    p.add_argument("points", nargs="?", help="field: x,y,t CSV; sample: x,y CSV of start points")
    p.add_argument("--solver", choices=sorted(TABLEAUX), default="euler")
    p.add_argument("--nfe", type=int, default=100, help="solver steps (default 100)")
    p.add_argument("--out", help="output CSV (default: stdout)")
    args = p.parse_args(argv)
    model = Model(args.model)
    if args.command == "info":
        for k in sorted(model.meta):
            print(f"{k}: {model.meta[k]}")
        print(f"step: {model.step}")
        return
    if not args.points:
        p.error(f"{args.command} needs a CSV of points")
    if args.command == "field":
        xyt = read_csv(args.points, 3)
        write_csv(args.out, "x,y,t,vx,vy", np.column_stack([xyt, model.field(xyt)]))
    else:
        if args.nfe < 1:
            p.error("--nfe must be at least 1")
        x1 = model.integrate(read_csv(args.points, 2), args.solver, args.nfe)
        write_csv(args.out, "x,y", x1)


if __name__ == "__main__":
    main()
