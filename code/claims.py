"""The claims ledger: every sentence of the two papers that results can test, with a computed verdict per scale.

    python -m poolvae.claims            # -> results/claims.json and results/claims.md  (make claims)

A :class:`Claim` quotes one sentence of a paper (``quote``), says where it is (``source``), what kind of evidence
settles it (``kind``: ``exact`` - a computation with no training, the same at every scale; ``trained`` - the
rendered results of trained runs; ``timing`` - measured seconds per batch) and carries a ``check``: a function of
the scale and the results folder that returns a :class:`Verdict`. A verdict is ``holds``, ``does not hold`` or
``not run``, with the reason and the numbers it rests on; nothing here is typed by hand. A trained claim reads
the item files that ``make reproduce-<id>`` renders (``results/<id>.json``) only when they were rendered at the
scale asked for; otherwise, and when a data set or an accelerator is missing, it is ``not run`` and says why.
Where a paper's wording is vague ("comparable", "sharply"), the check states the threshold it uses.

Scales: ``cpu`` (PolyMNIST-mini at the cpu budget; only ranks compare with the papers) and ``paper`` (the papers'
settings, which need an accelerator and the downloaded data sets). Runs marked stale in an item file (made with
defaults that have changed since; ``poolvae.experiments.stale_reason``) still give a verdict, marked provisional
(:attr:`Verdict.provisional`, a ``*`` in the tables), and the reason says how many of the runs it rests on are
stale.

Every check over a table is also applied to the numbers the paper itself prints (:func:`on_paper_numbers`, the
column *paper's numbers*). A threshold of ours that the paper's own table fails reads the claim too strictly, or
the sentence says more than the table: either way the reader should know before weighing our verdict.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import aggregators as agg
from . import paper_numbers
from .artefacts import RESULTS_DIR, atomic_write_bytes, provenance, read_json, write_json

SCALES = ("cpu", "paper")
VERDICTS = ("holds", "does not hold", "not run")
KINDS = ("exact", "trained", "timing")
NO_PAPER = "not run at paper scale: it needs an accelerator and the downloaded data set (none here)"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check at one scale."""

    verdict: str  # one of VERDICTS
    reason: str
    evidence: dict
    provisional: bool = False  # it rests on an item with stale runs: the sweep may still change it

    def as_dict(self) -> dict:
        """JSON form."""
        return {"verdict": self.verdict, "reason": self.reason, "evidence": self.evidence,
                "provisional": self.provisional}


def decide(ok: bool, reason: str, **evidence) -> Verdict:
    """``holds`` when ``ok`` else ``does not hold``, with the reason and its numbers."""
    return Verdict("holds" if ok else "does not hold", reason, evidence)


def not_run(reason: str) -> Verdict:
    """A check that cannot run, and why."""
    return Verdict("not run", reason, {})


ROUND_OFF = 1e-12  # errors below this are floating-point round-off: their digits differ from machine to machine


def at_round_off(x: float) -> tuple[str, float]:
    """A computed error for a reason and its evidence, steady across machines.

    Below :data:`ROUND_OFF` the digits are round-off (5.3e-16 on one machine, 4.4e-16 on another), so the
    reason says ``below 1e-12`` and the evidence records the bound; above it the value is kept to two
    significant figures. The check itself still compares the exact value with its own tolerance."""
    if x < ROUND_OFF:
        return f"below {ROUND_OFF:.0e}", ROUND_OFF
    return f"{x:.1e}", float(f"{x:.1e}")


@dataclass(frozen=True)
class Claim:
    """One testable sentence of a paper and the check that settles it."""

    id: str
    quote: str  # the sentence as printed (shortened only with "...")
    source: str  # paper, section / table / figure
    kind: str  # one of KINDS
    check: Callable[[str, Path], Verdict]
    how: str  # the check in words, with any threshold it uses


# --------------------------------------------------------------------------------------------------
# Reading rendered items
# --------------------------------------------------------------------------------------------------

class Missing(Exception):
    """An item file the check needs is absent or rendered at another scale."""


def item(name: str, scale: str, results: Path) -> dict:
    """``results/<name>.json`` if it was rendered at ``scale`` with at least one run, else :class:`Missing`."""
    f = Path(results) / f"{name}.json"
    if not f.exists():
        raise Missing(f"{name} is not rendered (make reproduce-{name} SCALE={scale})")
    d = read_json(f)
    if d.get("scale") != scale:
        raise Missing(f"{name} is rendered at scale {d.get('scale')!r}, not {scale!r}")
    if d.get("runs_found", 1) == 0:
        raise Missing(f"{name} has no runs at scale {scale}")
    return d


def stale_note(d: dict) -> str:
    """How many of an item's runs are stale, and which methods trained to a budget of their own, for a verdict's
    reason ('' when neither)."""
    n, found = len(d.get("runs_stale", {})), d.get("runs_found")
    runs = "run" if found == 1 else "runs"
    note = f"; {n} of its {found} {runs} {'is' if n == 1 else 'are'} stale (made with earlier defaults)" if n else ""
    own = sorted(d.get("own_budget", {}))
    return note + (f"; {', '.join(own)} trained to a smaller budget of its own" if own else "")


def ours(d: dict, block: str, metric: str) -> dict[str, float]:
    """Our mean per method in one block (a beta) of a table item; methods without a value are left out."""
    cells = d["cells"][block][metric]
    return {m: c["ours"]["mean"] for m, c in cells.items() if c["ours"]["mean"] is not None}


def rank(values: dict[str, float], method: str, higher: bool = True) -> int:
    """Competition rank of ``method`` (1 = best)."""
    v = values[method]
    return 1 + sum((x > v) if higher else (x < v) for x in values.values())


def curve(d: dict, section: str, beta: str, method: str) -> list[float]:
    """A curve item's means by number of inputs (1, 2, ...) for one method."""
    c = d["curves"][section][beta][method]
    return [c[k]["mean"] for k in sorted(c, key=int)]


def _item_check(name: str, fn: Callable[[dict], Verdict] | None, missing: Callable[[str, Exception], str],
                evidence: Callable[[dict], dict]) -> Callable[[str, Path], Verdict]:
    """A check over the rendered item ``name``: ``not run`` with ``missing(scale, error)`` when it is not
    rendered at the scale, else ``fn(item)`` with the item's staleness note, ``evidence(item)`` and
    :attr:`Verdict.provisional` added (``fn`` None: rendered, but no check yet)."""
    def check(scale: str, results: Path) -> Verdict:
        try:
            d = item(name, scale, results)
        except Missing as e:
            return not_run(NO_PAPER if scale == "paper" else missing(scale, e))
        if fn is None:
            return not_run(f"not run: {name} is rendered but this claim has no check yet")
        v = fn({**d, "_results": str(results)})
        return Verdict(v.verdict, v.reason + stale_note(d), {**v.evidence, "item": name, **evidence(d)},
                       provisional=bool(d.get("runs_stale")))
    check.item_name, check.fn = name, fn  # for on_paper_numbers: the same fn over the paper's printed values
    return check


def trained(name: str, fn: Callable[[dict], Verdict]) -> Callable[[str, Path], Verdict]:
    """A check over the item ``name``: ``fn(item)`` at a scale where it is rendered, else ``not run``."""
    return _item_check(name, fn, lambda scale, e: f"not run: {e}",
                       lambda d: {"runs_found": d.get("runs_found")})


def absent_dataset(name: str, dataset: str, fn: Callable[[dict], Verdict] | None = None):
    """A claim on a data set this machine cannot download: ``not run`` unless ``name`` is rendered at the scale
    (from the data set or an offline stand-in), then ``fn`` decides."""
    return _item_check(name, fn, lambda scale, e: f"not run: {dataset} cannot be downloaded here and {name} "
                       f"has no runs at scale {scale}", lambda d: {"dataset": d.get("dataset")})


def exact(fn: Callable[[Path], Verdict]) -> Callable[[str, Path], Verdict]:
    """An exact check: the same computation, hence the same verdict, at every scale."""
    return lambda scale, results: fn(Path(results))


