"""The PyTorch reference for docs/QUALITY.md: what a PyTorch user runs with Meta's flow_matching.

Defaults (the issue's setup): MLP (x, y, t) -> 3 x 64 SiLU -> 2, time as a raw input, PyTorch's
default nn.Linear init, Adam lr 1e-2, batch 256, 2000 steps, fresh target samples every batch
(bench/quality/datasets.py), flow_matching's AffineProbPath(CondOTScheduler) and loss
`((v - dx_t)**2).mean()`, then flow_matching's ODESolver with 100 Euler steps for 20,000 samples.
Every run is scored by bench/quality/score.py (sliced W2 against 20,000 fresh target samples).

Each part that can differ from flowmatch can be swapped for flowmatch's, one at a time, to measure
what it is worth (bench/quality/ablate.sh; numpy twins in bench/quality/ours.py):
  --loss sum          flowmatch's loss: sum over the two coordinates, mean over the batch (2x torch's)
  --eps E             Adam's epsilon (torch default 1e-8)
  --adam ours         Adam written out in f32 as src/cpu/adam.rs (instead of torch.optim.Adam)
  --init ours         flowmatch's hash-keyed U(-1/sqrt(in), 1/sqrt(in)) (same law as torch's)
  --pool ours         x1 from flowmatch's finite pool: the 2^17 points `flowmatch train` uploads
  --rng ours          x0, t and the pool index from flowmatch's counter-based hash (needs --pool)
  --sampler ours      flowmatch's particle starts and plain Euler loop instead of ODESolver
  --schedule S        learning-rate schedule: constant (default) or cosine (to 0 at the last step)
  --t stratified      t_i = (i + u_i)/B: one time per stratum of the batch (instead of i.i.d. uniform)
With all of them set to ours it is flowmatch's CPU reference trainer (examples/cpu_quality.rs).

    python torch_reference.py --dataset moons --seeds 0,1,2 [--out-dir DIR] [switches]
prints one JSON line per seed.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
from flow_matching.path import AffineProbPath
from flow_matching.path.scheduler import CondOTScheduler
from flow_matching.solver import ODESolver
from flow_matching.utils import ModelWrapper

import datasets
import ours
import score


class MLP(torch.nn.Module):
    def __init__(self, width, depth):
        super().__init__()
        layers, d = [], 3
        for _ in range(depth):
            layers += [torch.nn.Linear(d, width), torch.nn.SiLU()]
            d = width
        layers.append(torch.nn.Linear(d, 2))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x, t):
        t = t.reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(torch.cat([x, t], 1))


class Wrapped(ModelWrapper):
    def forward(self, x, t, **extras):
        return self.model(x, t)


class OurAdam:
    """src/cpu/adam.rs in f32: bias corrections computed in f64, applied as factors."""

    def __init__(self, params, lr, eps, b1=0.9, b2=0.999):
        self.params, self.lr, self.eps, self.b1, self.b2, self.t = list(params), lr, eps, b1, b2, 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.param_groups = [{"lr": lr}]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        c1 = np.float32(1.0 / (1.0 - self.b1 ** self.t))
        c2 = np.float32(1.0 / (1.0 - self.b2 ** self.t))
        lr = self.param_groups[0]["lr"]
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            m.mul_(self.b1).add_((1 - self.b1) * g)
            v.mul_(self.b2).add_((1 - self.b2) * g * g)
            p.sub_(lr * (m * float(c1)) / (torch.sqrt(v * float(c2)) + self.eps))


def lr_at(args, step):
    if args.schedule == "constant":
        return args.lr
    if args.schedule == "cosine":
        return args.lr * 0.5 * (1.0 + math.cos(math.pi * step / args.steps))
    raise ValueError(args.schedule)


def run(args, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MLP(args.width, args.depth)
    if args.init == "ours":
        with torch.no_grad():
            lin = [m for m in model.net if isinstance(m, torch.nn.Linear)]
            for m, (w, b) in zip(lin, ours.init_params(args.width, args.depth, seed)):
                m.weight.copy_(torch.from_numpy(w))
                m.bias.copy_(torch.from_numpy(b))
    if args.adam == "torch":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=args.eps)
    else:
        opt = OurAdam(model.parameters(), lr=args.lr, eps=args.eps)
    path = AffineProbPath(scheduler=CondOTScheduler())
    pool = torch.from_numpy(ours.pool(args.dataset, ours.POOL, seed)) if args.pool == "ours" else None
    losses, tail = [], []
    t0 = time.perf_counter()
    checks = {args.steps - args.check_every * k for k in range(1, args.checkpoints)}
    for step in range(args.steps):
        if step in checks:
            tail.append(score.score(sample(args, model, seed), args.dataset, min(args.samples, 20000)))
        for g in opt.param_groups:
            g["lr"] = lr_at(args, step)
        if args.rng == "ours":
            x0, t, idx = ours.batch_draws(seed, step, args.batch, len(pool))
            x0, t, x1 = torch.from_numpy(x0), torch.from_numpy(t), pool[torch.from_numpy(idx)]
        else:
            if pool is not None:
                x1 = pool[torch.randint(0, len(pool), (args.batch,))]
            else:
                x1 = torch.from_numpy(datasets.sample(args.dataset, args.batch, rng)).float()
            x0 = torch.randn_like(x1)
            t = torch.rand(x1.shape[0])
        if args.t == "stratified":
            t = (torch.arange(args.batch, dtype=torch.float32) + t) / args.batch
        ps = path.sample(t=t, x_0=x0, x_1=x1)
        err = (model(ps.x_t, ps.t) - ps.dx_t) ** 2
        loss = err.sum(1).mean() if args.loss == "sum" else err.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(err.detach().sum(1).mean()))  # reported as flowmatch reports it
    train_s = time.perf_counter() - t0
    return sample(args, model, seed), losses, train_s, tail


def sample(args, model, seed):
    """`args.samples` points integrated from t = 0 to 1 with `args.nfe` Euler steps."""
    with torch.no_grad():
        if args.sampler == "ours":
            x = torch.from_numpy(ours.initial_particles(seed + 1, args.samples))
            h = 1.0 / args.nfe
            for k in range(args.nfe):
                x = x + h * model(x, torch.tensor(k / args.nfe, dtype=torch.float32))
        else:
            # Its own generator, so scoring checkpoints leaves the training draws alone.
            x_init = torch.randn(args.samples, 2, generator=torch.Generator().manual_seed(seed + 1))
            grid = torch.linspace(0.0, 1.0, args.nfe + 1)
            x = ODESolver(velocity_model=Wrapped(model)).sample(x_init=x_init, method="euler", step_size=None, time_grid=grid)
    return x.numpy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="moons", choices=datasets.NAMES)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--nfe", type=int, default=100)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--loss", default="mean", choices=["mean", "sum"])
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--adam", default="torch", choices=["torch", "ours"])
    ap.add_argument("--init", default="torch", choices=["torch", "ours"])
    ap.add_argument("--pool", default="fresh", choices=["fresh", "ours"])
    ap.add_argument("--rng", default="torch", choices=["torch", "ours"])
    ap.add_argument("--sampler", default="torch", choices=["torch", "ours"])
    ap.add_argument("--t", default="uniform", choices=["uniform", "stratified"])
    ap.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    ap.add_argument("--checkpoints", type=int, default=1,
                    help="also score the model this many times in all, every --check-every steps up to the end (sw2_tail: their mean)")
    ap.add_argument("--check-every", type=int, default=50)
    ap.add_argument("--test-score", action="store_true",
                    help="also score as tests/training.rs does (sw2_test: flowmatch's estimator and target set)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-dir")
    ap.add_argument("--losses", action="store_true", help="include every step's loss in the JSON line")
    args = ap.parse_args()
    if args.rng == "ours" and args.pool != "ours":
        ap.error("--rng ours draws pool indices: it needs --pool ours")
    torch.set_num_threads(args.threads)
    switches = {k: getattr(args, k) for k in ["loss", "eps", "adam", "init", "pool", "rng", "sampler", "schedule", "t"]}
    for seed in [int(s) for s in args.seeds.split(",")]:
        samples, losses, train_s, tail = run(args, seed)
        line = {"impl": "pytorch", "dataset": args.dataset, "seed": seed, "steps": args.steps, "batch": args.batch,
                "width": args.width, "depth": args.depth, "lr": args.lr, "nfe": args.nfe, "samples": args.samples,
                **switches, "final_loss": round(float(np.mean(losses[-100:])), 5),
                "sw2": round(score.score(samples, args.dataset, min(args.samples, 20000)), 5),
                "train_seconds": round(train_s, 2), "torch": torch.__version__}
        if args.test_score:
            line["sw2_test"] = round(ours.regression_test_score(samples, args.dataset, args.samples), 5)
        if args.checkpoints > 1:
            line["sw2_tail"] = round(float(np.mean(tail + [line["sw2"]])), 5)
        if args.losses:
            line["losses"] = [round(l, 7) for l in losses]
        if args.out_dir:
            f = f"{args.out_dir}/torch-{args.dataset}-{seed}.csv"
            np.savetxt(f, samples, delimiter=",", header="x,y", comments="")
            line["out"] = f
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
