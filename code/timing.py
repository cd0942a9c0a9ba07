"""hel-table6: seconds per training batch of every method, on the same networks, batch and machine.

    python -m poolvae.timing --scale cpu [--steps 10] [--methods helvae mopoe ...]

Every method is built from the same run config (data set, architecture, latent size, batch size of
the given scale), trained for a few warm-up steps and then timed over ``--rounds`` interleaved rounds
of ``--steps`` optimiser steps each (forward, backward, Adam) on real batches; the median is reported,
with the ratio to HELVAE measured in the same run. The share of HELVAE's step spent in the Hellinger
pooling itself (forward and backward on the step's expert shapes) is reported too. Writes
``results/hel-table6.json``; the paper's own numbers (A100 GPUs) are in ``results/paper/`` and are not
comparable in seconds, only in ranking.
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


class _Stepper:
    """One method's model, optimiser and a few fixed real batches, ready to time training steps."""

    def __init__(self, method: str, scale: str, seed: int, dataset: str, n_batches: int = 4):
        self.cfg = make_config(dataset, method, scale, seed=seed)
        data = load_data(self.cfg, "train")
        spec = data.dataset.spec if isinstance(data, torch.utils.data.Subset) else data.spec
        self.model = build_model(self.cfg, spec)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        it = batches(data, self.cfg.batch_size, seed, 0)
        self.fixed = [next(it)[1] for _ in range(n_batches)]  # a few real batches, reused
        self.times: list[float] = []
        self.calls = 0

    def step(self, record: bool) -> None:
        """One optimiser step (forward, backward, Adam); its wall time is kept when ``record``."""
        mods = self.fixed[self.calls % len(self.fixed)]
        self.calls += 1
        t0 = time.perf_counter()
        out = self.model(mods)
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.opt.step()
        if record:
            self.times.append(time.perf_counter() - t0)

    def row(self) -> dict:
        """The method's row of hel-table6."""
        cfg = self.cfg
        return {"seconds_per_batch": statistics.median(self.times), "batch_size": cfg.batch_size,
                "latent_dim": cfg.latent_dim, "arch": cfg.arch, "K": cfg.K, "timed_steps": len(self.times),
                "config": cfg.__dict__}


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
        dataset: str = "polymnist-mini", rounds: int = 5) -> dict:
    """Time every method; return the hel-table6 results dictionary.

    The methods are interleaved: ``rounds`` rounds, each timing ``steps`` steps of every method in turn,
    so a change in the machine's load during the run (other processes, frequency scaling) falls on every
    method alike instead of on whichever ran at that moment; the median over all timed steps is reported.
    """
    methods = list(METHODS) if methods is None else list(methods)
    steppers = {m: _Stepper(m, scale, seed, dataset) for m in methods}
    with agg.checks(False):
        for st in steppers.values():
            for _ in range(warmup):
                st.step(record=False)
        for r in range(rounds):
            for st in steppers.values():
                for _ in range(steps):
                    st.step(record=True)
            print(f"round {r + 1}/{rounds}: " + ", ".join(f"{m} {statistics.median(st.times):.4f}"
                                                        for m, st in steppers.items()), flush=True)
    rows = {m: st.row() for m, st in steppers.items()}
    ref = rows.get("helvae", {}).get("seconds_per_batch")
    for r in rows.values():
        r["ratio_to_helvae"] = r["seconds_per_batch"] / ref if ref else None
    out = {"item": "hel-table6", "scale": scale, "dataset": dataset, "steps": steps, "rounds": rounds, "warmup": warmup,
           "threads": torch.get_num_threads(), "methods": rows}
    if "helvae" in rows:
        h = rows["helvae"]
        pool = pooling_seconds(steppers["helvae"].model.M, h["batch_size"], h["latent_dim"])
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
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of --steps steps per method")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output JSON (default results/hel-table6.json)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    res = run(a.scale, a.methods, a.steps, a.warmup, a.seed, a.dataset, a.rounds)
    path = a.out or RESULTS_DIR / "hel-table6.json"
    write_json(path, res)
    if "helvae_pooling_share_of_step" in res:
        print(f"Hellinger pooling: {100 * res['helvae_pooling_share_of_step']:.2f}% of HELVAE's step")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
