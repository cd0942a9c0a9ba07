"""Tests for poolvae.synthetic: every number is checked against an independent computation.

Independent means written here from the papers' formulas with numpy/scipy (Monte Carlo, scipy's
adaptive ``dblquad``, a separate grid, or a closed form worked by hand), never the module's own output
fed back to itself.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from poolvae import synthetic as syn
from poolvae.distributions import DiagGaussian

CFG = syn.ExpertStudy()


def study_expert_params(n_good: int, n_bad: int) -> tuple[list, list]:
    """Means and isotropic variances of the study's experts, written out from HEL sec. 4."""
    return [(0.0, 0.0)] * n_good + [(4.0, 4.0)] * n_bad, [0.5] * n_good + [0.2] * n_bad


def npdf(z1, z2, mean, var):
    """Isotropic 2-D normal density ``N(z; mean, var I)`` (scalars or numpy arrays)."""
    return np.exp(-((z1 - mean[0]) ** 2 + (z2 - mean[1]) ** 2) / (2 * var)) / (2 * math.pi * var)


def p_true(z1: float, z2: float) -> float:
    """The true distribution N(0, I) of the study."""
    return math.exp(-(z1 * z1 + z2 * z2) / 2) / (2 * math.pi)


def independent_pool(n_good: int, n_bad: int, rule: str):
    """The unnormalised MoE or Hölder-1/2 density of the study's experts (HEL eq. 2), from the experts.

    Plain ``math`` on scalars: scipy's dblquad calls it some 10^5 times.
    """
    means, variances = study_expert_params(n_good, n_bad)
    M = len(means)
    experts = [(m[0], m[1], 1 / (2 * v), 1 / (2 * math.pi * v)) for m, v in zip(means, variances, strict=True)]

    def f(z1, z2):
        q = [c * math.exp(-((z1 - a) ** 2 + (z2 - b) ** 2) * h) for a, b, h, c in experts]
        return sum(q) / M if rule == "moe" else (sum(math.sqrt(x) for x in q) / M) ** 2

    return f


BOX = (-8.0, 10.0)  # the experts and the truth have no mass outside it


def dblquad(f) -> float:
    """Adaptive 2-D quadrature over BOX x BOX, tight tolerances."""
    return integrate.dblquad(lambda y, x: f(x, y), *BOX, *BOX, epsabs=1e-11, epsrel=1e-10)[0]


# --------------------------------------------------------------------------------------------------
# Metrics against p = N(0, I)
# --------------------------------------------------------------------------------------------------


def test_gaussian_expected_nll_matches_monte_carlo():
    mu, var = np.array([0.7, -1.2]), np.array([0.3, 2.0])
    got = syn.gaussian_expected_nll(torch.tensor(mu), torch.tensor(var))
    z = np.random.default_rng(0).standard_normal((1_000_000, 2))  # samples of N(0, I)
    nll = -stats.norm.logpdf(z, mu, np.sqrt(var)).sum(-1)
    se = nll.std() / math.sqrt(len(nll))
    assert abs(got - nll.mean()) < 5 * se


def test_gaussian_bhattacharyya_matches_grid_quadrature():
    mu, var = np.array([0.5, 1.5]), np.array([0.4, 1.7])
    q = DiagGaussian(torch.tensor(mu).unsqueeze(0), torch.log(torch.tensor(var)).unsqueeze(0))
    got = syn.metrics(q, CFG)["bc"]
    x = np.linspace(-12, 12, 2401)  # step 0.01
    X, Y = np.meshgrid(x, x)
    p = stats.norm.pdf(X) * stats.norm.pdf(Y)
    qq = stats.norm.pdf(X, mu[0], math.sqrt(var[0])) * stats.norm.pdf(Y, mu[1], math.sqrt(var[1]))
    expected = np.sqrt(p * qq).sum() * 0.01**2
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("rule,method", [("moe", "moe"), ("holder", "holder")])
def test_mixture_nll_and_bc_match_scipy_dblquad(rule, method):
    """3 good and 2 bad experts: the grid quadrature of the module vs scipy's adaptive dblquad on the
    pool written from the experts (MoE: average of densities; Hölder: c (mean of sqrt q_j)^2)."""
    n_good, n_bad = 3, 2
    f = independent_pool(n_good, n_bad, rule)
    Z = dblquad(f)  # 1 for MoE; 1/c for Hölder
    nll = dblquad(lambda a, b: -p_true(a, b) * math.log(f(a, b) / Z))
    bc = dblquad(lambda a, b: math.sqrt(p_true(a, b) * f(a, b) / Z))
    mu, logvar = syn.study_experts(CFG, n_good, n_bad)
    got = syn.metrics(syn.STUDY_POOLS[method](mu, logvar), CFG)
    assert got["nll"] == pytest.approx(nll, rel=1e-8)
    assert got["bc"] == pytest.approx(bc, rel=1e-8)


