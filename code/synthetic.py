"""Synthetic experts: the experts exactly as the papers define them, and the numbers behind each figure.

One pure function per item, returning a plain dict of numbers (lists, not tensors) that
:mod:`poolvae.figures` writes to ``results/<item>.json`` and draws:

=================  ======================================================================================
``hel-fig1``        :func:`hel_fig1`: PoE, MoE and exact Hölder-1/2 pools of three 2-D experts (HEL sec. 4)
``hel-fig2``        :func:`hel_fig2`: NLL, Bhattacharyya coefficient and sharpness vs the number of good
                    experts, two bad experts fixed ("Illustrative example", HEL sec. 4)
``hel-fig7``        :func:`hel_fig7`: the same with 0, 1, 2 and 3 bad experts, plus the Wasserstein
                    barycenter (HEL App. A.3)
``wb-fig2``         :func:`wb_fig2`: PoE, MoE and WB of two 1-D Gaussian experts (WB Figure 2)
``holder-alpha``    :func:`holder_alpha`: the Hölder family, alpha from 0 to 1, on the hel-fig1 experts,
                    with the Hellinger moment match beside alpha = 1/2 (in none of the papers)
=================  ======================================================================================

Everything here is exact or deterministic quadrature, never Monte Carlo: the papers estimate their
metrics "by sampling", we use closed forms where they exist (the NLL and Bhattacharyya coefficient of a
Gaussian against ``N(0, I)``, the covariance of a mixture) and the trapezoidal rule on a fine 2-D grid
where they do not (``E_{N(0,I)}[-log q]`` and ``int sqrt(p q)`` of a mixture ``q``). Pooling itself is
always :mod:`poolvae.aggregators`; nothing is re-implemented here. Computations run in float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from .aggregators import hellinger, holder_half_mixture, holder_pool_on_grid, moe, pair_indices, poe, wb
from .distributions import DiagGaussian, GaussianMixture, diag_gaussian_log_prob
from .divergences import log_bhattacharyya

DTYPE = torch.float64

#: The pooling rules of the expert study, by palette key. PoE is the plain product (MVAE's product
#: without the prior expert, as in the paper's study); "holder" is the exact Hölder-1/2 pool as a
#: Gaussian mixture, "hellinger" its Gaussian moment match.
STUDY_POOLS = {
    "poe": poe,
    "moe": moe,
    "holder": holder_half_mixture,
    "hellinger": hellinger,
    "wb": wb,
}

METRICS = ("nll", "bc", "sharpness")


# --------------------------------------------------------------------------------------------------
# Configurations: the papers' numbers, and our choices where the papers give none
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fig1Config:
    """Three 2-D experts of HEL sec. 4 / Figure 1: two agreeing experts and one sharp distant one."""

    means: tuple = ((0.0, 0.0), (1.0, 0.2), (4.0, 0.0))  # mu_1, mu_2, mu_3 (HEL sec. 4)
    variances: tuple = (0.5, 0.6, 0.2)  # isotropic sigma_j^2 (HEL sec. 4)
    x_lim: tuple = (-4.0, 7.5)  # grid box, wide enough that every pool is ~0 on its edge
    y_lim: tuple = (-4.5, 4.5)
    step: float = 0.025  # grid spacing in both directions
    split_x: float = 2.25  # mass left of this line = "around experts 1 and 2" (midway 0.5 <-> 4)


@dataclass(frozen=True)
class HolderAlphaConfig:
    """The Hölder family on the Figure 1 experts (our figure; none of the papers has it)."""

    alphas: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)  # 0 = normalised geometric pool, 1 = linear pool
    sweep: int = 41  # alphas 0, 0.025, ..., 1 for the summary curves (trace, mass near experts 1-2)
    experts: Fig1Config = Fig1Config()  # experts and grid of hel-fig1


@dataclass(frozen=True)
class ExpertStudy:
    """Good and bad experts of HEL sec. 4 ("Illustrative example", Fig. 2) and App. A.3 (Fig. 7).

    The true distribution is ``N(0, I)`` in 2-D. The paper does not state the range of the number
    of good experts on its x-axis; we use 1 to 10.
    """

    good_mean: tuple = (0.0, 0.0)  # good experts N((0, 0), 0.5 I) (HEL sec. 4)
    good_var: float = 0.5
    bad_mean: tuple = (4.0, 4.0)  # bad experts N((4, 4), 0.2 I) (HEL sec. 4)
    bad_var: float = 0.2
    n_good: tuple = tuple(range(1, 11))  # x-axis; our choice, the paper gives no range
    n_bad_fig2: int = 2  # "two bad experts fixed" (HEL Fig. 2)
    n_bad_fig7: tuple = (0, 1, 2, 3)  # HEL Fig. 7
    quad_lim: tuple = (-8.0, 10.0)  # box of the trapezoidal grid for mixtures, both coordinates
    quad_step: float = 0.1  # its spacing; halving it changes no metric by more than 1e-11


@dataclass(frozen=True)
class WbFig2Config:
    """Two 1-D Gaussian experts for WB Figure 2. The paper gives no numbers; these are our choice:
    different means and different widths, so PoE, MoE and WB all look different."""

    means: tuple = (-1.5, 1.5)  # expert means
    stds: tuple = (0.6, 1.0)  # expert standard deviations
    x_lim: tuple = (-5.0, 5.0)  # plotted range
    n_points: int = 401  # points of the stored curves


def from_dict(cls, d: dict):
    """Rebuild a config dataclass from its JSON form (lists become tuples, nested configs rebuilt)."""

    def tup(v):
        return tuple(tup(x) for x in v) if isinstance(v, list) else v

    kwargs = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        kwargs[f.name] = from_dict(Fig1Config, v) if isinstance(v, dict) else tup(v)
    return cls(**kwargs)


# --------------------------------------------------------------------------------------------------
# Experts, grids and quadrature
# --------------------------------------------------------------------------------------------------


def isotropic_experts(means, variances) -> tuple[Tensor, Tensor]:
    """Experts ``N(mean_j, var_j I)`` stacked as ``(mu, logvar)`` of shape (M, 1, D), float64."""
    mu = torch.tensor(means, dtype=DTYPE).unsqueeze(1)  # (M, 1, D)
    var = torch.tensor(variances, dtype=DTYPE).reshape(-1, 1, 1).expand_as(mu)  # (M, 1, D)
    return mu, torch.log(var)


def study_experts(cfg: ExpertStudy, n_good: int, n_bad: int) -> tuple[Tensor, Tensor]:
    """``n_good`` good experts then ``n_bad`` bad ones, as ``(mu, logvar)`` of shape (M, 1, 2)."""
    means = [cfg.good_mean] * n_good + [cfg.bad_mean] * n_bad
    variances = [cfg.good_var] * n_good + [cfg.bad_var] * n_bad
    return isotropic_experts(means, variances)


def grid_2d(x_lim, y_lim, step: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Regular grid: axes ``(xs (nx,), ys (ny,))`` and cell area; points span both limits inclusive."""
    nx = int(round((x_lim[1] - x_lim[0]) / step)) + 1
    ny = int(round((y_lim[1] - y_lim[0]) / step)) + 1
    return np.linspace(x_lim[0], x_lim[1], nx), np.linspace(y_lim[0], y_lim[1], ny), step * step