# --------------------------------------------------------------------------------------------------
# Exact checks
# --------------------------------------------------------------------------------------------------

def _from_exact_figure(figure: str, names: tuple[str, ...]) -> Callable[[Path], Verdict]:
    """A verdict from the computed claims of an exact figure (``results/hel-fig2.json``'s ``claims``)."""
    def fn(results: Path) -> Verdict:
        f = Path(results) / f"{figure}.json"
        if not f.exists():
            return not_run(f"not run: {figure} is not computed (make figures)")
        found = {c["claim"]: c for c in read_json(f)["claims"]}
        missing = [n for n in names if n not in found]
        if missing:
            return not_run(f"not run: {figure} has no computed claim {missing[0]!r}")
        failed = [n for n in names if not found[n]["holds"]]
        reason = ("every part holds in " if not failed else "does not hold in ") + figure + \
            ("" if not failed else ": " + "; ".join(f"{n} ({found[n].get('why', 'computed false')})" for n in failed))
        return decide(not failed, reason, parts={n: found[n]["holds"] for n in names})
    return fn


def _random_experts(n_sets: int, M: int, D: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random experts, (M, n_sets, D) means and log-variances in [-3, 3]."""
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(M, n_sets, D, generator=g, dtype=torch.float64),
            6 * torch.rand(M, n_sets, D, generator=g, dtype=torch.float64) - 3)


def _moe_not_sharper(results: Path) -> Verdict:
    mu, lv = _random_experts(2000, 3)
    var = torch.exp(agg.moe(mu, lv).moment_match().logvar)  # the mixture's variance
    sharpest = torch.exp(lv).min(0).values
    worst = float((var / sharpest).min())
    return decide(worst >= 1.0, f"on 2,000 random sets of 3 experts the MoE variance is never below the sharpest "
                  f"expert's (smallest ratio {worst:.3f})", smallest_ratio=worst)


def _poe_sharper(results: Path) -> Verdict:
    mu, lv = _random_experts(2000, 3)
    q = agg.poe(mu, lv)
    ratio = float((torch.exp(q.logvar) / torch.exp(lv).min(0).values).max())
    return decide(ratio <= 1.0, f"on 2,000 random sets of 3 experts the PoE variance is at most the sharpest "
                  f"expert's (largest ratio {ratio:.3f})", largest_ratio=ratio)


def _wb_sharper_than_half(results: Path) -> Verdict:
    share = {}
    for M in (2, 3, 5):
        mu, lv = _random_experts(2000, M, D=1, seed=M)
        s = torch.exp(0.5 * agg.wb(mu, lv).logvar)[:, 0]  # (n,)
        stds = torch.exp(0.5 * lv[..., 0])  # (M, n)
        wider = (stds > s).sum(0)  # experts wider than the barycenter
        share[M] = float((wider >= M / 2).double().mean())
    return decide(share[2] == 1.0, f"with M = 2 (the paper's Fig. 2c) the diagonal WB is sharper than at least half "
                  f"of the experts in every one of 2,000 random cases; the statement does not carry over to more "
                  f"experts (M = 3: {share[3]:.1%}, M = 5: {share[5]:.1%} of cases)", share_by_M=share)


def _grid(lo: float = -12.0, hi: float = 12.0, n: int = 24001) -> tuple[np.ndarray, float]:
    x = np.linspace(lo, hi, n)
    return x, x[1] - x[0]


def _normal(x: np.ndarray, m: float, v: float) -> np.ndarray:
    return np.exp(-(x - m) ** 2 / (2 * v)) / np.sqrt(2 * np.pi * v)


def _kl(p: np.ndarray, q: np.ndarray, dx: float) -> float:
    mask = p > 1e-300
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.maximum(q[mask], 1e-300)))) * dx)


def _kl_barycenters(results: Path) -> Verdict:
    x, dx = _grid()
    means, variances = (-1.5, 1.0, 2.5), (0.5, 1.2, 0.3)
    experts = [_normal(x, m, v) for m, v in zip(means, variances, strict=True)]
    lam = np.full(3, 1 / 3)
    poe = np.exp(sum(w * np.log(np.maximum(q, 1e-300)) for w, q in zip(lam, experts, strict=True)))
    poe /= poe.sum() * dx
    moe = sum(w * q for w, q in zip(lam, experts, strict=True))

    def reverse(phi):
        return sum(w * _kl(phi, q, dx) for w, q in zip(lam, experts, strict=True))

    def forward(phi):
        return sum(w * _kl(q, phi, dx) for w, q in zip(lam, experts, strict=True))

    rng = np.random.default_rng(0)
    worse_rev, worse_fwd = [], []
    for _ in range(200):  # perturb each optimum by a random mixture with a random Gaussian
        other = _normal(x, rng.normal(0, 3), rng.uniform(0.2, 3.0))
        t = rng.uniform(0.01, 0.5)
        worse_rev.append(reverse((1 - t) * poe + t * other) - reverse(poe))
        worse_fwd.append(forward((1 - t) * moe + t * other) - forward(moe))
    ok = min(worse_rev) > 0 and min(worse_fwd) > 0
    return decide(ok, f"on a grid, every one of 200 random perturbations raises the weighted reverse KL of the "
                  f"normalised geometric pool (PoE) and the weighted forward KL of the mixture (MoE): smallest rises "
                  f"{min(worse_rev):.2e} and {min(worse_fwd):.2e}", smallest_rise_reverse=min(worse_rev),
                  smallest_rise_forward=min(worse_fwd))


def _holder_limits(results: Path) -> Verdict:
    x, dx = _grid(-10, 10, 4001)
    log_q = torch.tensor(np.stack([np.log(_normal(x, -1.0, 0.7)), np.log(_normal(x, 1.5, 1.5))]))
    cell = dx
    lin = agg.holder_pool_on_grid(log_q, 1.0, cell)
    geo = agg.holder_pool_on_grid(log_q, 0.0, cell)
    near0 = agg.holder_pool_on_grid(log_q, 1e-4, cell)
    mix = torch.log(0.5 * torch.exp(log_q).sum(0))
    gap_lin = float((torch.exp(lin) - torch.exp(mix)).abs().max())
    gap_geo = float((torch.exp(near0) - torch.exp(geo)).abs().max())
    lin_text, lin_value = at_round_off(gap_lin)
    geo_text, geo_value = at_round_off(gap_geo)  # its tenth digit moved from one machine to the next
    return decide(gap_lin < 1e-6 and gap_geo < 1e-3, f"alpha = 1 gives the mixture (largest density gap "
                  f"{lin_text}); alpha = 1e-4 gives the normalised geometric pool (gap {geo_text})",
                  gap_alpha_1=lin_value, gap_alpha_0=geo_value)


def _hellinger_moments(results: Path) -> Verdict:
    x, dx = _grid(-40, 40, 80001)
    mu, lv = _random_experts(20, 3, D=1, seed=7)
    worst = 0.0
    for b in range(mu.shape[1]):
        roots = sum(np.sqrt(_normal(x, float(mu[j, b, 0]), math.exp(float(lv[j, b, 0])))) / 3 for j in range(3))
        p = roots ** 2
        p /= p.sum() * dx
        m = float((x * p).sum() * dx)
        v = float(((x - m) ** 2 * p).sum() * dx)
        h = agg.hellinger(mu[:, b:b + 1], lv[:, b:b + 1])
        var = float(torch.exp(h.logvar[0, 0]))
        worst = max(worst, abs(float(h.mu[0, 0]) - m) / max(1.0, abs(m)), abs(var / v - 1))
    text, value = at_round_off(worst)
    return decide(worst < 1e-4, f"on 20 random sets of 3 experts the Hellinger pool's mean and variance equal the "
                  f"quadrature moments of the Hölder-1/2 pool (largest relative error {text})",
                  largest_error=value)


def _wb_closed_form(results: Path) -> Verdict:
    mu, lv = _random_experts(50, 3, D=4, seed=3)
    closed = agg.wb(mu, lv)
    cov = torch.diag_embed(torch.exp(lv))
    _, fixed = agg.bures_wasserstein_barycenter(mu, cov)
    gap = float((torch.diagonal(fixed, dim1=-2, dim2=-1) / torch.exp(closed.logvar) - 1).abs().max())
    text, value = at_round_off(gap)
    return decide(gap < 1e-8, f"the closed form (mean of means, mean of standard deviations) equals the "
                  f"Bures-Wasserstein fixed point for diagonal covariances (largest relative gap {text})", gap=value)


def _poe_shifts(results: Path) -> Verdict:
    f = Path(results) / "hel-fig1.json"
    if not f.exists():
        return not_run("not run: hel-fig1 is not computed (make figures)")
    d = read_json(f)
    means = np.array(d["config"]["means"])
    variances = np.array(d["config"]["variances"])
    sharp = means[int(np.argmin(variances))]
    poe, moe = np.array(d["exact"]["poe"]["mean"]), np.array(d["exact"]["moe"]["mean"])
    closer = np.linalg.norm(poe - sharp) < np.linalg.norm(moe - sharp)
    spread = d["exact"]["moe"]["cov_trace"] > max(2 * v for v in variances)
    trace = d["exact"]["moe"]["cov_trace"]
    return decide(bool(closer and spread), f"PoE's mean is {np.linalg.norm(poe - sharp):.2f} from the sharp expert, "
                  f"MoE's {np.linalg.norm(moe - sharp):.2f}; MoE's covariance trace {trace:.2f} "
                  f"exceeds every expert's ({max(2 * v for v in variances):.2f} at most)",
                  poe_distance=float(np.linalg.norm(poe - sharp)), moe_distance=float(np.linalg.norm(moe - sharp)))


FIG2 = ("PoE has the highest NLL at every number of good experts",
        "PoE has the lowest Bhattacharyya coefficient at every number of good experts")
FIG2_BETTER = tuple(f"{r} is better than MoE on {m} as the number of good experts increases"
                    for r in ("holder", "hellinger") for m in ("nll", "bc", "sharpness"))
FIG7_MOE_WORSE = ("moe's nll gets worse with every added bad expert", "moe's bc gets worse with every added bad expert",
                  "moe's sharpness gets worse with every added bad expert")
FIG7_BALANCE = tuple(f"with {k} bad expert(s), {r} is better than MoE on {m}"
                     for k in (1, 2, 3) for r in ("holder", "hellinger") for m in ("nll", "bc", "sharpness"))


# --------------------------------------------------------------------------------------------------
# Trained checks (PolyMNIST)
# --------------------------------------------------------------------------------------------------

TABLE8_BETAS = ("1", "2.5", "5", "10")


def _first_everywhere(metric: str, method: str, betas=TABLE8_BETAS, higher: bool = True):
    def fn(d: dict) -> Verdict:
        blocks = [b for b in betas if b in d["cells"]]
        ranks = {b: rank(ours(d, b, metric), method, higher) for b in blocks if method in ours(d, b, metric)}
        ok = bool(ranks) and all(r == 1 for r in ranks.values()) and len(ranks) == len(blocks)
        n = len(ours(d, blocks[0], metric)) if blocks else 0
        return decide(ok, f"{method}'s rank in {metric} per beta (of {n}): " +
                      ", ".join(f"beta {b}: {r}" for b, r in ranks.items()), ranks=ranks)
    return fn


def _bottom(metric: str, method: str, places: int = 2, higher: bool = True):
    def fn(d: dict) -> Verdict:
        ranks, sizes = {}, {}
        for b in TABLE8_BETAS:
            if b in d["cells"] and method in (v := ours(d, b, metric)):
                ranks[b], sizes[b] = rank(v, method, higher), len(v)
        ok = bool(ranks) and all(ranks[b] > sizes[b] - places for b in ranks)
        return decide(ok, f"{method} among the last {places} in {metric} at every beta; its ranks: " +
                      ", ".join(f"beta {b}: {r} of {sizes[b]}" for b, r in ranks.items()), ranks=ranks)
    return fn


def _top(metric: str, method: str, places: int, higher: bool, betas=TABLE8_BETAS):
    def fn(d: dict) -> Verdict:
        ranks = {b: rank(ours(d, b, metric), method, higher) for b in betas
                 if b in d["cells"] and method in ours(d, b, metric)}
        ok = bool(ranks) and all(r <= places for r in ranks.values())
        return decide(ok, f"{method} within the first {places} in {metric} at every beta; its ranks: " +
                      ", ".join(f"beta {b}: {r}" for b, r in ranks.items()), ranks=ranks)
    return fn


def _helvae_vs_mmvaeplus(d: dict) -> Verdict:
    coh = ours(d, "2.5", "coherence/conditional")
    fd = ours(d, "2.5", "quality/conditional")
    better = coh["helvae"] > coh["mmvaeplus"]
    ratio = fd["helvae"] / fd["mmvaeplus"]
    return decide(better and ratio <= 1.10, f"at beta 2.5 conditional coherence {coh['helvae']:.3f} (HELVAE) vs "
                  f"{coh['mmvaeplus']:.3f} (MMVAE+); conditional quality ratio HELVAE / MMVAE+ {ratio:.2f} "
                  "('comparable' taken as at most 1.10)", coherence=[coh["helvae"], coh["mmvaeplus"]],
                  quality_ratio=ratio)


def _beta_drop(method: str, low: str = "0.03", high: str = "10", mid: str = "2.5", drop: float = 0.05):
    def fn(d: dict) -> Verdict:
        v = {b: ours(d, b, "coherence/conditional").get(method) for b in (low, mid, high)}
        if None in v.values():
            return not_run(f"not run: {method} lacks a run at beta {low}, {mid} or {high}")
        ok = v[low] < v[mid] - drop and v[high] < v[mid] - drop
        return decide(ok, f"{method}'s conditional coherence at beta {low}, {mid}, {high}: " +
                      ", ".join(f"{x:.3f}" for x in v.values()) + f" ('sharply' taken as a drop of more than {drop})",
                      coherence=v)
    return fn


def _spread(method: str, d: dict) -> float:
    vals = [ours(d, b, "coherence/conditional").get(method) for b in d["cells"]]
    vals = [v for v in vals if v is not None]
    return max(vals) - min(vals)


def _helvae_robust(d: dict) -> Verdict:
    spreads = {m: _spread(m, d) for m in d["methods"]}
    ok = spreads["helvae"] < spreads["mmvaeplus"]
    return decide(ok, "spread of conditional coherence over the betas: " +
                  ", ".join(f"{m} {s:.3f}" for m, s in sorted(spreads.items(), key=lambda kv: kv[1])) +
                  " (robust taken as a smaller spread than MMVAE+'s)", spreads=spreads)


def _monotone(values: list[float], increasing: bool) -> bool:
    pairs = list(itertools.pairwise(values))
    return all((b > a) if increasing else (b < a) for a, b in pairs)


def _synergy_quality(method: str, improves: bool):
    def fn(d: dict) -> Verdict:
        c = curve(d, "quality", "2.5", method)
        ok = _monotone(c, increasing=not improves)
        word = "fall" if improves else "rise"
        return decide(ok, f"{method}'s conditional quality (lower is better) by number of inputs: " +
                      ", ".join(f"{v:.2f}" for v in c) + f"; the claim needs it to {word} at every added input",
                      by_inputs=c)
    return fn


def _mopoe_codevae_quality(d: dict) -> Verdict:
    res = {m: curve(d, "quality", "2.5", m) for m in ("mopoe", "codevae")}
    ok = all(c[-1] > c[0] for c in res.values())
    return decide(ok, "conditional quality with 1 input vs the most inputs (lower is better): " +
                  ", ".join(f"{m} {c[0]:.2f} -> {c[-1]:.2f}" for m, c in res.items()), by_inputs=res)


def _run_coherence_by_size(d: dict, method: str, beta: float = 2.5) -> list[float]:
    """Conditional coherence by number of inputs, mean over the seeds of ``method``'s runs of item ``d``'s scale."""
    root = Path(d["_results"]) / "runs" / d["scale"] / d["dataset"] / method / f"beta={beta:g}"
    sizes: dict[str, list[float]] = {}
    for f in sorted(root.glob("seed=*/evaluation.json")):
        for k, v in read_json(f)["metrics"]["coherence"]["conditional"]["by_size"].items():
            sizes.setdefault(k, []).append(v["mean"])
    if not sizes:
        raise KeyError(f"no evaluated {method} run at beta {beta:g} under {root}")
    return [sum(v) / len(v) for _, v in sorted(sizes.items(), key=lambda kv: int(kv[0]))]


def _coherence_with_inputs(d: dict) -> Verdict:
    hel, plus = _run_coherence_by_size(d, "helvae"), _run_coherence_by_size(d, "mmvaeplus")
    ok = hel[-1] > hel[0] and plus[-1] < plus[0]
    return decide(ok, f"conditional coherence with 1 vs {len(hel)} inputs: HELVAE {hel[0]:.3f} -> {hel[-1]:.3f}, "
                  f"MMVAE+ {plus[0]:.3f} -> {plus[-1]:.3f}", helvae=hel, mmvaeplus=plus)


LEARNED_METRICS = ("coherence/conditional", "coherence/unconditional")


def _learned_gaps(d: dict, who: str) -> dict[str, float]:
    """|uniform - learned| per coherence metric of hel-table7, from ``who`` ("ours" or "paper") where both exist."""
    block, gaps = next(iter(d["cells"])), {}
    for metric in LEARNED_METRICS:
        cells = d["cells"][block].get(metric, {})
        v = {m: (c.get(who) or {}).get("mean") for m, c in cells.items()}
        if v.get("helvae") is not None and v.get("helvae-learned") is not None:
            gaps[metric] = abs(v["helvae"] - v["helvae-learned"])
    return gaps


def _learned_comparable(d: dict, floor: float = 0.02) -> Verdict:
    gaps = _learned_gaps(d, "ours")
    if not gaps:
        return not_run("not run: hel-table7 lacks one of its two runs")
    # 'comparable' admits at least the gaps the paper itself calls comparable (0.022 in unconditional coherence)
    tol = max([floor, *_learned_gaps(d, "paper").values()])
    ok = all(g <= tol for g in gaps.values())
    return decide(ok, "uniform vs learned weights, absolute gaps: " +
                  ", ".join(f"{k} {g:.3f}" for k, g in gaps.items()) + f" ('comparable' taken as at most {tol:.3f}: "
                  f"the largest gap the paper itself calls comparable in Table 7, and at least {floor})",
                  gaps=gaps, tolerance=tol)


def departure_from_uniform(weights) -> float:
    """The largest relative departure of pooling weights from uniform, ``max_k |lambda_k - 1/M| / (1/M)``
    (0 for uniform weights; 1 when one weight is 0 or twice 1/M)."""
    w = np.asarray(weights, dtype=float)
    return float(np.abs(w * len(w) - 1).max())


def _learned_weights_uniform(scale: str, results: Path) -> Verdict:
    if scale == "paper":
        return not_run(NO_PAPER)
    f = Path(results) / "runs" / scale / "polymnist-mini" / "helvae-learned" / "beta=5" / "seed=0" / "metrics.json"
    if not f.exists():
        return not_run(f"not run: no helvae-learned run at beta 5 at scale {scale}")
    last = read_json(f)["epochs"][-1]
    if "pool/weights" not in last:
        return not_run("not run: this run predates the per-epoch log of the learned weights (pool/weights); "
                       "retrain it to check")
    w = np.asarray(last["pool/weights"])
    worst = departure_from_uniform(w)
    return decide(worst <= 0.2, f"learned weights {np.round(w, 3).tolist()}: largest relative departure from 1/M "
                  f"{worst:.2f} ('nearly uniform' taken as at most 0.2)", weights=w.tolist())


def _linear_fit_r2(y: list[float]) -> float:
    x = np.arange(1, len(y) + 1, dtype=float)
    y = np.asarray(y, dtype=float)
    slope, icpt = np.polyfit(x, y, 1)
    ss_res = float(((y - (slope * x + icpt)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def _wb_linear(d: dict, threshold: float = 0.95) -> Verdict:
    r2 = {f"{m}/{s}": _linear_fit_r2(curve(d, s, "2.5", m)) for m in ("wbvae", "mwbvae")
          for s in ("latent", "coherence", "log_likelihood")}
    ok = all(v >= threshold for v in r2.values())
    return decide(ok, "R^2 of a straight line through each curve by number of inputs: " +
                  ", ".join(f"{k} {v:.3f}" for k, v in r2.items()) + f" ('approximately linear' taken as R^2 >= "
                  f"{threshold})", r2=r2)


def _wb_latent_best(d: dict) -> Verdict:
    at = {m: curve(d, "latent", "2.5", m)[-1] for m in d["methods"]}
    best = max(at, key=at.get)
    return decide(best in ("wbvae", "mwbvae"), "latent accuracy with the most inputs: " +
                  ", ".join(f"{m} {v:.3f}" for m, v in sorted(at.items(), key=lambda kv: -kv[1])), at_most_inputs=at)


def _wb_coherence_rises(d: dict) -> Verdict:
    c = curve(d, "coherence", "2.5", "wbvae")
    return decide(_monotone(c, True), "WB-VAE's conditional coherence by number of inputs: " +
                  ", ".join(f"{v:.3f}" for v in c), by_inputs=c)


def _mean_curve(d: dict, section: str, method: str) -> float:
    c = curve(d, section, "2.5", method)
    return sum(c) / len(c)


def _wb_between(d: dict) -> Verdict:
    v = {m: _mean_curve(d, "coherence", m) for m in ("mvae", "wbvae", "mmvae")}
    return decide(v["mvae"] < v["wbvae"] < v["mmvae"], "mean conditional coherence over numbers of inputs: " +
                  ", ".join(f"{m} {x:.3f}" for m, x in v.items()) + " (the claim: PoE < WB < MoE)", means=v)


def _mwb_vs(d: dict, tol: float = 0.03) -> Verdict:
    v = {m: _mean_curve(d, "coherence", m) for m in ("mmvae", "mopoe", "mwbvae")}
    ok = v["mwbvae"] > v["mmvae"] and abs(v["mwbvae"] - v["mopoe"]) <= tol
    return decide(ok, "mean conditional coherence over numbers of inputs: " + ", ".join(
        f"{m} {x:.3f}" for m, x in v.items()) + f" ('similar' taken as within {tol})", means=v)


def _poe_best_ll(d: dict) -> Verdict:
    full = {m: curve(d, "log_likelihood", "2.5", m)[-1] for m in d["methods"]}
    best = max(full, key=full.get)
    return decide(best == "mvae", "joint log-likelihood with all inputs: " + ", ".join(
        f"{m} {v:.1f}" for m, v in sorted(full.items(), key=lambda kv: -kv[1])), with_all_inputs=full)


def companion(d: dict, name: str) -> dict:
    """The item ``name`` beside the item ``d`` a check is reading: rendered at ``d``'s scale (:class:`Missing`
    otherwise), or, when ``d`` holds the paper's numbers (:func:`paper_numbers_view`), the paper's numbers of
    ``name``."""
    if d.get("_paper_view"):
        return paper_numbers_view(rendered_or_summarised(name, Path(d["_paper_view"])), Path(d["_paper_view"]))
    return item(name, d["scale"], Path(d["_results"]))


def _mst_mwb_superior(d: dict) -> Verdict:
    latent = ours(d, "5", "latent/avg")
    try:
        coherence = ours(companion(d, "wb-table2"), "5", "coherence/avg")
    except Missing as e:
        return not_run(f"not run: {e}")
    r_lat, r_coh = rank(latent, "mwbvae"), rank(coherence, "mwbvae")
    return decide(r_lat == 1 and r_coh == 1, f"MWB-VAE's rank in mean latent accuracy {r_lat} and in mean "
                  f"coherence {r_coh} of {len(latent)} (the claim: first in both)", latent=latent, coherence=coherence)


def _mst_wb_beats_poe(d: dict) -> Verdict:
    latent = ours(d, "5", "latent/avg")
    return decide(latent["wbvae"] > latent["mvae"], f"mean latent accuracy: WB-VAE {latent['wbvae']:.3f}, "
                  f"PoE-VAE (MVAE) {latent['mvae']:.3f}", latent=latent)


def _mst_ll_on_par(d: dict) -> Verdict:
    ll = ours(d, "5", "log_likelihood/X")
    others = [v for m, v in ll.items() if m not in ("wbvae", "mwbvae")]
    ok = min(ll["wbvae"], ll["mwbvae"]) >= min(others)
    return decide(ok, "joint log-likelihood: " + ", ".join(f"{m} {v:.1f}" for m, v in
                                                         sorted(ll.items(), key=lambda kv: -kv[1])) +
                  " ('on par' taken as neither WB method below the lowest of the others)", log_likelihood=ll)


def _cub_highest(d: dict) -> Verdict:
    block = next(iter(d["cells"]))
    coh, fd = ours(d, block, "colour_coherence"), ours(d, block, "quality/text→img")
    r_coh, r_fd = rank(coh, "helvae"), rank(fd, "helvae", higher=False)
    tied = sorted(m for m, v in coh.items() if m != "helvae" and v == coh["helvae"])
    return decide(r_coh == 1 and r_fd == 1, f"HELVAE's rank in colour coherence {r_coh} (tied with: "
                  f"{', '.join(tied) or 'none'}) and in text-to-image FID {r_fd} of {len(coh)} (the claim: first "
                  "in both, coherence ties allowed)", coherence=coh, fid=fd)


def _mohel_beats_helvae(d: dict) -> Verdict:
    block = next(iter(d["cells"]))
    metrics = [m for m in d["cells"][block] if m.startswith(("coherence/", "latent/"))]
    pairs = {m: (ours(d, block, m)["mohelvae"], ours(d, block, m)["helvae"]) for m in metrics}
    return decide(bool(pairs) and all(a > b for a, b in pairs.values()), "MoHELVAE vs HELVAE: " + ", ".join(
        f"{m} {a:.3f} vs {b:.3f}" for m, (a, b) in pairs.items()) + " (the claim: MoHELVAE above in every one)",
        pairs=pairs)


def _timing(fn: Callable[[dict], Verdict]) -> Callable[[str, Path], Verdict]:
    def check(scale: str, results: Path) -> Verdict:
        if scale == "paper":
            return not_run("not run at paper scale: the paper's times are A100 seconds; this machine has no "
                           "accelerator (make bench-train on one)")
        f = Path(results) / "hel-table6.json"
        if not f.exists():
            return not_run("not run: hel-table6 is not measured (make reproduce-hel-table6)")
        d = read_json(f)
        if d.get("scale") != scale:
            return not_run(f"not run: hel-table6 is measured at scale {d.get('scale')!r}")
        return fn(d)
    check.fn = fn  # for on_paper_numbers: the same fn over the paper's Table 6, one benchmark at a time
    return check


PAPER_TABLE6 = ("mvae", "mmvae", "mopoe", "mmvaeplus", "mwbvae", "codevae", "helvae", "mohelvae")


def _seconds(d: dict) -> dict[str, float]:
    return {m: v["seconds_per_batch"] for m, v in d["methods"].items() if m in PAPER_TABLE6}


def _helvae_fastest(d: dict) -> Verdict:
    s = _seconds(d)
    fastest = min(s, key=s.get)
    return decide(fastest == "helvae", f"seconds per batch on {d.get('dataset')} (the paper's Table 6 methods): " +
                  ", ".join(f"{m} {v:.3f}" for m, v in sorted(s.items(), key=lambda kv: kv[1])), seconds=s)


def _multisample_slowest(d: dict) -> Verdict:
    s = _seconds(d)
    slowest = sorted(s, key=s.get, reverse=True)[:3]
    ok = set(slowest) == {"mvae", "mmvae", "mmvaeplus"}
    return decide(ok, f"the three slowest of the paper's Table 6 methods on {d.get('dataset')}: {', '.join(slowest)} "
                  "(the claim: MVAE, MMVAE and MMVAE+)", slowest=slowest, seconds=s)


# --------------------------------------------------------------------------------------------------
# The same checks on the paper's own printed numbers
# --------------------------------------------------------------------------------------------------
# A check reads a vague word ("comparable", "sharply", "among the most") with a threshold of ours. Applied to the
# numbers the paper itself prints, it should hold: if it does not, the check reads the sentence more strictly than
# the paper does (or the paper's sentence says more than its table), and a "does not hold" of ours means little.

CANNOT = "cannot compute"
NOT_APPLICABLE = "not applicable"
PAPER_NUMBER_VERDICTS = ("holds", "does not hold", CANNOT, NOT_APPLICABLE)


def rendered_or_summarised(name: str, results: Path) -> dict:
    """``results/<name>.json`` as rendered, or, when it is not (its data set is absent here), the item
    summarised with no runs: its cells then carry the paper's numbers only."""
    f = Path(results) / f"{name}.json"
    if f.exists():
        return read_json(f)
    from .experiments import get_experiment, summarise

    return summarise(get_experiment(name), "paper", Path(results))


