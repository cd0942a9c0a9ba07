"""hel-table6: seconds per training batch of every method, on the same networks, batch and machine.

    python -m poolvae.timing --scale cpu [--steps 10] [--methods helvae mopoe ...]

Every method is built from the same run config (data set, architecture, latent size, batch size of
the given scale), trained for a few warm-up steps and then timed over ``--steps`` optimiser steps
(forward, backward, Adam) on real batches; the median is reported, with the ratio to HELVAE measured
in the same run. The share of HELVAE's step spent in the Hellinger pooling itself (forward and
backward on the step's expert shapes) is reported too. Writes ``results/hel-table6.json``; the paper's
own numbers (A100 GPUs) are in ``results/paper/`` and are not comparable in seconds, only in ranking.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from . import aggregators as agg
from .artefacts import RESULTS_DIR, provenance, write_json
from .models import METHODS
from .train import batches, build_model, load_data, make_config


def time_method(method: str, scale: str, steps: int, warmup: int, seed: int, dataset: str) -> dict:
    """Median seconds per training step of ``method`` and the pooling share for Gaussian pools."""
    cfg = make_config(dataset, method, scale, seed=seed)
    data = load_data(cfg, "train")
    model = build_model(cfg, data.dataset.spec if isinstance(data, torch.utils.data.Subset) else data.spec)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    it = batches(data, cfg.batch_size, seed, 0)
    fixed = [next(it)[1] for _ in range(min(warmup + steps, 4))]  # a few real batches, reused
    times = []
    with agg.checks(False):
        for s in range(warmup + steps):
            mods = fixed[s % len(fixed)]
            t0 = time.perf_counter()
            out = model(mods)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            if s >= warmup:
                times.append(time.perf_counter() - t0)
    return {"seconds_per_batch": statistics.median(times), "batch_size": cfg.batch_size,
            "latent_dim": cfg.latent_dim, "arch": cfg.arch, "K": cfg.K, "config": cfg.__dict__}


def pooling_seconds(M: int, B: int, D: int, rule: str = "hellinger", repeats: int = 20) -> float:
    """Median seconds of forward + backward of one pooling rule on experts (M, B, D)."""
    mu = torch.randn(M, B, D).requires_grad_()
    logvar = torch.randn(M, B, D).requires_grad_()
    fn, times = agg.get_pool(rule), []
    with agg.checks(False):
        for r in range(repeats + 2):
            t0 = time.perf_counter()
            q = fn(mu, logvar)
            (q.mu.sum() + q.logvar.sum()).backward()
            if r >= 2:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(scale: str = "cpu", methods=None, steps: int = 10, warmup: int = 3, seed: int = 0,
        dataset: str = "polymnist-mini") -> dict:
    """Time every method; return the hel-table6 results dictionary."""
    methods = list(METHODS) if methods is None else list(methods)
    rows = {}
    for m in methods:
        rows[m] = time_method(m, scale, steps, warmup, seed, dataset)
        print(f"{m:15s} {rows[m]['seconds_per_batch']:.4f} s/batch", flush=True)
    ref = rows.get("helvae", {}).get("seconds_per_batch")
    for r in rows.values():
        r["ratio_to_helvae"] = r["seconds_per_batch"] / ref if ref else None
    out = {"item": "hel-table6", "scale": scale, "dataset": dataset, "steps": steps, "warmup": warmup,
           "threads": torch.get_num_threads(), "methods": rows}
    if "helvae" in rows:
        h = rows["helvae"]
        M = 5 if dataset.startswith("polymnist") else 2
        pool = pooling_seconds(M, h["batch_size"], h["latent_dim"])
        out["helvae_pooling_seconds"] = pool
        out["helvae_pooling_share_of_step"] = pool / h["seconds_per_batch"]
    out["provenance"] = provenance(seed=seed, scale=scale)
    return out


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="hel-table6: seconds per training batch of every method")
    p.add_argument("--scale", default="cpu", choices=["ci", "cpu", "paper"])
    p.add_argument("--dataset", default="polymnist-mini")
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output JSON (default results/hel-table6.json)")
    a = p.parse_args(argv)
    res = run(a.scale, a.methods, a.steps, a.warmup, a.seed, a.dataset)
    path = a.out or RESULTS_DIR / "hel-table6.json"
    write_json(path, res)
    if "helvae_pooling_share_of_step" in res:
        print(f"Hellinger pooling: {100 * res['helvae_pooling_share_of_step']:.2f}% of HELVAE's step")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
