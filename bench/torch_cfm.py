#!/usr/bin/env python3
"""PyTorch baseline for `flowmatch bench`: the same CFM training step, timed on one GPU.

Model: MLP (x, y, t) -> `depth` hidden Linear+SiLU layers of `width` units -> 2 outputs.
Batch: x0 ~ N(0, I), t ~ U(0, 1), x1 from a fixed pool of target points (moons-like),
x_t = (1 - (1 - sigma_min) t) x0 + t x1, u = x1 - (1 - sigma_min) x0, loss = mean_b ||v - u||^2.
Optimizer: torch.optim.Adam(lr=1e-3), fused where available. float32 throughout; TF32 matmuls
are OFF by default (torch's default), so the comparison is FP32 with FP32.

Prints one JSON line per config: steps/s (median over repeats of `--steps` steps, synchronised),
the same analytic GFLOP/s as `flowmatch bench` (6 * B * MACs per sample), and whether CUDA graphs
were used. Usage: python3 bench/torch_cfm.py [--config S,M,L] [--steps 500] [--graph]
"""
import argparse
import json
import math
import time

import torch

CONFIGS = {"S": (64, 3, 256), "M": (256, 4, 1024), "L": (512, 4, 4096)}


def macs_per_sample(width, depth):
    return 3 * width + (depth - 1) * width * width + width * 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="S,M,L")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--graph", action="store_true", help="capture one step in a CUDA graph")
    ap.add_argument("--tf32", action="store_true")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    dev = torch.device("cuda")
    for name in args.config.split(","):
        width, depth, batch = CONFIGS[name]
        torch.manual_seed(0)
        layers = []
        d_in = 3
        for _ in range(depth):
            layers += [torch.nn.Linear(d_in, width), torch.nn.SiLU()]
            d_in = width
        layers.append(torch.nn.Linear(d_in, 2))
        model = torch.nn.Sequential(*layers).to(dev)
        try:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=args.graph)
        except TypeError:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        # A moons-like target pool (the exact dataset does not change the step time).
        n = 100_000
        th = torch.rand(n, device=dev) * math.pi
        upper = torch.rand(n, device=dev) < 0.5
        pts = torch.stack([torch.where(upper, torch.cos(th), 1 - torch.cos(th)),
                           torch.where(upper, torch.sin(th), 0.5 - torch.sin(th))], 1)
        pts += 0.05 * torch.randn_like(pts)
        sigma_min = 0.0

        def step():
            x0 = torch.randn(batch, 2, device=dev)
            t = torch.rand(batch, 1, device=dev)
            x1 = pts[torch.randint(0, n, (batch,), device=dev)]
            xt = (1 - (1 - sigma_min) * t) * x0 + t * x1
            u = x1 - (1 - sigma_min) * x0
            v = model(torch.cat([xt, t], 1))
            loss = ((v - u) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            return loss

        for _ in range(20):
            step()
        run = step
        if args.graph:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                step()
            run = g.replay
        torch.cuda.synchronize()
        rates = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                run()
            torch.cuda.synchronize()
            rates.append(args.steps / (time.perf_counter() - t0))
        rates.sort()
        sps = rates[len(rates) // 2]
        flops = 6 * batch * macs_per_sample(width, depth)
        print(json.dumps({
            "impl": "pytorch", "config": name, "width": width, "depth": depth, "batch": batch,
            "steps_per_s": round(sps, 1), "step_ms": round(1000 / sps, 4),
            "gflops": round(flops * sps / 1e9, 1), "cuda_graph": args.graph, "tf32": args.tf32,
            "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
        }), flush=True)


if __name__ == "__main__":
    main()