def paper_numbers_view(d: dict, results: Path = RESULTS_DIR) -> dict | None:
    """The table item ``d`` with every method's value (``ours``) replaced by the paper's printed one, so that a
    check written for our numbers reads the paper's. A metric of a block is kept only where the paper prints it
    for every method of the block (ranks among a subset would mislead); otherwise it is removed, and a check that
    reads it fails. Run folders are out of reach (``_results`` is None); :func:`companion` items come from
    ``results`` the same way. None for an item without a table (``cells``): the papers print no numbers for their
    curves."""
    if "cells" not in d:
        return None
    cells: dict = {}
    for block, metrics in d["cells"].items():
        cells[block] = {}
        for metric, by_method in metrics.items():
            printed = {m: c.get("paper") for m, c in by_method.items()}
            if all(p is not None and p.get("mean") is not None for p in printed.values()):
                cells[block][metric] = {m: {"ours": {"mean": p["mean"], "std": p.get("std"), "n": None,
                                                     "interval": None}, "paper": p} for m, p in printed.items()}
    return {**d, "cells": cells, "runs_stale": {}, "_results": None, "_paper_view": str(results)}


def paper_timing_items() -> dict[str, dict]:
    """The paper's Table 6 (read by :func:`poolvae.paper_numbers.cells`) as one timing item per benchmark, in the
    shape the timing checks read (``{"dataset": ..., "methods": {method: {"seconds_per_batch": s}}}``)."""
    by_dataset: dict[str, dict] = {}
    for c in paper_numbers.cells("hel-table6", metric="seconds_per_batch"):
        if c["mean"] is not None:
            by_dataset.setdefault(c["dataset"], {})[c["method"]] = {"seconds_per_batch": c["mean"]}
    return {ds: {"dataset": ds, "methods": methods} for ds, methods in by_dataset.items()}