def grid_points(xs: np.ndarray, ys: np.ndarray) -> Tensor:
    """Grid points in row-major (y, x) order, shape (ny * nx, 2)."""
    X, Y = np.meshgrid(xs, ys)  # (ny, nx) each
    return torch.from_numpy(np.stack([X.ravel(), Y.ravel()], -1))  # (N, 2)


def log_prob(q: DiagGaussian | GaussianMixture, z: Tensor) -> Tensor:
    """Log density of a single pooled posterior (batch of one) at points z (N, D); returns (N,)."""
    return q.log_prob(z.unsqueeze(1))[:, 0]  # (N, 1, D) -> (N,)


# --------------------------------------------------------------------------------------------------
# The three metrics of HEL Fig. 2 against the true distribution p = N(0, I)
# --------------------------------------------------------------------------------------------------


def gaussian_expected_nll(mu: Tensor, var: Tensor) -> float:
    """``E_{z ~ N(0, I)}[-log N(z; mu, diag(var))] = 1/2 sum_d [log(2 pi var_d) + (1 + mu_d^2) / var_d]``.

    ``mu`` and ``var`` of shape (D,).
    """
    return float(0.5 * (torch.log(2.0 * math.pi * var) + (1.0 + mu.pow(2)) / var).sum())


def gaussian_bc_standard_normal(q: DiagGaussian) -> float:
    """Bhattacharyya coefficient of a Gaussian with ``N(0, I)`` in closed form (HEL eq. 11)."""
    zeros = torch.zeros_like(q.mu[0])
    return float(torch.exp(log_bhattacharyya(q.mu[0], q.logvar[0], zeros, zeros)))


