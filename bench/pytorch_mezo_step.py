#!/usr/bin/env python3
"""PyTorch reference for `zotune bench zo-step`: one MeZO step as MeZO's trainer does it
(per-parameter z ~ N(0, 1) drawn from a seeded generator for each of the four passes:
+eps, -2 eps, +eps and the update; two forwards with the LM loss), or with `--queries N` one
step of FZOO's rule (the unperturbed loss, then per perturbation u_i (Rademacher, seeded):
+eps u_i, a forward, -eps u_i; then the update -lr * sum_i (L_i - L0) / (N std) u_i, each u_i
drawn again), on a named shape (OPT, or SmolLM2's Llama) with random weights, fp32.

    python3 bench/pytorch_mezo_step.py --shape opt-125m --batch 4 --seq 128 --threads 2 [--queries 8]
Prints one JSON line with the median seconds per step and tokens/s (B*T per step).
"""
import json
import statistics
import time

import torch

from pytorch_forward import workload


def main():
    args, model, ids = workload(iterations=3, extra=[("--queries", int, 0)])
    params = [p for p in model.parameters() if p.requires_grad]
    eps, lr = 1e-3, 1e-6

    def perturb(seed, scale):
        generator = torch.Generator().manual_seed(seed)
        for p in params:
            z = torch.normal(0, 1, size=p.shape, generator=generator, dtype=p.dtype)
            p.add_(scale * z)

    def rademacher(seed, scale):
        generator = torch.Generator().manual_seed(seed)
        for p in params:
            z = torch.randint(0, 2, size=p.shape, generator=generator, dtype=p.dtype).mul_(2).sub_(1)
            p.add_(scale * z)

    def fzoo_step(seed):
        n = args.queries
        with torch.no_grad():
            base = model(input_ids=ids, labels=ids).loss.item()
            losses = []
            for i in range(n):
                rademacher(seed * 1000 + i, eps)
                losses.append(model(input_ids=ids, labels=ids).loss.item())
                rademacher(seed * 1000 + i, -eps)
            spread = torch.tensor(losses).std().item() or 1.0
            for i in range(n):
                rademacher(seed * 1000 + i, -lr * (losses[i] - base) / (n * spread))
        return base, losses

    def step(seed):
        if args.queries:
            return fzoo_step(seed)
        with torch.no_grad():
            perturb(seed, eps)
            plus = model(input_ids=ids, labels=ids).loss.item()
            perturb(seed, -2 * eps)
            minus = model(input_ids=ids, labels=ids).loss.item()
            perturb(seed, eps)
            g = (plus - minus) / (2 * eps)
            perturb(seed, -lr * g)
        return plus, minus

    step(0)  # warm-up
    times = []
    for i in range(args.iterations):
        start = time.perf_counter()
        step(i + 1)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({"bench": "zo-step", "implementation": "pytorch", "torch": torch.__version__, "shape": args.shape,
                      "estimator": f"population N {args.queries} one-sided std" if args.queries else "q 1",
                      "threads": args.threads, "batch": args.batch, "seq": args.seq, "iterations": args.iterations,
                      "seconds_per_step_median": median, "seconds_per_step_min": min(times),
                      "tokens_per_s": args.batch * args.seq / median}))


if __name__ == "__main__":
    main()