def on_paper_numbers(claim: Claim, results: Path = RESULTS_DIR) -> Verdict:
    """``claim``'s check applied to the numbers the paper prints: ``holds`` or ``does not hold`` (our reading of
    the claim agrees with, or is stricter than, the paper's own numbers), ``cannot compute`` (the paper does not
    print what the check reads: a figure, a run folder, a data set absent here) or ``not applicable`` (an exact
    claim, which rests on no printed numbers)."""
    if claim.kind == "exact":
        return Verdict(NOT_APPLICABLE, "an exact computation: it rests on no printed numbers", {})
    fn = getattr(claim.check, "fn", None)
    if fn is None:
        return Verdict(CANNOT, "the check reads run folders, or the paper prints no table for it", {})
    try:
        if claim.kind == "timing":
            per = {ds: fn(d) for ds, d in paper_timing_items().items()}
            ok = all(v.verdict == "holds" for v in per.values())
            return decide(ok, "; ".join(f"{ds}: {v.verdict} ({v.reason})" for ds, v in per.items()),
                          per_benchmark={ds: v.verdict for ds, v in per.items()})
        name = claim.check.item_name
        view = paper_numbers_view(rendered_or_summarised(name, Path(results)), Path(results))
        if view is None:
            return Verdict(CANNOT, f"the paper prints no table for {name} (a figure)", {})
        v = fn(view)
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as e:
        return Verdict(CANNOT, f"the paper does not print every number the check reads ({type(e).__name__}: {e})",
                       {})
    if v.verdict == "not run":
        return Verdict(CANNOT, v.reason.removeprefix("not run: "), {})
    return Verdict(v.verdict, v.reason, v.evidence)


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------