@lru_cache(maxsize=4)
def quadrature_grid(lim: tuple, step: float) -> tuple[Tensor, Tensor, float]:
    """Trapezoidal grid on ``lim x lim``: points (N, 2), ``log p`` of ``N(0, I)`` there (N,), cell area."""
    xs, ys, cell = grid_2d(lim, lim, step)
    z = grid_points(xs, ys)  # (N, 2)
    log_p = diag_gaussian_log_prob(z, torch.zeros(2, dtype=DTYPE), torch.zeros(2, dtype=DTYPE))  # (N,)
    return z, log_p, cell


def mixture_nll_and_bc(q: GaussianMixture, lim: tuple, step: float) -> tuple[float, float]:
    """``E_p[-log q]`` and ``int sqrt(p q)`` for a mixture ``q`` and ``p = N(0, I)``, by the trapezoidal rule.

    Both integrands are smooth with Gaussian tails, so on a box that holds their mass the trapezoidal
    rule converges exponentially in ``1 / step^2`` (it is spectrally accurate for such functions): with
    the default box and step, halving the step changes neither number by more than 1e-11. Gauss-Hermite
    with 80 x 80 nodes, which we tried first, is only good to ~1e-6 here because ``-log q`` of
    well-separated components bends sharply between them. On the box's edge ``p < e^-32``.
    """
    z, log_p, cell = quadrature_grid(tuple(lim), step)
    log_q = log_prob(q, z)  # (N,)
    nll = -(torch.exp(log_p) * log_q).sum() * cell
    bc = torch.exp(0.5 * (log_p + log_q)).sum() * cell
    return float(nll), float(bc)


def covariance_trace(q: DiagGaussian | GaussianMixture) -> float:
    """Sharpness: trace of the covariance (of the moment-matched Gaussian, for a mixture).

    The trace of a mixture's full covariance is the sum of its per-dimension variances, which is what
    :meth:`GaussianMixture.moment_match` returns: the diagonal approximation loses nothing here.
    """
    g = q if isinstance(q, DiagGaussian) else q.moment_match()
    return float(g.var[0].sum())


def metrics(q: DiagGaussian | GaussianMixture, cfg: ExpertStudy) -> dict[str, float]:
    """Expected NLL (lower is better), Bhattacharyya coefficient with ``N(0, I)`` (higher) and
    sharpness (lower) of one pooled posterior; closed forms for a Gaussian, quadrature for a mixture."""
    if isinstance(q, DiagGaussian):
        nll, bc = gaussian_expected_nll(q.mu[0], q.var[0]), gaussian_bc_standard_normal(q)
    else:
        nll, bc = mixture_nll_and_bc(q, cfg.quad_lim, cfg.quad_step)
    return {"nll": nll, "bc": bc, "sharpness": covariance_trace(q)}


# --------------------------------------------------------------------------------------------------
# hel-fig2 and hel-fig7: the good/bad experts study
# --------------------------------------------------------------------------------------------------


def reference_metrics() -> dict[str, float]:
    """The metrics of the true distribution itself: its entropy (the smallest possible expected NLL),
    a Bhattacharyya coefficient of 1 and its covariance trace; drawn as reference lines."""
    truth = DiagGaussian(torch.zeros(1, 2, dtype=DTYPE), torch.zeros(1, 2, dtype=DTYPE))
    return {"nll": gaussian_expected_nll(truth.mu[0], truth.var[0]),
            "bc": gaussian_bc_standard_normal(truth), "sharpness": covariance_trace(truth)}


def study_row(cfg: ExpertStudy, n_bad: int, methods: tuple[str, ...]) -> dict:
    """Every metric of every method against the number of good experts, for ``n_bad`` bad experts.

    Returns ``{"n_bad", "metrics": {metric: {method: [value per n_good]}}, "extremes": {method:
    {metric: {"min", "max"}}}}``.
    """
    table = {m: {k: [] for k in methods} for m in METRICS}
    for n_good in cfg.n_good:
        mu, logvar = study_experts(cfg, n_good, n_bad)  # (M, 1, 2)
        for name in methods:
            for metric, value in metrics(STUDY_POOLS[name](mu, logvar), cfg).items():
                table[metric][name].append(value)
    extremes = {
        name: {m: {"min": min(table[m][name]), "max": max(table[m][name])} for m in METRICS}
        for name in methods
    }
    return {"n_bad": n_bad, "metrics": table, "extremes": extremes}


