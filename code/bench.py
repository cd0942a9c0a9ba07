"""Benchmark of every pooling rule: forward + backward time per call, as ratios to PoE.

Run ``python -m poolvae.bench`` (or ``make bench``). For each rule and each number of experts M it
times one forward pass and one backward pass of a scalar loss through the rule at batch B and latent
size D (defaults B = 256, D = 512, M in {2, 3, 5, 8, 12}), takes the median over repeats, and divides by
the PoE time measured in the same run on the same inputs: ratios, not seconds, are what carry over
between machines. Mixtures over subsets hold 2^M - 1 pooled components; where their working set would
exceed ``--max-gib`` they are skipped and the JSON says so. The growth exponent of each rule in M (the
slope of log time against log M) is fitted too: Hellinger's is about 2 (pairs), never exponential.
Results go to ``results/bench/aggregators.json``.

``--compiled poe hellinger ...`` also times those rules through :func:`poolvae.aggregators.compiled`
(``torch.compile``) at ``--compiled-M`` (default 5), in the same run, as ratios to the eager and to the
compiled PoE; compiling takes seconds to a minute per rule and shape on a CPU, so only a few are timed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from . import aggregators as agg
from .artefacts import RESULTS_DIR, provenance, write_json
from .distributions import DiagGaussian

MIXTURE_RULES = {"mopoe", "mwb", "mohel", "mocode"}


def _loss(out) -> torch.Tensor:
    """A scalar that depends on every output of a rule, to drive the backward pass."""
    if isinstance(out, DiagGaussian):
        return out.mu.sum() + out.logvar.sum()
    return out.mu.sum() + out.logvar.sum() + torch.where(torch.isfinite(out.log_weights), out.log_weights, 0).sum()


def time_rules(rules, M: int, B: int, D: int, repeats: int, seed: int, compiled: bool = False) -> dict[str, float]:
    """Median seconds of forward + backward of each rule (eager, or compiled) on the same random experts (M, B, D).

    The rules are interleaved, repeat by repeat, so that a change in the machine's load or in the memory
    allocator's state falls on every rule alike rather than on whichever ran at that moment; each rule's
    first call is a warm-up (and, compiled, the compilation).
    """
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(M, B, D, generator=g).requires_grad_()
    logvar = (torch.randn(M, B, D, generator=g) - 1.0).requires_grad_()
    fns = {r: agg.compiled(r) if compiled else agg.get_pool(r) for r in rules}
    times: dict[str, list[float]] = {r: [] for r in rules}
    with agg.checks(False):
        for rep in range(repeats + 1):
            for rule, fn in fns.items():
                mu.grad = logvar.grad = None
                t0 = time.perf_counter()
                _loss(fn(mu, logvar)).backward()
                if rep:
                    times[rule].append(time.perf_counter() - t0)
    return {r: statistics.median(t) for r, t in times.items()}


def time_rule(rule: str, M: int, B: int, D: int, repeats: int, seed: int, compiled: bool = False) -> float:
    """Median seconds of forward + backward of one ``rule`` (eager, or compiled) on random experts (M, B, D)."""
    return time_rules([rule], M, B, D, repeats, seed, compiled)[rule]


def mixture_gib(M: int, B: int, D: int) -> float:
    """Rough working set of a mixture over subsets: a few (M, (2^M - 1) B, D) float32 tensors."""
    return 6 * M * (2**M - 1) * B * D * 4 / 2**30


def run_compiled(rules, ms=(5,), B: int = 256, D: int = 512, repeats: int = 5, seed: int = 0) -> dict:
    """Time ``rules`` compiled and PoE eager and compiled at each M; seconds and both ratios per rule and M."""
    out: dict[str, dict] = {"rules": list(rules), "M": list(ms), "seconds": {}, "ratio_to_eager_poe": {},
                            "ratio_to_compiled_poe": {}}
    for M in ms:
        eager = time_rule("poe", M, B, D, repeats, seed)
        timed = time_rules(dict.fromkeys(["poe", *rules]), M, B, D, repeats, seed, compiled=True)
        base = timed["poe"]
        for rule, t in timed.items():
            out["seconds"].setdefault(rule, {})[str(M)] = t
            out["ratio_to_eager_poe"].setdefault(rule, {})[str(M)] = t / eager
            out["ratio_to_compiled_poe"].setdefault(rule, {})[str(M)] = t / base
            print(f"M={M:2d} {rule + ' (compiled)':23s} {1e3 * t:9.2f} ms  x{t / base:6.2f} compiled PoE  "
                  f"x{t / eager:6.2f} eager PoE", flush=True)
    return out


def run(ms=(2, 3, 5, 8, 12), B: int = 256, D: int = 512, repeats: int = 9, seed: int = 0,
        max_gib: float = 2.0, rules=None, compiled_rules=(), compiled_ms=(5,)) -> dict:
    """Time every rule at every M (and ``compiled_rules`` compiled at ``compiled_ms``); the JSON's dictionary."""
    rules = sorted(agg.POOLS) if rules is None else list(rules)
    rows: dict[str, dict[str, float | str]] = {r: {} for r in rules}
    light = [r for r in rules if r not in MIXTURE_RULES]
    for M in ms:
        # the O(M) and O(M^2) rules interleaved with PoE; the mixtures over subsets, whose gigabytes would
        # disturb the allocator between the light rules' calls, each on their own afterwards
        timed = time_rules(dict.fromkeys(["poe", *light]), M, B, D, repeats, seed)
        base = timed["poe"]
        for rule in rules:
            if rule in MIXTURE_RULES and mixture_gib(M, B, D) > max_gib:
                rows[rule][str(M)] = f"skipped: about {mixture_gib(M, B, D):.1f} GiB for 2^M - 1 subsets"
                continue
            t = timed[rule] if rule in timed else time_rule(rule, M, B, D, repeats, seed)
            rows[rule][str(M)] = t
            print(f"M={M:2d} {rule:12s} {1e3 * t:9.2f} ms  x{t / base:6.2f} PoE", flush=True)
        rows.setdefault("_poe_seconds", {})[str(M)] = base
    ratios = {r: {m: (v / rows["_poe_seconds"][m] if isinstance(v, float) else v) for m, v in rows[r].items()}
              for r in rules}
    growth = {}
    for r in rules:
        pts = [(int(m), v) for m, v in rows[r].items() if isinstance(v, float)]
        if len(pts) >= 2:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            growth[r] = float(np.polyfit(x, y, 1)[0])
    result = {
        "item": "bench-aggregators",
        "description": "forward+backward seconds per call of each pooling rule and ratio to PoE in the same run",
        "B": B, "D": D, "M": list(ms), "repeats": repeats,
        "seconds": {r: rows[r] for r in rules},
        "ratio_to_poe": ratios,
        "growth_exponent_in_M": growth,
        "threads": torch.get_num_threads(),
        "provenance": provenance(seed=seed, scale="bench"),
    }
    if compiled_rules:
        result["compiled"] = run_compiled(compiled_rules, compiled_ms, B, D, repeats, seed)
    return result


def main(argv=None) -> None:
    """Command line: ``python -m poolvae.bench [--B 256] [--D 512] [--M 2 3 5 8 12] [--out PATH]``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--B", type=int, default=256)
    p.add_argument("--D", type=int, default=512)
    p.add_argument("--M", type=int, nargs="+", default=[2, 3, 5, 8, 12])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-gib", type=float, default=2.0)
    p.add_argument("--rules", nargs="+", default=None, choices=sorted(agg.POOLS))
    p.add_argument("--compiled", nargs="*", default=[], choices=sorted(agg.POOLS), metavar="RULE",
                   help="also time these rules through torch.compile (with PoE as the baseline)")
    p.add_argument("--compiled-M", type=int, nargs="+", default=[5])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "bench" / "aggregators.json")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    res = run(a.M, a.B, a.D, a.repeats, a.seed, a.max_gib, a.rules, a.compiled, a.compiled_M)
    write_json(a.out, res)
    print("growth exponent in M:", {k: round(v, 2) for k, v in res["growth_exponent_in_M"].items()})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