HEL, WB = "HEL", "WB"

CLAIMS: tuple[Claim, ...] = (
    # ---- exact: pooling rules and synthetic experts
    Claim("hel-poe-shifts-moe-spreads", "PoE shifts toward the sharpest expert, while MoE spreads mass across all "
          "experts", f"{HEL} sec. 4, Fig. 1", "exact", exact(_poe_shifts),
          "hel-fig1's exact moments: PoE's mean nearer the sharp expert than MoE's; MoE wider than every expert"),
    Claim("hel-moe-not-sharper", "MoE ... cannot produce a sharper posterior than its components",
          f"{HEL} sec. 4 (also {WB} sec. 3)", "exact", exact(_moe_not_sharper),
          "MoE variance vs the sharpest expert's on 2,000 seeded random sets of 3 experts"),
    Claim("wb-poe-sharper", "PoE results in a sharper distribution that concentrates on one of the modalities",
          f"{WB} sec. 3, Remark 1", "exact", exact(_poe_sharper),
          "PoE variance vs the sharpest expert's on 2,000 seeded random sets of 3 experts"),
    Claim("wb-kl-barycenters", "PoE and MoE are barycenters by optimizing the reverse and forward Kullback-Leibler "
          "(KL) divergence, respectively", f"{WB} sec. 1, Theorem 1", "exact", exact(_kl_barycenters),
          "perturbations of the pools on a grid raise the weighted reverse / forward KL"),
    Claim("wb-sharper-than-half", "resulting in a distribution that is sharper than half of the unimodal inference "
          "distributions (see Fig. 2c)", f"{WB} sec. 3.3", "exact", exact(_wb_sharper_than_half),
          "share of random expert sets whose diagonal WB is narrower than at least half of the experts, M = 2, 3, 5"),
    Claim("wb-diagonal-closed-form", "In the isotropic Gaussian case, Eq. (6) can be solved analytically dimension by "
          "dimension", f"{WB} Remark 2, eq. 7", "exact", exact(_wb_closed_form),
          "closed form vs the Bures-Wasserstein fixed point on 50 random sets"),
    Claim("hel-holder-limits", "In the limit alpha -> 0, the Hölder pooling function reduces to the log-linear "
          "pooling function, and for alpha = 1, it becomes the linear pooling function", f"{HEL} sec. 3.2", "exact",
          exact(_holder_limits), "Hölder pool on a grid at alpha 1 and 1e-4 vs the mixture and the geometric pool"),
    Claim("hel-hellinger-moment-match", "This function is derived from Hölder pooling with alpha = 0.5 and uses "
          "moment matching [4] to project the pooled density onto a diagonal Gaussian", f"{HEL} sec. 4, eqs. 16 and 20",
          "exact", exact(_hellinger_moments),
          "poolvae.aggregators.hellinger vs quadrature moments of the Hölder-1/2 pool"),
    Claim("hel-poe-performs-poorly", "The results show that PoE performs poorly, with high NLL and low Bhattacharyya "
          "coefficient", f"{HEL} sec. 5.1, Fig. 2", "exact", exact(_from_exact_figure("hel-fig2", FIG2)),
          "hel-fig2's computed claims: PoE has the highest NLL and the lowest BC at every number of good experts"),
    Claim("hel-others-low-nll", "Other models maintain low NLL", f"{HEL} sec. 5.1, Fig. 2", "exact",
          exact(_from_exact_figure("hel-fig2", ("the other rules keep a low NLL (their largest NLL is below PoE's "
                                                "smallest)",))),
          "hel-fig2: every other rule's largest NLL below PoE's smallest"),
    Claim("hel-holder-beats-moe", "Compared to MoE, Hölder (alpha = 0.5) and Hellinger yield lower NLL, sharper "
          "distributions and stronger distributional overlap with the true distribution as the number of good "
          "experts increases", f"{HEL} sec. 5.1, Fig. 2", "exact", exact(_from_exact_figure("hel-fig2", FIG2_BETTER)),
          "hel-fig2: Hölder-1/2 and Hellinger better than MoE on NLL, BC and sharpness from some number of good "
          "experts on"),
    Claim("hel-moe-slightly-better-without-bad", "Without bad experts, MoE performs slightly better than Hölder "
          "(alpha = 0.5) and Hellinger", f"{HEL} App. A.3, Fig. 7", "exact",
          exact(_from_exact_figure("hel-fig7", ("without bad experts MoE is slightly better than Hölder and "
                                                "Hellinger",))), "hel-fig7 with 0 bad experts"),
    Claim("hel-poe-overconfident", "PoE suffers from overconfidence, resulting in significantly higher NLL",
          f"{HEL} App. A.3, Fig. 7", "exact",
          exact(_from_exact_figure("hel-fig7", ("with bad experts, PoE has the highest NLL everywhere",))),
          "hel-fig7: PoE's NLL the highest with 1 to 3 bad experts"),
    Claim("hel-wb-nll-worse", "its [WB's] NLL increases noticeably with more bad experts", f"{HEL} App. A.3, Fig. 7",
          "exact", exact(_from_exact_figure("hel-fig7", ("wb's nll gets worse with every added bad expert",))),
          "hel-fig7: WB's NLL rises with every added bad expert"),
    Claim("hel-moe-worse-with-bad", "with more bad experts, it [MoE] yields higher NLL, lower Bhattacharyya "
          "coefficients, and less sharpness", f"{HEL} App. A.3, Fig. 7", "exact",
          exact(_from_exact_figure("hel-fig7", FIG7_MOE_WORSE)),
          "hel-fig7: MoE's NLL, BC and sharpness each worse with every added bad expert"),
    Claim("hel-holder-balance", "they [Hölder and Hellinger] achieve the best balance across all metrics, showing "
          "strong robustness to different expert types", f"{HEL} App. A.3, Fig. 7", "exact",
          exact(_from_exact_figure("hel-fig7", FIG7_BALANCE)),
          "hel-fig7: with 1, 2 and 3 bad experts, Hölder-1/2 and Hellinger better than MoE on NLL, BC, sharpness"),
    # ---- trained: PolyMNIST (HEL Table 8, Figs. 3, 5, 6, 9, Table 7)
    Claim("hel-helvae-highest-conditional-coherence", "HELVAE attains higher coherence in both conditional and "
          "unconditional settings", f"{HEL} sec. 5.2, Fig. 3 / Table 8", "trained",
          trained("hel-table8", _first_everywhere("coherence/conditional", "helvae")),
          "HELVAE first of 7 in conditional coherence at every beta of Table 8"),
    Claim("hel-helvae-highest-unconditional-coherence", "HELVAE attains higher coherence in both conditional and "
          "unconditional settings", f"{HEL} sec. 5.2, Fig. 3 / Table 8", "trained",
          trained("hel-table8", _first_everywhere("coherence/unconditional", "helvae")),
          "HELVAE first of 7 in unconditional coherence at every beta of Table 8"),
    Claim("hel-mvae-poor-coherence", "MVAE, based on PoE, yields tight log-likelihood estimates but performs poorly "
          "in coherence", f"{HEL} sec. 5.2, Fig. 3", "trained",
          trained("hel-table8", _bottom("coherence/conditional", "mvae")),
          "MVAE among the last two of 7 in conditional coherence at every beta"),
    Claim("hel-mvae-tight-ll", "MVAE, based on PoE, yields tight log-likelihood estimates", f"{HEL} sec. 5.2, "
          "Fig. 3", "trained", trained("hel-fig6", _top("log_likelihood/joint", "mvae", 2, True)),
          "MVAE within the first two of 7 in joint log-likelihood at every beta of Fig. 6"),
    Claim("hel-mvae-quality", "MVAE generates high-quality images but lacks coherence", f"{HEL} sec. 5.2, Fig. 3",
          "trained", trained("hel-table8", _top("quality/conditional", "mvae", 2, False)),
          "MVAE within the first two of 7 in conditional quality (lowest FD) at every beta"),
    Claim("hel-helvae-quality-like-mmvaeplus", "HELVAE achieves generative quality comparable to MMVAE+ while "
          "attaining better coherence", f"{HEL} sec. 5.2, Fig. 3", "trained",
          trained("hel-table8", _helvae_vs_mmvaeplus),
          "at beta 2.5: HELVAE's conditional coherence above MMVAE+'s, its conditional FD within 10% of MMVAE+'s"),
    Claim("hel-mmvaeplus-highest-ll", "While MMVAE+ reaches the highest log-likelihood", f"{HEL} sec. 5.2, Fig. 6",
          "trained", trained("hel-fig6", _first_everywhere("log_likelihood/joint", "mmvaeplus",
                                                            betas=("0.03", "0.3", "1", "2.5", "5", "10"))),
          "MMVAE+ first of 7 in joint log-likelihood at every beta of Fig. 6"),
    Claim("hel-mmvaeplus-beta-sensitive", "its [MMVAE+'s] coherence drops and FID increases sharply at both small "
          "and ... large beta", f"{HEL} sec. 5.2, Fig. 6", "trained", trained("hel-fig6", _beta_drop("mmvaeplus")),
          "MMVAE+'s conditional coherence at beta 0.03 and 10 more than 0.05 below its value at 2.5"),
    Claim("hel-helvae-robust-to-beta", "Overall, HELVAE delivers the best performance, achieving the highest "
          "coherence, competitive FID, and high log-likelihood, showing robustness to beta", f"{HEL} sec. 5.2, "
          "Fig. 6", "trained", trained("hel-fig6", _helvae_robust),
          "HELVAE's spread of conditional coherence over the six betas smaller than MMVAE+'s"),
    Claim("hel-helvae-best-across-beta", "Overall, HELVAE delivers the best performance, achieving the highest "
          "coherence", f"{HEL} sec. 5.2, Fig. 6", "trained",
          trained("hel-fig6", _first_everywhere("coherence/conditional", "helvae",
                                                betas=("0.03", "0.3", "1", "2.5", "5", "10"))),
          "HELVAE first of 7 in conditional coherence at every beta of Fig. 6"),
    Claim("hel-helvae-synergy", "HELVAE exhibits clear multimodal synergy: it benefits from additional modalities, "
          "with decreasing FID", f"{HEL} sec. 5.2, Fig. 5", "trained",
          trained("hel-fig5", _synergy_quality("helvae", improves=True)),
          "HELVAE's conditional quality improves with every added input (1 to 4), beta 2.5"),
    Claim("hel-mopoe-codevae-quality-drops", "MoPoE and CoDEVAE exhibit decreased generative quality as more "
          "modalities are added", f"{HEL} sec. 5.2, Fig. 5", "trained", trained("hel-fig5", _mopoe_codevae_quality),
          "MoPoE's and CoDEVAE's conditional quality worse with 4 inputs than with 1, beta 2.5"),
    Claim("hel-helvae-more-coherent-with-inputs", "HELVAE generates more coherent samples when conditioned on four "
          "modalities compared to a single one, whereas MMVAE+ shows decreased coherence under the same setting",
          f"{HEL} App. B.5, Fig. 9", "trained", trained("hel-fig5", _coherence_with_inputs),
          "conditional coherence with 4 inputs above 1 input for HELVAE and below for MMVAE+, beta 2.5 (hel-fig5's "
          "runs)"),
    Claim("hel-learned-weights-comparable", "we obtain comparable results for uniform and learned pooling weights "
          "across all criteria", f"{HEL} App. B.4, Table 7", "trained", trained("hel-table7", _learned_comparable),
          "uniform vs learned HELVAE at beta 5: conditional and unconditional coherence within the largest gap "
          "the paper itself calls comparable in Table 7 (at least 0.02)"),
    Claim("hel-learned-weights-uniform", "the learned weights converge to values that are nearly uniform across "
          "modalities", f"{HEL} App. B.4, Table 7", "trained", _learned_weights_uniform,
          "the last epoch's learned pooling weights each within 20% of 1/M"),
    Claim("hel-helvae-fastest", "Across all three benchmarks, HELVAE consistently has the shortest batch training "
          "time", f"{HEL} App. B.4, Table 6", "timing", _timing(_helvae_fastest),
          "HELVAE the fastest of the paper's Table 6 methods in hel-table6 (PolyMNIST-mini; one thread)"),
    Claim("hel-multisample-slowest", "MVAE, MMVAE, and MMVAE+ are among the most time-consuming models to train",
          f"{HEL} App. B.4, Table 6", "timing", _timing(_multisample_slowest),
          "MVAE, MMVAE and MMVAE+ the three slowest of the paper's Table 6 methods in hel-table6"),
    # ---- trained: PolyMNIST (WB Fig. 3)
    Claim("wb-linear-in-inputs", "the proposed WB-VAE and MWB-VAE showed an approximately linear relationship "
          "between all the performance metrics and the number of input modalities", f"{WB} sec. 5, Fig. 3",
          "trained", trained("wb-fig3", _wb_linear), "R^2 of a line through latent accuracy, coherence and "
          "log-likelihood by number of inputs, WB-VAE and MWB-VAE, at least 0.95"),
    Claim("wb-latent-superior", "WB-VAE and MWB-VAE showed superior performance in terms of linear classification "
          "accuracy compared to all baseline methods, particularly when the number of input modalities increases",
          f"{WB} sec. 5, Fig. 3 left", "trained", trained("wb-fig3", _wb_latent_best),
          "WB-VAE or MWB-VAE has the best latent accuracy with the most inputs"),
    Claim("wb-wbvae-coherence-rises", "the generation coherence of WB-VAE increased as the number of input "
          "modalities increased", f"{WB} sec. 5, Fig. 3 center", "trained", trained("wb-fig3", _wb_coherence_rises),
          "WB-VAE's conditional coherence rises with every added input"),
    Claim("wb-wbvae-between-poe-moe", "Although WB-VAE outperformed PoE-VAE, it did not surpass MoE-VAE",
          f"{WB} sec. 5, Fig. 3 center", "trained", trained("wb-fig3", _wb_between),
          "mean conditional coherence over numbers of inputs: PoE < WB < MoE"),
    Claim("wb-mwb-like-mopoe", "MWB-VAE can easily outperform MoE-VAE and achieve similar performance as "
          "MoPoE-VAE in the conditional generation task", f"{WB} sec. 5, Fig. 3 center", "trained",
          trained("wb-fig3", _mwb_vs), "mean conditional coherence: MWB-VAE above MoE-VAE, within 0.03 of MoPoE"),
    Claim("wb-poe-highest-ll", "Consequently, the PoE-VAE achieved the highest log-likelihood",
          f"{WB} sec. 5, Fig. 3 right", "trained", trained("wb-fig3", _poe_best_ll),
          "PoE-VAE (MVAE) has the highest joint log-likelihood with all inputs"),
    # ---- data sets that cannot be downloaded here
    Claim("wb-mst-mwb-superior", "the proposed MWB-VAE demonstrated superior performance compared to other "
          "state-of-the-art multimodal VAEs in terms of the quality of learned latent representations and "
          "generation coherence", f"{WB} sec. 5, Tables 1-2", "trained",
          absent_dataset("wb-table1", "MNIST-SVHN-Text", _mst_mwb_superior),
          "MWB-VAE first in mean latent accuracy (Table 1) and mean coherence (Table 2)"),
    Claim("wb-mst-wb-beats-poe-latent", "our WB-VAE outperformed PoE-VAE regarding the linear classification "
          "accuracy using the learned latent representations", f"{WB} sec. 5, Table 1", "trained",
          absent_dataset("wb-table1", "MNIST-SVHN-Text", _mst_wb_beats_poe),
          "WB-VAE above PoE-VAE in mean latent accuracy"),
    Claim("wb-mst-ll-on-par", "the log-likelihood of our WB-VAE and MWB-VAE were on par with the other "
          "state-of-the-art methods", f"{WB} sec. 5, Table 3", "trained",
          absent_dataset("wb-table3", "MNIST-SVHN-Text", _mst_ll_on_par),
          "joint log-likelihood of WB-VAE and MWB-VAE not below the lowest of MVAE, MMVAE and MoPoE"),
    Claim("hel-cub-highest-coherence", "our model achieves the highest conditional coherence, which is the same as "
          "CoDEVAE but with lower conditional FID than other models", f"{HEL} sec. 5.2, Table 1", "trained",
          absent_dataset("hel-table1", "CUB Image-Captions", _cub_highest),
          "HELVAE first in CUB colour coherence (ties allowed) and in text-to-image FID"),
    Claim("hel-mohel-beats-helvae-celeba", "MoHELVAE surpasses HELVAE in generative coherence (conditional and "
          "unconditional) and latent representation accuracy", f"{HEL} sec. 6.1, Table 4", "trained",
          absent_dataset("hel-table4", "bimodal CelebA", _mohel_beats_helvae),
          "MoHELVAE above HELVAE in conditional and unconditional coherence and in every latent AP column"),
    Claim("hel-learned-weights-degrade-cub-celeba", "on CUB and CelebA, learning pooling weights degrades generative "
          "coherence and quality", f"{HEL} App. B.4", "trained", absent_dataset("hel-table2", "bimodal CelebA"),
          "learned vs uniform HELVAE on CUB and CelebA"),
)