def _study_config(cfg: ExpertStudy) -> dict:
    """The study's configuration for the JSON file, with the true distribution spelled out."""
    return {**asdict(cfg), "true_mean": [0.0, 0.0], "true_var": 1.0, "dim": 2}


def quadrature_info(cfg: ExpertStudy) -> dict:
    """How each number was computed: the rules and their sizes (for the provenance block)."""
    n = len(grid_2d(cfg.quad_lim, cfg.quad_lim, cfg.quad_step)[0])
    rule = f"trapezoidal rule, {n} x {n} points on {list(cfg.quad_lim)}^2, step {cfg.quad_step}"
    return {
        "nll_gaussian": "closed form",
        "nll_mixture": rule,
        "bc_gaussian": "closed form (poolvae.divergences.log_bhattacharyya)",
        "bc_mixture": rule,
        "sharpness": "closed form (covariance trace; law of total variance for mixtures)",
        "grid_points": n * n,
        "monte_carlo": "none",
    }


# Direction of "better" per metric: NLL and sharpness lower, Bhattacharyya coefficient higher.
BETTER = {"nll": -1, "bc": 1, "sharpness": -1}


def compare(a: list[float], b: list[float], metric: str, n_good: list[int]) -> dict:
    """Where curve ``a`` beats curve ``b`` on ``metric``: the n_good values, and the smallest n_good
    from which it wins at every larger one (None if it does not win at the last)."""
    wins = [BETTER[metric] * (x - y) > 0 for x, y in zip(a, b, strict=True)]
    start = None
    for i in range(len(wins) - 1, -1, -1):
        if not wins[i]:
            break
        start = n_good[i]
    return {"better_at_n_good": [n for n, w in zip(n_good, wins, strict=True) if w],
            "better_from_n_good": start,
            "difference": [x - y for x, y in zip(a, b, strict=True)]}


def claims_fig2(row: dict, n_good: list[int]) -> list[dict]:
    """The qualitative claims of HEL sec. 4 about Fig. 2, checked on one row of the study."""
    t = row["metrics"]
    others = [m for m in t["nll"] if m != "poe"]
    out = []
    for metric, word in (("nll", "highest NLL"), ("bc", "lowest Bhattacharyya coefficient")):
        worst = all(
            all(BETTER[metric] * (t[metric][m][i] - t[metric]["poe"][i]) > 0 for m in others)
            for i in range(len(n_good))
        )
        out.append({"claim": f"PoE has the {word} at every number of good experts", "holds": worst})
    out.append({
        "claim": "the other rules keep a low NLL (their largest NLL is below PoE's smallest)",
        "holds": max(max(t["nll"][m]) for m in others) < min(t["nll"]["poe"]),
        "largest_other_nll": max(max(t["nll"][m]) for m in others),
        "smallest_poe_nll": min(t["nll"]["poe"]),
    })
    for name in ("holder", "hellinger"):
        for metric in METRICS:
            c = compare(t[metric][name], t[metric]["moe"], metric, n_good)
            out.append({
                "claim": f"{name} is better than MoE on {metric} as the number of good experts increases",
                "holds": c["better_from_n_good"] is not None,
                **c,
            })
    return out


def hel_fig2(cfg: ExpertStudy = ExpertStudy()) -> dict:
    """HEL Fig. 2: PoE, MoE, Hölder-1/2 (exact) and Hellinger vs the number of good experts, 2 bad fixed."""
    methods = ("poe", "moe", "holder", "hellinger")
    row = study_row(cfg, cfg.n_bad_fig2, methods)
    return {
        "item": "hel-fig2",
        "config": _study_config(cfg),
        "n_good": list(cfg.n_good),
        "methods": list(methods),
        **row,
        "reference": reference_metrics(),
        "claims": claims_fig2(row, list(cfg.n_good)),
        "quadrature": quadrature_info(cfg),
    }