def test_mixture_sharpness_is_trace_of_full_covariance():
    """Hölder pool of 2 good + 1 bad: trace of the covariance by dblquad moments of the pool itself."""
    f = independent_pool(2, 1, "holder")
    Z = dblquad(f)
    m1 = dblquad(lambda a, b: a * f(a, b)) / Z
    m2 = dblquad(lambda a, b: b * f(a, b)) / Z
    trace = dblquad(lambda a, b: ((a - m1) ** 2 + (b - m2) ** 2) * f(a, b)) / Z
    mu, logvar = syn.study_experts(CFG, 2, 1)
    assert syn.metrics(syn.STUDY_POOLS["holder"](mu, logvar), CFG)["sharpness"] == pytest.approx(trace, rel=1e-8)


# --------------------------------------------------------------------------------------------------
# The study: closed forms worked by hand
# --------------------------------------------------------------------------------------------------


def by_hand_gaussian(mean: float, var: float) -> dict:
    """NLL, BC and trace of an isotropic 2-D Gaussian N(mean 1, var I) against N(0, I), by hand."""
    nll = 2 * 0.5 * (math.log(2 * math.pi * var) + (1 + mean**2) / var)
    bc_1d = math.sqrt(2 * math.sqrt(var) / (1 + var)) * math.exp(-(mean**2) / (4 * (1 + var)))
    return {"nll": nll, "bc": bc_1d**2, "sharpness": 2 * var}


@pytest.fixture(scope="module")
def fig7() -> dict:
    return syn.hel_fig7()


def test_without_bad_experts_every_rule_returns_the_expert(fig7):
    row = next(r for r in fig7["rows"] if r["n_bad"] == 0)
    expert = by_hand_gaussian(0.0, 0.5)
    for metric, curves in row["metrics"].items():
        assert curves["poe"][0] == pytest.approx(expert[metric], rel=1e-9)  # one good expert: PoE too
        for method in ("moe", "holder", "hellinger", "wb"):  # identical experts: the expert, at every k
            assert curves[method] == pytest.approx([expert[metric]] * len(fig7["n_good"]), rel=1e-9)


def test_poe_and_wb_of_the_study_match_the_product_and_barycenter_by_hand(fig7):
    """PoE: precisions add, k/0.5 + b/0.2 per dimension; WB: means and standard deviations average."""
    for row in fig7["rows"]:
        b = row["n_bad"]
        for i, k in enumerate(fig7["n_good"]):
            prec = k / 0.5 + b / 0.2
            poe = by_hand_gaussian((b * 4.0 / 0.2) / prec, 1.0 / prec)
            sd = (k * math.sqrt(0.5) + b * math.sqrt(0.2)) / (k + b)
            wb = by_hand_gaussian(4.0 * b / (k + b), sd**2)
            for metric in syn.METRICS:
                assert row["metrics"][metric]["poe"][i] == pytest.approx(poe[metric], rel=1e-9)
                assert row["metrics"][metric]["wb"][i] == pytest.approx(wb[metric], rel=1e-9)


def test_fig2_poe_of_k_good_experts_and_two_bad_by_hand():
    data = syn.hel_fig2()
    for i, k in enumerate(data["n_good"]):
        var = 1.0 / (k / 0.5 + 2 / 0.2)  # 0.5/k for the good experts alone, then the bad ones
        assert data["metrics"]["sharpness"]["poe"][i] == pytest.approx(2 * var, rel=1e-12)
    assert data["extremes"]["poe"]["nll"]["max"] == pytest.approx(max(data["metrics"]["nll"]["poe"]))
    assert data["extremes"]["poe"]["nll"]["min"] == pytest.approx(min(data["metrics"]["nll"]["poe"]))


def test_fig2_is_the_two_bad_experts_row_of_fig7(fig7):
    fig2 = syn.hel_fig2()
    row = next(r for r in fig7["rows"] if r["n_bad"] == 2)
    for metric in syn.METRICS:
        for method in fig2["methods"]:
            assert fig2["metrics"][metric][method] == row["metrics"][metric][method]


def test_poe_with_zero_bad_has_variance_half_over_k(fig7):
    row = next(r for r in fig7["rows"] if r["n_bad"] == 0)
    assert row["metrics"]["sharpness"]["poe"] == pytest.approx([2 * 0.5 / k for k in fig7["n_good"]], rel=1e-12)