def evaluate_claims(results: Path = RESULTS_DIR, scales=SCALES) -> list[dict]:
    """Every claim with its verdict per scale (a check that raises is reported as ``not run`` with the error)."""
    out = []
    for c in CLAIMS:
        verdicts = {}
        for scale in scales:
            try:
                v = c.check(scale, Path(results))
            except (KeyError, IndexError, ValueError, ZeroDivisionError) as e:
                v = not_run(f"not run: the check could not read what it needs ({type(e).__name__}: {e})")
            verdicts[scale] = v.as_dict()
        on_paper = on_paper_numbers(c, Path(results))
        out.append({"id": c.id, "quote": c.quote, "source": c.source, "kind": c.kind, "check": c.how,
                    "verdict": verdicts, "on_paper_numbers": {"verdict": on_paper.verdict,
                                                               "reason": on_paper.reason}})
    return out


def counts(claims: list[dict], scale: str) -> dict[str, int]:
    """How many claims hold, do not hold, or were not run at ``scale``."""
    return {v: sum(c["verdict"][scale]["verdict"] == v for c in claims) for v in VERDICTS}


def provisional_count(claims: list[dict], scale: str) -> int:
    """How many verdicts at ``scale`` rest on an item with stale runs (:attr:`Verdict.provisional`)."""
    return sum(bool(c["verdict"][scale].get("provisional")) for c in claims)