def claims_fig7(rows: list[dict], n_good: list[int]) -> list[dict]:
    """The qualitative claims of HEL App. A.3 about Fig. 7, checked on the study's rows."""
    by_bad = {r["n_bad"]: r["metrics"] for r in rows}
    bads = sorted(by_bad)
    out = []
    if 0 in by_bad:
        t = by_bad[0]
        gaps = [t[metric][m][i] - t[metric]["moe"][i] for metric in METRICS for m in ("holder", "hellinger")
                for i in range(len(n_good))]
        out.append({
            "claim": "without bad experts MoE is slightly better than Hölder and Hellinger",
            "holds": False if max(abs(g) for g in gaps) < 1e-9 else None,
            "max_abs_difference_to_moe": max(abs(g) for g in gaps),
            "why": "identical good experts: MoE, Hölder-1/2, Hellinger and WB all return the expert itself",
        })
    worst = all(
        all(by_bad[b]["nll"]["poe"][i] > by_bad[b]["nll"][m][i] for m in by_bad[b]["nll"] if m != "poe")
        for b in bads if b > 0 for i in range(len(n_good))
    )
    out.append({"claim": "with bad experts, PoE has the highest NLL everywhere", "holds": worst})
    # "WB ... its NLL increases noticeably with more bad experts"; MoE "with more bad experts ... yields
    # higher NLL, lower Bhattacharyya coefficients, and less sharpness" (HEL App. A.3)
    for method, metric in (("wb", "nll"), ("moe", "nll"), ("moe", "bc"), ("moe", "sharpness")):
        worse = [all(BETTER[metric] * (by_bad[b2][metric][method][i] - by_bad[b1][metric][method][i]) < 0
                     for b1, b2 in zip(bads, bads[1:], strict=False)) for i in range(len(n_good))]
        out.append({
            "claim": f"{method}'s {metric} gets worse with every added bad expert",
            "holds": all(worse),
            "holds_at_n_good": [n for n, w in zip(n_good, worse, strict=True) if w],
        })
    for b in bads:
        if b == 0:
            continue
        t = by_bad[b]
        for name in ("holder", "hellinger"):
            for metric in METRICS:
                c = compare(t[metric][name], t[metric]["moe"], metric, n_good)
                out.append({
                    "claim": f"with {b} bad expert(s), {name} is better than MoE on {metric}",
                    "holds": c["better_from_n_good"] is not None,
                    "n_bad": b,
                    **c,
                })
    return out


def hel_fig7(cfg: ExpertStudy = ExpertStudy()) -> dict:
    """HEL Fig. 7: the study of Fig. 2 for 0, 1, 2 and 3 bad experts, with the Wasserstein barycenter."""
    methods = ("poe", "moe", "holder", "hellinger", "wb")
    rows = [study_row(cfg, b, methods) for b in cfg.n_bad_fig7]
    return {
        "item": "hel-fig7",
        "config": _study_config(cfg),
        "n_good": list(cfg.n_good),
        "methods": list(methods),
        "rows": rows,
        "reference": reference_metrics(),
        "claims": claims_fig7(rows, list(cfg.n_good)),
        "quadrature": quadrature_info(cfg),
    }


# --------------------------------------------------------------------------------------------------
# hel-fig1 and holder-alpha: densities of three 2-D experts on a grid
# --------------------------------------------------------------------------------------------------


def fig1_grid(cfg: Fig1Config) -> tuple[np.ndarray, np.ndarray, Tensor, float]:
    """The grid of hel-fig1: axes xs (nx,), ys (ny,), points (ny * nx, 2) and cell area."""
    xs, ys, cell = grid_2d(cfg.x_lim, cfg.y_lim, cfg.step)
    return xs, ys, grid_points(xs, ys), cell


def fig1_pools(cfg: Fig1Config) -> dict[str, DiagGaussian | GaussianMixture]:
    """PoE (plain product), MoE and the exact Hölder-1/2 mixture of the three Figure 1 experts."""
    mu, logvar = isotropic_experts(cfg.means, cfg.variances)  # (3, 1, 2)
    return {"poe": poe(mu, logvar), "moe": moe(mu, logvar), "holder": holder_half_mixture(mu, logvar)}