# --------------------------------------------------------------------------------------------------
# hel-fig1, holder-alpha, wb-fig2
# --------------------------------------------------------------------------------------------------


def test_fig1_poe_mean_and_holder_weights_by_hand():
    data = syn.hel_fig1()
    means, variances = [(0.0, 0.0), (1.0, 0.2), (4.0, 0.0)], [0.5, 0.6, 0.2]
    prec = [1 / v for v in variances]
    poe_mean = [sum(p * m[d] for p, m in zip(prec, means, strict=True)) / sum(prec) for d in (0, 1)]
    assert data["exact"]["poe"]["mean"] == pytest.approx(poe_mean, rel=1e-12)
    assert data["exact"]["poe"]["cov_trace"] == pytest.approx(2 / sum(prec), rel=1e-12)

    def bc(i, j):  # HEL eq. 11 for isotropic 2-D experts
        vi, vj = variances[i], variances[j]
        d2 = sum((a - b) ** 2 for a, b in zip(means[i], means[j], strict=True))
        return (2 * math.sqrt(vi * vj) / (vi + vj)) * math.exp(-d2 / (4 * (vi + vj)))

    raw = [1 / 9] * 3 + [2 / 9 * bc(i, j) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert data["holder_components"]["weights"] == pytest.approx([w / sum(raw) for w in raw], rel=1e-12)
    for name in data["methods"]:  # the grid holds the mass, and its moments are the exact ones
        g = data["on_grid"][name]
        assert g["grid_mass"] == pytest.approx(1.0, abs=1e-7)
        assert g["cov_trace"] == pytest.approx(data["exact"][name]["cov_trace"], rel=1e-6)


def test_holder_alpha_trace_matches_an_independent_grid():
    """alpha = 0.25: the pool written out in numpy on a different, coarser grid."""
    data = syn.holder_alpha()
    means, variances = [(0.0, 0.0), (1.0, 0.2), (4.0, 0.0)], [0.5, 0.6, 0.2]
    x, y = np.arange(-5.0, 8.0001, 0.02), np.arange(-5.0, 5.0001, 0.02)
    X, Y = np.meshgrid(x, y)
    q = [npdf(X, Y, m, v) for m, v in zip(means, variances, strict=True)]
    f = (sum(qj**0.25 for qj in q) / 3) ** 4
    f = f / f.sum()
    mx, my = (f * X).sum(), (f * Y).sum()
    trace = (f * ((X - mx) ** 2 + (Y - my) ** 2)).sum()
    assert data["on_grid"]["0.25"]["cov_trace"] == pytest.approx(trace, rel=1e-6)
    assert data["on_grid"]["0.5"]["cov_trace"] == pytest.approx(data["hellinger"]["cov_trace"], rel=1e-6)
    assert max(data["max_abs_error_vs_closed_form"].values()) < 1e-6
    assert data["sweep"]["cov_trace"][0] == pytest.approx(data["on_grid"]["0.0"]["cov_trace"])


def test_wb_fig2_by_hand():
    data = syn.wb_fig2()
    (m1, m2), (s1, s2) = data["config"]["means"], data["config"]["stds"]
    prec = 1 / s1**2 + 1 / s2**2
    assert data["params"]["poe"]["mean"] == pytest.approx((m1 / s1**2 + m2 / s2**2) / prec, rel=1e-12)
    assert data["params"]["poe"]["std"] == pytest.approx(math.sqrt(1 / prec), rel=1e-12)
    assert data["params"]["wb"] == pytest.approx({"mean": (m1 + m2) / 2, "std": (s1 + s2) / 2}, rel=1e-12)
    x = np.array(data["x"])
    moe = 0.5 * stats.norm.pdf(x, m1, s1) + 0.5 * stats.norm.pdf(x, m2, s2)
    assert data["density"]["moe"] == pytest.approx(moe.tolist(), rel=1e-10, abs=1e-300)
    assert data["moments"]["moe"]["var"] == pytest.approx(0.5 * (s1**2 + s2**2) + ((m1 - m2) / 2) ** 2)


# --------------------------------------------------------------------------------------------------
# Determinism and configs
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compute", [syn.hel_fig2, syn.wb_fig2, syn.hel_fig1])
def test_compute_functions_are_deterministic(compute):
    assert compute() == compute()


def test_config_round_trips_through_json_form():
    import json

    for cls in (syn.Fig1Config, syn.HolderAlphaConfig, syn.ExpertStudy, syn.WbFig2Config):
        cfg = cls()
        from dataclasses import asdict

        assert syn.from_dict(cls, json.loads(json.dumps(asdict(cfg)))) == cfg