PROVISIONAL_MARK = "*"
PROVISIONAL_NOTE = (f"{PROVISIONAL_MARK}: provisional, the verdict rests on an item with stale runs (made with "
                    "earlier defaults) that the sweep has not yet replaced; it may change when they land.")


def verdict_text(v: dict) -> str:
    """A verdict for a table cell, with :data:`PROVISIONAL_MARK` when it is provisional."""
    return v["verdict"] + (f" {PROVISIONAL_MARK}" if v.get("provisional") else "")


def counts_line(claims: list[dict], scale: str) -> str:
    """``"22 hold, 19 do not hold, 4 not run"``, with how many of them are provisional."""
    n, p = counts(claims, scale), provisional_count(claims, scale)
    text = f"{n['holds']} hold, {n['does not hold']} do not hold, {n['not run']} not run"
    return text + (f" ({p} provisional {PROVISIONAL_MARK})" if p else "")


def paper_numbers_counts(claims: list[dict]) -> dict[str, int]:
    """How many checks hold, do not hold, cannot be computed, or do not apply on the paper's own numbers."""
    return {v: sum(c["on_paper_numbers"]["verdict"] == v for c in claims) for v in PAPER_NUMBER_VERDICTS}


def paper_numbers_line(claims: list[dict]) -> str:
    """``"9 hold, 3 do not hold on the paper's own numbers (24 cannot be computed: ...; 16 exact)"``."""
    n = paper_numbers_counts(claims)
    return (f"{n['holds']} hold, {n['does not hold']} do not hold on the paper's own numbers ({n[CANNOT]} cannot "
            f"be computed: a figure, a run folder or a table the paper lacks; {n[NOT_APPLICABLE]} exact, which "
            "need none)")