def fig1_densities(cfg: Fig1Config = Fig1Config()) -> dict[str, np.ndarray]:
    """Exact densities of PoE, MoE and Hölder-1/2 on the hel-fig1 grid, each of shape (ny, nx)."""
    xs, ys, z, _ = fig1_grid(cfg)
    shape = (len(ys), len(xs))
    return {k: torch.exp(log_prob(q, z)).reshape(shape).numpy() for k, q in fig1_pools(cfg).items()}


def _grid_moments(density: np.ndarray, xs: np.ndarray, ys: np.ndarray, cell: float, split_x: float) -> dict:
    """Mass, mean, covariance trace and mass left of ``split_x`` of a density on a grid (ny, nx)."""
    X, Y = np.meshgrid(xs, ys)
    mass = float(density.sum() * cell)
    mean = [float((density * X).sum() * cell / mass), float((density * Y).sum() * cell / mass)]
    var = [float((density * (X - mean[0]) ** 2).sum() * cell / mass),
           float((density * (Y - mean[1]) ** 2).sum() * cell / mass)]
    return {"grid_mass": mass, "mean": mean, "cov_trace": sum(var), "var": var,
            "mass_left_of_split": float(density[:, xs < split_x].sum() * cell / mass)}


def _summary(q: DiagGaussian | GaussianMixture) -> dict:
    """Exact mean, per-dimension variance and covariance trace of a pool (moments of the mixture)."""
    g = q if isinstance(q, DiagGaussian) else q.moment_match()
    return {"mean": g.mu[0].tolist(), "var": g.var[0].tolist(), "cov_trace": float(g.var[0].sum())}


def hel_fig1(cfg: Fig1Config = Fig1Config()) -> dict:
    """HEL Fig. 1: PoE, MoE and Hölder-1/2 of two agreeing experts and a sharp distant one.

    The JSON keeps the grid specification and summary numbers (exact moments, the Hölder mixture's
    components and weights, grid mass checks), not the densities; :func:`fig1_densities` recomputes
    those for drawing.
    """
    xs, ys, _, cell = fig1_grid(cfg)
    pools = fig1_pools(cfg)
    dens = fig1_densities(cfg)
    M = len(cfg.means)
    i, j = pair_indices(M)
    names = [f"q{a + 1}" for a in range(M)] + [f"q{a + 1}q{b + 1}" for a, b in zip(i.tolist(), j.tolist(),
                                                                                        strict=True)]
    hol = pools["holder"]
    return {
        "item": "hel-fig1",
        "config": asdict(cfg),
        "grid": {"nx": len(xs), "ny": len(ys), "x": [xs[0], xs[-1]], "y": [ys[0], ys[-1]], "step": cfg.step},
        "methods": list(pools),
        "exact": {k: _summary(q) for k, q in pools.items()},
        "on_grid": {k: _grid_moments(d, xs, ys, cell, cfg.split_x) for k, d in dens.items()},
        "peak_density": {k: float(d.max()) for k, d in dens.items()},
        "holder_components": {
            "names": names,  # q_j: expert j; q_iq_j: sqrt(q_i q_j) normalised (HEL eqs. 14, 18)
            "weights": hol.weights[:, 0].tolist(),
            "means": hol.mu[:, 0].tolist(),
            "vars": torch.exp(hol.logvar[:, 0]).tolist(),
        },
        "moe_weights": pools["moe"].weights[:, 0].tolist(),
    }


def holder_alpha_densities(
    cfg: HolderAlphaConfig = HolderAlphaConfig(), alphas: tuple | list | None = None
) -> dict[float, np.ndarray]:
    """Normalised Hölder pools of the hel-fig1 experts on its grid, one (ny, nx) density per alpha
    (``cfg.alphas`` unless ``alphas`` is given), by :func:`poolvae.aggregators.holder_pool_on_grid`."""
    e = cfg.experts
    xs, ys, z, cell = fig1_grid(e)
    mu, logvar = isotropic_experts(e.means, e.variances)  # (M, 1, 2)
    log_q = diag_gaussian_log_prob(z.unsqueeze(0), mu, logvar)  # (M, N)
    return {a: torch.exp(holder_pool_on_grid(log_q, a, cell)).reshape(len(ys), len(xs)).numpy()
            for a in (cfg.alphas if alphas is None else alphas)}