PAPER_NUMBERS_NOTE = ("Column *paper's numbers*: the same check applied to the numbers the paper prints "
                      "(`poolvae.claims.on_paper_numbers`). Where it does not hold, either the check reads the claim "
                      "more strictly than the paper's own table supports, or the paper's sentence says more than "
                      "its table; the last section of `results/claims.md` gives the numbers.")


def counts_block(claims: list[dict], scales) -> list[str]:
    """The ledger's summary block, shared by ``results/claims.md`` and the README: one list of counts (a bullet per
    scale, then the same checks on the paper's own numbers), then the notes (provisional verdicts, when there are
    any; what the paper's-numbers column means)."""
    lines = [f"- scale `{scale}`: {counts_line(claims, scale)}" for scale in scales]
    lines += [f"- the same checks: {paper_numbers_line(claims)}"]
    if any(provisional_count(claims, s) for s in scales):
        lines += ["", PROVISIONAL_NOTE]
    return lines + ["", PAPER_NUMBERS_NOTE]


def claims_markdown(claims: list[dict]) -> str:
    """The ledger as a Markdown page: counts per scale, then one row per claim."""
    lines = ["# Which claims hold", "",
             "Generated by `make claims` from `results/`; every verdict is computed (`poolvae.claims`). Scale `cpu` "
             "is PolyMNIST-mini at the cpu budget: only ranks compare with the papers.", ""]
    lines += counts_block(claims, SCALES)
    lines += ["", "| id | claim | source | kind | cpu | paper | paper's numbers |", "|---|---|---|---|---|---|---|"]
    for c in claims:
        quote = c["quote"] if len(c["quote"]) <= 90 else c["quote"][:87] + "..."
        cells = [verdict_text(c["verdict"][s]) for s in SCALES] + [c["on_paper_numbers"]["verdict"]]
        lines.append(f"| `{c['id']}` | {quote} | {c['source']} | {c['kind']} | " + " | ".join(cells) + " |")
    lines += ["", "## Reasons at scale `cpu`", ""]
    lines += [f"- `{c['id']}` ({c['verdict']['cpu']['verdict']}): {c['verdict']['cpu']['reason']}" for c in claims]
    lines += ["", "## The same checks on the paper's own numbers", ""]
    lines += [f"- `{c['id']}` ({c['on_paper_numbers']['verdict']}): {c['on_paper_numbers']['reason']}"
              for c in claims if c["on_paper_numbers"]["verdict"] in ("holds", "does not hold")]
    return "\n".join(lines) + "\n"


def write_claims(results: Path = RESULTS_DIR) -> dict:
    """Compute the ledger and write ``results/claims.json`` and ``results/claims.md``; return the JSON object."""
    claims = evaluate_claims(results)
    obj = {"item": "claims", "scales": list(SCALES), "counts": {s: counts(claims, s) for s in SCALES},
           "provisional": {s: provisional_count(claims, s) for s in SCALES},
           "on_paper_numbers": paper_numbers_counts(claims), "claims": claims,
           "provenance": provenance()}
    write_json(Path(results) / "claims.json", obj)
    atomic_write_bytes(Path(results) / "claims.md", claims_markdown(claims).encode())
    return obj


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    argparse.ArgumentParser(description="Compute the claims ledger -> results/claims.{json,md}").parse_args(argv)
    obj = write_claims()
    for s in SCALES:
        print(f"{s}: {counts_line(obj['claims'], s)} ({len(obj['claims'])} claims)")
    print(f"checks on the paper's numbers: {paper_numbers_line(obj['claims'])}")


if __name__ == "__main__":
    main()