def holder_alpha(cfg: HolderAlphaConfig = HolderAlphaConfig()) -> dict:
    """The Hölder family ``c (sum_j q_j^alpha / M)^(1/alpha)`` on the hel-fig1 experts, alpha in [0, 1].

    Grid moments for each alpha of ``cfg.alphas`` and of a finer sweep, the exact Hellinger moment
    match (a Gaussian) for alpha = 1/2, and three checks of the grid against closed forms: alpha = 0
    against the PoE with exponents 1/M, alpha = 1/2 against the exact mixture, alpha = 1 against MoE
    (largest absolute density difference on the grid).
    """
    e = cfg.experts
    xs, ys, z, cell = fig1_grid(e)
    dens = holder_alpha_densities(cfg)
    mu, logvar = isotropic_experts(e.means, e.variances)  # (M, 1, 2)
    M = mu.shape[0]
    exact = {
        0.0: poe(mu, logvar, weights=torch.full((M,), 1.0 / M, dtype=DTYPE)),
        0.5: holder_half_mixture(mu, logvar),
        1.0: moe(mu, logvar),
    }
    checks = {
        str(float(a)): float(np.abs(dens[a] - torch.exp(log_prob(q, z)).reshape(dens[a].shape).numpy()).max())
        for a, q in exact.items() if a in dens
    }
    sweep = [i / (cfg.sweep - 1) for i in range(cfg.sweep)]
    swept = [_grid_moments(d, xs, ys, cell, e.split_x) for d in holder_alpha_densities(cfg, sweep).values()]
    return {
        "item": "holder-alpha",
        "config": asdict(cfg),
        "grid": {"nx": len(xs), "ny": len(ys), "x": [xs[0], xs[-1]], "y": [ys[0], ys[-1]], "step": e.step},
        "alphas": list(cfg.alphas),
        "on_grid": {str(float(a)): _grid_moments(d, xs, ys, cell, e.split_x) for a, d in dens.items()},
        "peak_density": {str(float(a)): float(d.max()) for a, d in dens.items()},
        "hellinger": _summary(hellinger(mu, logvar)),
        "sweep": {"alpha": sweep, "cov_trace": [g["cov_trace"] for g in swept],
                  "mass_left_of_split": [g["mass_left_of_split"] for g in swept]},
        "max_abs_error_vs_closed_form": checks,
    }


# --------------------------------------------------------------------------------------------------
# wb-fig2: two 1-D experts, PoE / MoE / WB
# --------------------------------------------------------------------------------------------------


def wb_fig2(cfg: WbFig2Config = WbFig2Config()) -> dict:
    """WB Fig. 2: PoE, MoE and Wasserstein barycenter of two 1-D Gaussian experts, as curves.

    Stores every curve (the experts and the three pools on ``cfg.n_points`` points) and the pools'
    parameters: PoE ``N(m, s^2)`` with precisions adding, MoE weights, WB ``N(mean of means, (mean
    of standard deviations)^2)`` (WB eq. 7).
    """
    mu = torch.tensor(cfg.means, dtype=DTYPE).reshape(-1, 1, 1)  # (2, 1, 1)
    logvar = 2.0 * torch.log(torch.tensor(cfg.stds, dtype=DTYPE)).reshape(-1, 1, 1)  # (2, 1, 1)
    pools = {"poe": poe(mu, logvar), "moe": moe(mu, logvar), "wb": wb(mu, logvar)}
    x = torch.linspace(cfg.x_lim[0], cfg.x_lim[1], cfg.n_points, dtype=DTYPE).unsqueeze(-1)  # (N, 1)
    experts = torch.exp(diag_gaussian_log_prob(x.unsqueeze(0), mu, logvar))  # (2, N)
    return {
        "item": "wb-fig2",
        "config": asdict(cfg),
        "x": x[:, 0].tolist(),
        "experts": experts.tolist(),
        "methods": list(pools),
        "density": {k: torch.exp(log_prob(q, x)).tolist() for k, q in pools.items()},
        "params": {
            "poe": {"mean": float(pools["poe"].mu), "std": float(pools["poe"].std)},
            "moe": {"weights": pools["moe"].weights[:, 0].tolist(), "means": list(cfg.means),
                    "stds": list(cfg.stds)},
            "wb": {"mean": float(pools["wb"].mu), "std": float(pools["wb"].std)},
        },
        "moments": {k: {"mean": v["mean"][0], "var": v["var"][0]} for k, v in
                    ((k, _summary(q)) for k, q in pools.items())},
    }
