"""Numerical tests of the pooling rules in poolvae.aggregators against independent computations.

Every expected value is computed here, independently of the function under test: quadrature of the
pooled density on fine grids (numpy, float64), closed forms of the papers written out in numpy
(HEL eqs. 6-20 and Step 6, WB eqs. 1, 6, 7), explicit matrix inverses (CoDE), scipy.linalg.sqrtm (WB
fixed point), finite differences (gradients). Experts are stacked on dim 0: mu, logvar of shape
(M, B, D), mask (M, B) True where observed.
"""

import itertools
import math
from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg
from scipy.special import logsumexp

from poolvae import aggregators as A
from poolvae.distributions import DiagGaussian, GaussianMixture

torch.set_num_threads(1)

# --------------------------------------------------------------------------------------------------
# Independent reference computations (numpy, float64). Single-row helpers take the n observed experts
# of one row: mu, lv of shape (n, D), weights lam of shape (n,) summing to one.
# --------------------------------------------------------------------------------------------------


def np_log_normal(z, mu, var):
    """log N(z; mu, var), elementwise."""
    return -0.5 * (np.log(2 * np.pi * var) + (z - mu) ** 2 / var)


def random_2d_experts_on_grid(M, rng, n):
    """M random diagonal 2-D experts and weights, with their log densities on an n x n product grid
    wide enough (12 standard deviations) to hold the whole pool: (m, s, lam, (z1, z2), cell, log_q (M, n*n))."""
    m = rng.uniform(-2, 2, (M, 2))
    s = np.exp(rng.uniform(-1.0, 0.5, (M, 2)))
    lam = rng.dirichlet(np.ones(M))
    axes = [np.linspace((m[:, d] - 12 * s[:, d]).min(), (m[:, d] + 12 * s[:, d]).max(), n) for d in range(2)]
    z1, z2 = np.meshgrid(*axes, indexing="ij")
    cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    log_q = np.stack([np_log_normal(z1, m[j, 0], s[j, 0] ** 2) + np_log_normal(z2, m[j, 1], s[j, 1] ** 2)
                      for j in range(M)]).reshape(M, -1)
    return m, s, lam, (z1, z2), cell, log_q



def np_poe(mu, lv, w=None, prior=False):
    """Product of experts: precisions add (with exponents w), mean is precision-weighted."""
    prec = np.exp(-lv) * (1.0 if w is None else np.asarray(w)[:, None])
    total = prec.sum(0) + (1.0 if prior else 0.0)  # the prior N(0, 1) adds precision 1, mean 0
    return (prec * mu).sum(0) / total, -np.log(total)


def np_wb(mu, lv, lam):
    """WB eq. 7: means and standard deviations average with the weights."""
    return (lam[:, None] * mu).sum(0), 2 * np.log((lam[:, None] * np.exp(0.5 * lv)).sum(0))


def np_hellinger(mu, lv, lam):
    """HEL eqs. 11, 14, 16, 18, 20 with the overlaps S_ij in log space (any D) and the variance in the
    central form sum_k w_k (v_k + (m_k - mean)^2), which equals eq. 20 without its cancellation."""
    v = np.exp(lv)
    logw, means, variances = [], [], []
    for j in range(len(lam)):
        logw.append(2 * np.log(lam[j]))
        means.append(mu[j])
        variances.append(v[j])
    for i, j in itertools.combinations(range(len(lam)), 2):
        vs = v[i] + v[j]
        log_s = np.sum(
            0.5 * np.log(2 * np.sqrt(v[i] * v[j]) / vs) - (mu[i] - mu[j]) ** 2 / (4 * vs)
        )  # eq. 11
        logw.append(np.log(2 * lam[i] * lam[j]) + log_s)
        means.append((mu[i] * v[j] + mu[j] * v[i]) / vs)  # eq. 14
        variances.append(2 * v[i] * v[j] / vs)  # eq. 18
    w = np.exp(np.array(logw) - logsumexp(logw))[:, None]
    means, variances = np.array(means), np.array(variances)
    mean = (w * means).sum(0)
    return mean, np.log((w * (variances + (means - mean) ** 2)).sum(0))


def np_code(mu, lv, rho):
    """CoDE per dimension with an explicit inverse: Sigma = (s s^T) * R, R = rho off the diagonal,
    weights Sigma^-1 1 / (1^T Sigma^-1 1), variance 1 / (1^T Sigma^-1 1). rho: scalar or (D,)."""
    n, D = mu.shape
    rho = np.broadcast_to(np.asarray(rho, dtype=float), (D,))
    mean, logvar = np.empty(D), np.empty(D)
    for d in range(D):
        s = np.exp(0.5 * lv[:, d])
        R = np.full((n, n), rho[d])
        np.fill_diagonal(R, 1.0)
        sigma_inv = np.linalg.inv(np.outer(s, s) * R)
        total = np.ones(n) @ sigma_inv @ np.ones(n)
        mean[d] = (sigma_inv @ np.ones(n) / total) @ mu[:, d]
        logvar[d] = -np.log(total)
    return mean, logvar


def hellinger_log_density(log_q, lam):
    """Unnormalised log of (sum_j lam_j sqrt(q_j))^2 from the experts' log densities log_q (n, N)."""
    return 2 * logsumexp(np.log(lam)[:, None] + 0.5 * log_q, axis=0)


def random_experts(M, B, D, seed, lv=(-1.5, 1.0), mu_scale=1.5, dtype=torch.float64):
    """Random experts (mu, logvar) of shape (M, B, D)."""
    g = torch.Generator().manual_seed(seed)
    mu = mu_scale * torch.randn(M, B, D, generator=g, dtype=torch.float64)
    logvar = torch.empty(M, B, D, dtype=torch.float64).uniform_(*lv, generator=g)
    return mu.to(dtype), logvar.to(dtype)


def random_weights(shape, seed):
    """Random positive weights (Dirichlet-like, not normalised: the rules renormalise)."""
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.empty(shape, dtype=torch.float64).uniform_(0.1, 2.0, generator=g)


def present(mix, b):
    """The components of row b with non-zero weight, as arrays sorted by mean: (w, mu, logvar)."""
    lw = mix.log_weights[:, b].detach().double().numpy()
    keep = np.isfinite(lw)
    mu = mix.mu[keep, b].detach().double().numpy()
    lv = mix.logvar[keep, b].detach().double().numpy()
    w = np.exp(lw[keep])
    order = np.lexsort((w, lv[:, 0], mu[:, 0]))  # by mean first: equal weights are common
    return w[order], mu[order], lv[order]


def assert_same_law(a, b, rows_a, rows_b=None, tol=1e-9):
    """Rows ``rows_a`` of pooled posterior ``a`` equal rows ``rows_b`` of ``b``: same parameters for
    Gaussians; for mixtures the same present components (weight, mean, log-variance) as a multiset."""
    rows_b = rows_a if rows_b is None else rows_b
    assert type(a) is type(b)
    if isinstance(a, DiagGaussian):
        np.testing.assert_allclose(
            a.mu[rows_a].detach().numpy(), b.mu[rows_b].detach().numpy(), atol=tol, rtol=tol
        )
        np.testing.assert_allclose(
            a.logvar[rows_a].detach().numpy(), b.logvar[rows_b].detach().numpy(), atol=tol, rtol=tol
        )
        return
    for ra, rb in zip(rows_a, rows_b, strict=True):
        wa, ma, la = present(a, ra)
        wb_, mb, lb = present(b, rb)
        assert len(wa) == len(wb_)
        np.testing.assert_allclose(wa, wb_, atol=tol, rtol=tol)
        np.testing.assert_allclose(ma, mb, atol=tol, rtol=tol)
        np.testing.assert_allclose(la, lb, atol=tol, rtol=tol)


def total(out):
    """The sum of the outputs, for autograd: mu and logvar (of the present components) and the
    mixture weights. (Weights, not log weights: the log weight of a pair of far-apart sharp experts
    has a true derivative of order |mu_i - mu_j| / var ~ 1e13, beyond float16 at a float16 leaf.)"""
    if isinstance(out, DiagGaussian):
        return out.mu.sum() + out.logvar.sum()
    ok = torch.isfinite(out.log_weights)
    comps = torch.where(ok.unsqueeze(-1), out.mu + out.logvar, torch.zeros_like(out.mu)).sum()
    return comps + out.weights.sum()


def assert_valid(out, B, D):
    """Finite outputs, positive variances, float32/float64, mixture weights summing to one."""
    assert out.mu.dtype in (torch.float32, torch.float64)
    if isinstance(out, DiagGaussian):
        assert out.mu.shape == (B, D) and out.logvar.shape == (B, D)
        assert bool(torch.isfinite(out.mu).all()) and bool(torch.isfinite(out.logvar).all())
        assert bool((out.logvar.double().exp() > 0).all())
        return
    assert out.mu.shape[1:] == (B, D) and out.log_weights.shape == (out.mu.shape[0], B)
    assert bool(torch.isfinite(out.mu).all()) and bool(torch.isfinite(out.logvar).all())
    assert bool((out.logvar.double().exp() > 0).all())
    assert not bool(torch.isnan(out.log_weights).any())
    np.testing.assert_allclose(out.log_weights.detach().double().exp().sum(0).numpy(), 1.0, rtol=1e-5)


# Rules under test: name -> (function, accepts weights, gives a mixture, name in its error messages).
RULES = {
    "poe": (A.poe, True, False, "poe"),
    "poe_prior": (partial(A.poe, prior_expert=True), True, False, "poe"),
    "hellinger": (A.hellinger, True, False, "holder_half_mixture|hellinger"),
    "wb": (A.wb, True, False, "wb"),
    "code": (A.code, False, False, "code"),
    "moe": (A.moe, True, True, "moe"),
    "holder_half": (A.holder_half_mixture, True, True, "holder_half_mixture"),
    "mopoe": (A.mopoe, False, True, "mopoe"),
    "mopoe_prior": (partial(A.mopoe, prior_expert=True), False, True, "mopoe"),
    "mwb": (A.mwb, False, True, "mwb"),
    "mohel": (A.mohel, False, True, "mohel"),
    "mocode": (A.mocode, False, True, "mocode"),
}
GAUSSIAN_RULES = ["poe", "hellinger", "wb", "code"]  # the M = 16 rules
# rules that pool one expert into itself (the prior-expert variants multiply the prior in)
IDENTITY_RULES = [r for r in RULES if not r.endswith("_prior")]

MASKS = {
    "all": [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
    "one_missing": [[0, 1, 1, 1, 1], [1, 0, 1, 1, 1], [1, 1, 0, 1, 1], [1, 1, 1, 1, 0]],
    "single": [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 0, 1]],
    "mixed": [[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]],
}  # (M=4, B=5); no empty row (those are tested on their own)


def mask_of(name):
    return torch.tensor(MASKS[name], dtype=torch.bool)


def call(rule, mu, logvar, mask=None, weights=None):
    fn, takes_weights, _, _ = RULES[rule]
    return fn(mu, logvar, mask, weights) if takes_weights else fn(mu, logvar, mask)


# --------------------------------------------------------------------------------------------------
# 1. Hellinger aggregation: moments of the normalised Hölder-1/2 density by quadrature
# --------------------------------------------------------------------------------------------------


@pytest.fixture(params=["gathered", "blocks"])
def pair_path(request, monkeypatch):
    """Run a Hellinger test through both ways of computing the pairs: one gathered block, or M - 1 blocks."""
    monkeypatch.setattr(A, "BLOCK_PAIRS_FROM", 2**62 if request.param == "gathered" else 0)
    return request.param


@pytest.mark.parametrize("M, seed", [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)])
def test_hellinger_moments_match_quadrature_1d(M, seed, pair_path):
    rng = np.random.default_rng(seed)
    m = rng.uniform(-2, 2, M)
    s = np.exp(rng.uniform(-1.0, 0.7, M))
    lam = rng.dirichlet(np.ones(M))
    z = np.linspace((m - 14 * s).min(), (m + 14 * s).max(), 40001)
    h = z[1] - z[0]
    log_q = np_log_normal(z[None], m[:, None], s[:, None] ** 2)
    p = np.exp(hellinger_log_density(log_q, lam))
    p /= p.sum() * h
    mean = (z * p).sum() * h
    var = ((z - mean) ** 2 * p).sum() * h

    mu = torch.tensor(m).reshape(M, 1, 1)
    lv = torch.tensor(2 * np.log(s)).reshape(M, 1, 1)
    out = A.hellinger(mu, lv, weights=torch.tensor(lam))
    assert out.mu.dtype == torch.float64
    assert abs(out.mu.item() - mean) < 1e-6
    assert abs(out.var.item() - var) < 1e-6 * max(1.0, var)


@pytest.mark.parametrize("M, seed", [(2, 10), (3, 11), (4, 12)])
def test_hellinger_moments_match_quadrature_2d(M, seed, pair_path):
    # diagonal experts on a product grid; the pooled density does not factorise over dimensions
    m, s, lam, (z1, z2), cell, log_q = random_2d_experts_on_grid(M, np.random.default_rng(seed), 801)
    p = np.exp(hellinger_log_density(log_q, lam))
    p /= p.sum() * cell
    out = A.hellinger(
        torch.tensor(m).reshape(M, 1, 2),
        torch.tensor(2 * np.log(s)).reshape(M, 1, 2),
        weights=torch.tensor(lam),
    )
    for d, zd in enumerate((z1.ravel(), z2.ravel())):
        mean = (zd * p).sum() * cell
        var = ((zd - mean) ** 2 * p).sum() * cell
        assert abs(out.mu[0, d].item() - mean) < 1e-6
        assert abs(out.var[0, d].item() - var) < 1e-6 * max(1.0, var)


@pytest.mark.parametrize("M, D, seed", [(2, 1, 0), (3, 3, 1), (4, 2, 2), (5, 4, 3)])
def test_hellinger_uniform_weights_is_paper_step6(M, D, seed, pair_path):
    # HEL Appendix A.1 Step 6, term by term: c = M + 2 sum_{i<j} S_ij
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 1, (M, D))
    var = np.exp(rng.uniform(-1, 1, (M, D)))
    sd = np.sqrt(var)
    c = float(M)
    num_mu = mu.sum(0)
    num_sq = (mu**2 + var).sum(0)
    for i in range(M):
        for j in range(i + 1, M):
            S = np.prod(
                np.sqrt(2 * sd[i] * sd[j] / (var[i] + var[j]))
                * np.exp(-0.25 * (mu[i] - mu[j]) ** 2 / (var[i] + var[j]))
            )  # eq. 11
            mu_ij = (mu[i] * var[j] + mu[j] * var[i]) / (var[i] + var[j])  # eq. 14
            var_ij = 2 * var[i] * var[j] / (var[i] + var[j])  # eq. 18
            c += 2 * S
            num_mu += 2 * mu_ij * S
            num_sq += 2 * (mu_ij**2 + var_ij) * S
    mean = num_mu / c
    variance = num_sq / c - mean**2
    out = A.hellinger(torch.tensor(mu).unsqueeze(1), torch.tensor(np.log(var)).unsqueeze(1))
    np.testing.assert_allclose(out.mu[0].numpy(), mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.var[0].numpy(), variance, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hellinger_weighted_matches_eqs_16_20(seed, pair_path):
    M, B, D = 4, 3, 5
    mu, lv = random_experts(M, B, D, seed)
    w = random_weights((M, B), seed)
    out = A.hellinger(mu, lv, weights=w)
    for b in range(B):
        lam = (w[:, b] / w[:, b].sum()).numpy()
        m_ref, lv_ref = np_hellinger(mu[:, b].numpy(), lv[:, b].numpy(), lam)
        np.testing.assert_allclose(out.mu[b].numpy(), m_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out.logvar[b].numpy(), lv_ref, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# 2. The exact Hölder-1/2 mixture equals the normalised density pointwise
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("M, seed", [(1, 0), (2, 1), (3, 2), (5, 3)])
def test_holder_half_mixture_pointwise_1d(M, seed):
    rng = np.random.default_rng(20 + seed)
    m = rng.uniform(-3, 3, M)
    s = np.exp(rng.uniform(-1.0, 0.7, M))
    lam = rng.dirichlet(np.ones(M))
    z = np.linspace((m - 14 * s).min(), (m + 14 * s).max(), 40001)
    log_q = np_log_normal(z[None], m[:, None], s[:, None] ** 2)
    log_p = hellinger_log_density(log_q, lam)
    log_p -= logsumexp(log_p) + np.log(z[1] - z[0])
    mix = A.holder_half_mixture(
        torch.tensor(m).reshape(M, 1, 1),
        torch.tensor(2 * np.log(s)).reshape(M, 1, 1),
        weights=torch.tensor(lam),
    )
    assert mix.mu.shape[0] == M + M * (M - 1) // 2
    got = mix.log_prob(torch.tensor(z).reshape(-1, 1, 1))[:, 0].numpy()
    np.testing.assert_allclose(got, log_p, atol=1e-8, rtol=0)


@pytest.mark.parametrize("M, seed", [(2, 0), (3, 1), (4, 2)])
def test_holder_half_mixture_pointwise_2d(M, seed):
    m, s, lam, (z1, z2), cell, log_q = random_2d_experts_on_grid(M, np.random.default_rng(30 + seed), 601)
    log_p = hellinger_log_density(log_q, lam)
    log_p -= logsumexp(log_p) + np.log(cell)
    mix = A.holder_half_mixture(
        torch.tensor(m).reshape(M, 1, 2),
        torch.tensor(2 * np.log(s)).reshape(M, 1, 2),
        weights=torch.tensor(lam),
    )
    zz = torch.tensor(np.stack([z1.ravel(), z2.ravel()], -1)).unsqueeze(1)  # (N, 1, 2)
    np.testing.assert_allclose(mix.log_prob(zz)[:, 0].numpy(), log_p, atol=1e-8, rtol=0)


def test_hellinger_is_moment_match_of_holder_half_mixture_by_quadrature():
    # the mixture's own first two moments, by quadrature of its log_prob, give hellinger()
    M = 3
    mu, lv = random_experts(M, 1, 1, seed=5)
    w = random_weights((M,), 5)
    mix = A.holder_half_mixture(mu, lv, weights=w)
    z = torch.linspace(-25, 25, 50001, dtype=torch.float64)
    p = mix.log_prob(z.reshape(-1, 1, 1))[:, 0].exp().numpy()
    h = (z[1] - z[0]).item()
    assert abs(p.sum() * h - 1.0) < 1e-9
    mean = (z.numpy() * p).sum() * h
    var = ((z.numpy() - mean) ** 2 * p).sum() * h
    out = A.hellinger(mu, lv, weights=w)
    assert abs(out.mu.item() - mean) < 1e-8 and abs(out.var.item() - var) < 1e-8


# --------------------------------------------------------------------------------------------------
# 3. Hölder pooling on grids: alpha -> 0 (geometric), alpha = 1 (linear), alpha = 1/2
# --------------------------------------------------------------------------------------------------


def _grid_experts(M=3, seed=0, n=20001):
    rng = np.random.default_rng(40 + seed)
    m = rng.uniform(-2, 2, M)
    s = np.exp(rng.uniform(-0.7, 0.5, M))
    lam = rng.dirichlet(np.ones(M))
    z = np.linspace(-20, 20, n)
    log_q = np_log_normal(z[None], m[:, None], s[:, None] ** 2)
    return z, z[1] - z[0], m, s, lam, log_q


def _geometric_pool(z, m, s, lam):
    """prod_j q_j^lam_j normalised: a Gaussian with precision sum lam_j / s_j^2 (closed form)."""
    prec = (lam / s**2).sum()
    mean = (lam * m / s**2).sum() / prec
    return np_log_normal(z, mean, 1 / prec)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holder_alpha_zero_is_geometric_pool(seed):
    z, h, m, s, lam, log_q = _grid_experts(seed=seed)
    got = A.holder_pool_on_grid(torch.tensor(log_q), 0.0, h, torch.tensor(lam)).numpy()
    want = _geometric_pool(z, m, s, lam)
    central = want > want.max() - 30
    np.testing.assert_allclose(got[central], want[central], atol=1e-9)
    # the unnormalised log pool at alpha = 0 is sum_j lam_j log q_j, exactly
    raw = A.holder_log_density(torch.tensor(log_q), 0.0, torch.tensor(lam)).numpy()
    np.testing.assert_allclose(raw, (lam[:, None] * log_q).sum(0), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holder_small_alpha_tends_to_geometric_pool(seed):
    z, h, m, s, lam, log_q = _grid_experts(seed=seed)
    p0 = np.exp(_geometric_pool(z, m, s, lam))

    def err(alpha):
        p = np.exp(A.holder_pool_on_grid(torch.tensor(log_q), alpha, h, torch.tensor(lam)).numpy())
        return np.abs(p - p0).max() / p0.max()

    e3, e4 = err(1e-3), err(1e-4)
    assert e4 < 1e-3
    assert e4 < e3 / 5  # first-order convergence in alpha


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holder_alpha_one_is_linear_pool(seed):
    z, h, m, s, lam, log_q = _grid_experts(seed=seed)
    linear = np.log((lam[:, None] * np.exp(log_q)).sum(0))
    raw = A.holder_log_density(torch.tensor(log_q), 1.0, torch.tensor(lam)).numpy()
    np.testing.assert_allclose(raw, linear, rtol=1e-12, atol=1e-12)
    got = A.holder_pool_on_grid(torch.tensor(log_q), 1.0, h, torch.tensor(lam)).numpy()
    central = linear > linear.max() - 30
    np.testing.assert_allclose(got[central], linear[central], atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_holder_alpha_half_on_grid_is_hellinger_density(seed):
    z, h, m, s, lam, log_q = _grid_experts(seed=seed)
    want = hellinger_log_density(log_q, lam)
    want -= logsumexp(want) + np.log(h)
    got = A.holder_pool_on_grid(torch.tensor(log_q), 0.5, h, torch.tensor(lam)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_holder_pool_non_gaussian_and_default_weights():
    # Laplace experts, uniform weights by default; unnormalised weights are renormalised
    z = np.linspace(-30, 30, 30001)
    locs, scales = np.array([-1.0, 0.5, 2.0]), np.array([0.7, 1.2, 0.5])
    log_q = -np.abs(z[None] - locs[:, None]) / scales[:, None] - np.log(2 * scales[:, None])
    for alpha in (0.3, 0.5, 2.0):
        want = np.log((np.exp(alpha * log_q) / 3).sum(0)) / alpha
        got = A.holder_log_density(torch.tensor(log_q), alpha).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        got_w = A.holder_log_density(torch.tensor(log_q), alpha, torch.tensor([5.0, 5.0, 5.0])).numpy()
        np.testing.assert_allclose(got_w, want, rtol=1e-12, atol=1e-12)


def test_holder_pool_on_grid_2d():
    # 2-D grid flattened to N points with the cell area as volume
    rng = np.random.default_rng(7)
    M = 3
    m = rng.uniform(-1, 1, (M, 2))
    s = np.exp(rng.uniform(-0.5, 0.3, (M, 2)))
    lam = rng.dirichlet(np.ones(M))
    ax = np.linspace(-12, 12, 481)
    z1, z2 = np.meshgrid(ax, ax, indexing="ij")
    cell = (ax[1] - ax[0]) ** 2
    log_q = np.stack(
        [
            np_log_normal(z1, m[j, 0], s[j, 0] ** 2) + np_log_normal(z2, m[j, 1], s[j, 1] ** 2)
            for j in range(M)
        ]
    ).reshape(M, -1)
    want = hellinger_log_density(log_q, lam)
    want -= logsumexp(want) + np.log(cell)
    got = A.holder_pool_on_grid(torch.tensor(log_q), 0.5, cell, torch.tensor(lam)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-9)
    mix = A.holder_half_mixture(
        torch.tensor(m).reshape(M, 1, 2),
        torch.tensor(2 * np.log(s)).reshape(M, 1, 2),
        weights=torch.tensor(lam),
    )
    zz = torch.tensor(np.stack([z1.ravel(), z2.ravel()], -1)).unsqueeze(1)
    np.testing.assert_allclose(mix.log_prob(zz)[:, 0].numpy(), want, atol=1e-8)


# --------------------------------------------------------------------------------------------------
# 4. Wasserstein barycenters
# --------------------------------------------------------------------------------------------------


def random_spd(D, rng):
    a = rng.standard_normal((D, D))
    return a @ a.T + 0.3 * np.eye(D)


def sqrtm(a):
    """Principal square root by scipy (real part; the input is symmetric PSD)."""
    return np.real(linalg.sqrtm(a))


def w2_sq_cov(c1, c2):
    """Covariance part of WB eq. 1, with scipy's sqrtm."""
    r1 = sqrtm(c1)
    return float(np.trace(c1 + c2 - 2 * sqrtm(r1 @ c2 @ r1)))


@pytest.mark.parametrize("D, M, seed", [(2, 2, 0), (3, 3, 1), (4, 4, 2), (5, 2, 3), (5, 4, 4), (2, 4, 5)])
def test_bures_wasserstein_fixed_point(D, M, seed):
    rng = np.random.default_rng(50 + seed)
    covs = np.stack([random_spd(D, rng) for _ in range(M)])
    mus = rng.normal(size=(M, D))
    lam = rng.dirichlet(np.ones(M))
    mean, S = A.bures_wasserstein_barycenter(torch.tensor(mus), torch.tensor(covs), torch.tensor(lam))
    S = S.numpy()
    np.testing.assert_allclose(mean.numpy(), (lam[:, None] * mus).sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S, S.T, atol=1e-12)
    assert np.linalg.eigvalsh(S).min() > 0
    root = sqrtm(S)
    rhs = sum(lam[m] * sqrtm(root @ covs[m] @ root) for m in range(M))  # WB eq. 6
    np.testing.assert_allclose(S, rhs, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("D, M, seed", [(2, 3, 0), (3, 2, 1), (4, 4, 2)])
def test_bures_wasserstein_barycenter_minimises_weighted_w2(D, M, seed):
    rng = np.random.default_rng(60 + seed)
    covs = np.stack([random_spd(D, rng) for _ in range(M)])
    lam = rng.dirichlet(np.ones(M))
    _, S = A.bures_wasserstein_barycenter(
        torch.zeros(M, D, dtype=torch.float64), torch.tensor(covs), torch.tensor(lam)
    )
    S = S.numpy()

    def objective(X):
        return sum(lam[m] * w2_sq_cov(covs[m], X) for m in range(M))

    f0 = objective(S)
    assert f0 <= objective((lam[:, None, None] * covs).sum(0)) + 1e-12
    for _ in range(20):
        E = rng.standard_normal((D, D))
        X = S + 0.05 * np.linalg.norm(S) * (E + E.T) / np.linalg.norm(E + E.T)
        if np.linalg.eigvalsh(X).min() <= 0:
            continue
        assert objective(X) > f0


def test_bures_wasserstein_diagonal_reduces_to_wb_closed_form():
    rng = np.random.default_rng(70)
    M, B, D = 3, 2, 4
    mus = rng.normal(size=(M, B, D))
    sd = np.exp(rng.uniform(-1, 1, (M, B, D)))
    lam = rng.dirichlet(np.ones(M))
    covs = np.zeros((M, B, D, D))
    for m in range(M):
        for b in range(B):
            covs[m, b] = np.diag(sd[m, b] ** 2)
    mean, S = A.bures_wasserstein_barycenter(torch.tensor(mus), torch.tensor(covs), torch.tensor(lam))
    want_sd = (lam[:, None, None] * sd).sum(0)  # WB eq. 7: standard deviations average
    for b in range(B):
        np.testing.assert_allclose(S[b].numpy(), np.diag(want_sd[b] ** 2), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(mean.numpy(), (lam[:, None, None] * mus).sum(0), rtol=1e-12)
    out = A.wb(torch.tensor(mus), torch.tensor(2 * np.log(sd)), weights=torch.tensor(lam))
    np.testing.assert_allclose(out.std.numpy(), want_sd, rtol=1e-12)
    np.testing.assert_allclose(out.mu.numpy(), (lam[:, None, None] * mus).sum(0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_bures_wasserstein_two_experts_geodesic(t):
    # D = 1: sqrt(S) = (1 - t) s1 + t s2
    s1, s2 = 0.7, 2.3
    _, S = A.bures_wasserstein_barycenter(
        torch.zeros(2, 1, dtype=torch.float64),
        torch.tensor([[[s1**2]], [[s2**2]]], dtype=torch.float64),
        torch.tensor([1 - t, t], dtype=torch.float64),
    )
    assert abs(S.item() - ((1 - t) * s1 + t * s2) ** 2) < 1e-10
    # D = 3: McCann's interpolant ((1-t) I + t T) C1 ((1-t) I + t T), T the optimal map C1 -> C2
    rng = np.random.default_rng(80)
    c1, c2 = random_spd(3, rng), random_spd(3, rng)
    r1 = sqrtm(c1)
    r1_inv = np.linalg.inv(r1)
    T = r1_inv @ sqrtm(r1 @ c2 @ r1) @ r1_inv
    G = (1 - t) * np.eye(3) + t * T
    _, S = A.bures_wasserstein_barycenter(
        torch.zeros(2, 3, dtype=torch.float64),
        torch.tensor(np.stack([c1, c2])),
        torch.tensor([1 - t, t], dtype=torch.float64),
    )
    np.testing.assert_allclose(S.numpy(), G @ c1 @ G, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_wb_closed_form_with_mask_and_weights(seed):
    M, B, D = 4, 5, 3
    mu, lv = random_experts(M, B, D, seed, lv=(-4, 4))
    w = random_weights((M,), seed)
    mask = mask_of("mixed")
    out = A.wb(mu, lv, mask, w)
    for b in range(B):
        obs = mask[:, b].numpy()
        lam = w.numpy()[obs] / w.numpy()[obs].sum()
        m_ref, lv_ref = np_wb(mu[obs, b].numpy(), lv[obs, b].numpy(), lam)
        np.testing.assert_allclose(out.mu[b].numpy(), m_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out.logvar[b].numpy(), lv_ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# 5. PoE and MoE
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("prior", [False, True])
def test_poe_closed_form(mask_name, prior):
    M, B, D = 4, 5, 3
    mu, lv = random_experts(M, B, D, seed=3, lv=(-3, 3))
    mask = mask_of(mask_name)
    out = A.poe(mu, lv, mask, prior_expert=prior)
    for b in range(B):
        obs = mask[:, b].numpy()
        m_ref, lv_ref = np_poe(mu[obs, b].numpy(), lv[obs, b].numpy(), prior=prior)
        np.testing.assert_allclose(out.mu[b].numpy(), m_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out.logvar[b].numpy(), lv_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", ["M", "MB"])
def test_poe_weights_are_exponents(shape):
    M, B, D = 3, 4, 2
    mu, lv = random_experts(M, B, D, seed=4)
    w = random_weights((M,) if shape == "M" else (M, B), 4)
    out = A.poe(mu, lv, weights=w)
    wf = w if shape == "MB" else w.unsqueeze(-1).expand(M, B)
    for b in range(B):
        m_ref, lv_ref = np_poe(mu[:, b].numpy(), lv[:, b].numpy(), w=wf[:, b].numpy())
        np.testing.assert_allclose(out.mu[b].numpy(), m_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out.logvar[b].numpy(), lv_ref, rtol=1e-12, atol=1e-12)
    # exponents 1/M: same mean as the plain product, variance M times larger
    plain = A.poe(mu, lv)
    scaled = A.poe(mu, lv, weights=torch.full((M,), 1.0 / M, dtype=torch.float64))
    np.testing.assert_allclose(scaled.mu.numpy(), plain.mu.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        scaled.logvar.numpy(), plain.logvar.numpy() + math.log(M), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_poe_stable_at_extreme_logvar(dtype):
    M, B, D = 5, 4, 64
    mu, lv = random_experts(M, B, D, seed=5, lv=(-30, 30), mu_scale=3.0)
    lv[0, 0] = -30.0
    lv[1, 0] = 30.0  # a -30 next to a +30 in every dimension of row 0
    for prior in (False, True):
        out = A.poe(mu.to(dtype), lv.to(dtype), prior_expert=prior)
        assert out.mu.dtype == dtype
        for b in range(B):
            m_ref, lv_ref = np_poe(
                mu[:, b].to(dtype).double().numpy(), lv[:, b].to(dtype).double().numpy(), prior=prior
            )
            tol = 1e-12 if dtype == torch.float64 else 2e-5
            np.testing.assert_allclose(out.logvar[b].double().numpy(), lv_ref, rtol=tol, atol=tol * 30)
            np.testing.assert_allclose(out.mu[b].double().numpy(), m_ref, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("mask_name", ["all", "mixed", "single"])
@pytest.mark.parametrize("weighted", [False, True])
def test_moe_log_prob_is_direct_mixture(mask_name, weighted):
    M, B, D = 4, 5, 3
    mu, lv = random_experts(M, B, D, seed=6)
    mask = mask_of(mask_name)
    w = random_weights((M, B), 6) if weighted else None
    mix = A.moe(mu, lv, mask, w)
    z = 2 * torch.randn(7, B, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = mix.log_prob(z).numpy()
    for b in range(B):
        obs = np.flatnonzero(mask[:, b].numpy())
        lam = np.ones(len(obs)) if w is None else w[obs, b].numpy()
        lam = lam / lam.sum()
        dens = sum(
            lam[i] * np.exp(np_log_normal(z[:, b].numpy(), mu[j, b].numpy(), lv[j, b].exp().numpy()).sum(-1))
            for i, j in enumerate(obs)
        )
        np.testing.assert_allclose(got[:, b], np.log(dens), rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# 6. CoDE: explicit per-dimension minimum-variance combination
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.5, 0.9, -0.2, -0.3])
@pytest.mark.parametrize("mask_name", ["all", "mixed", "one_missing"])
def test_code_matches_explicit_inverse(rho, mask_name):
    M, B, D = 4, 5, 3  # rho must exceed -1/(M-1) = -1/3
    mu, lv = random_experts(M, B, D, seed=7, lv=(-2, 2))
    mask = mask_of(mask_name)
    out = A.code(mu, lv, mask, rho=rho)
    for b in range(B):
        obs = mask[:, b].numpy()
        m_ref, lv_ref = np_code(mu[obs, b].numpy(), lv[obs, b].numpy(), rho)
        np.testing.assert_allclose(out.mu[b].numpy(), m_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(out.logvar[b].numpy(), lv_ref, rtol=1e-9, atol=1e-10)


def test_code_rho_tensor_per_dimension():
    M, B, D = 3, 2, 4
    mu, lv = random_experts(M, B, D, seed=8)
    rho = torch.tensor([[0.0, 0.2, 0.6, -0.4], [0.9, -0.1, 0.3, 0.5]], dtype=torch.float64)  # (B, D)
    out = A.code(mu, lv, rho=rho)
    for b in range(B):
        m_ref, lv_ref = np_code(mu[:, b].numpy(), lv[:, b].numpy(), rho[b].numpy())
        np.testing.assert_allclose(out.mu[b].numpy(), m_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(out.logvar[b].numpy(), lv_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_code_rho_zero_is_poe_without_prior(mask_name):
    mu, lv = random_experts(4, 5, 3, seed=9, lv=(-4, 4))
    mask = mask_of(mask_name)
    out = A.code(mu, lv, mask, rho=0.0)
    for b in range(5):
        obs = mask[:, b].numpy()
        m_ref, lv_ref = np_poe(mu[obs, b].numpy(), lv[obs, b].numpy())
        np.testing.assert_allclose(out.mu[b].numpy(), m_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(out.logvar[b].numpy(), lv_ref, rtol=1e-10, atol=1e-12)
    poe = A.poe(mu, lv, mask)
    np.testing.assert_allclose(out.mu.numpy(), poe.mu.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.logvar.numpy(), poe.logvar.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "M, rho", [(3, 1.0), (3, 1.5), (3, -0.5), (3, -0.9), (4, -1.0 / 3.0), (2, -1.0), (1, 1.0)]
)
def test_code_invalid_rho_raises(M, rho):
    mu, lv = random_experts(M, 2, 2, seed=10)
    with pytest.raises(ValueError, match="code"):
        A.code(mu, lv, rho=rho)
    with pytest.raises(ValueError):
        A.mocode(mu, lv, rho=rho)
    with pytest.raises(ValueError, match="code"):
        A.code(mu, lv, rho=torch.tensor([0.2, rho], dtype=torch.float64))


# --------------------------------------------------------------------------------------------------
# 7. Mixtures over subsets
# --------------------------------------------------------------------------------------------------


def subset_table(M):
    """Non-empty subsets of range(M) by size, then lexicographically."""
    return [s for k in range(1, M + 1) for s in itertools.combinations(range(M), k)]


@pytest.mark.parametrize("M", [1, 2, 3, 4, 5])
def test_subsets_matrix(M):
    got = A.subsets(M)
    assert got.shape == (2**M - 1, M) and got.dtype == torch.bool
    want = np.zeros((2**M - 1, M), dtype=bool)
    for k, s in enumerate(subset_table(M)):
        want[k, list(s)] = True
    np.testing.assert_array_equal(got.numpy(), want)


SUBSET_REFS = {  # rule -> reference pool of the members of one subset
    "mopoe": lambda m, v: np_poe(m, v),
    "mopoe_prior": lambda m, v: np_poe(m, v, prior=True),
    "mwb": lambda m, v: np_wb(m, v, np.full(len(m), 1 / len(m))),
    "mohel": lambda m, v: np_hellinger(m, v, np.full(len(m), 1 / len(m))),
    "mocode": lambda m, v: np_code(m, v, 0.5),
}


@pytest.mark.parametrize("rule", list(SUBSET_REFS))
@pytest.mark.parametrize("mask_name", ["all", "mixed", "one_missing", "single"])
def test_mixture_over_subsets_components_and_weights(rule, mask_name):
    M, B, D = 4, 5, 2
    mu, lv = random_experts(M, B, D, seed=11)
    mask = mask_of(mask_name)
    mix = call(rule, mu, lv, mask)
    table = subset_table(M)
    assert mix.mu.shape == (2**M - 1, B, D)
    for b in range(B):
        n_obs = int(mask[:, b].sum())
        for k, s in enumerate(table):
            lw = mix.log_weights[k, b].item()
            if all(bool(mask[j, b]) for j in s):
                assert abs(lw - (-math.log(2**n_obs - 1))) < 1e-12
                m_ref, lv_ref = SUBSET_REFS[rule](mu[list(s), b].numpy(), lv[list(s), b].numpy())
                np.testing.assert_allclose(mix.mu[k, b].numpy(), m_ref, rtol=1e-9, atol=1e-10)
                np.testing.assert_allclose(mix.logvar[k, b].numpy(), lv_ref, rtol=1e-9, atol=1e-10)
            else:
                assert lw == -math.inf


@pytest.mark.parametrize("rule", ["mopoe", "mwb", "mohel", "mocode"])
@pytest.mark.parametrize("M", [1, 2, 3, 5, 6])
def test_mixture_over_subsets_counts(rule, M):
    mu, lv = random_experts(M, 2, 2, seed=12)
    mix = call(rule, mu, lv)
    assert mix.mu.shape[0] == 2**M - 1
    np.testing.assert_allclose(mix.weights.numpy(), 1.0 / (2**M - 1), rtol=1e-12)


def test_mixture_of_pools_members_subset_weights_and_pool_kwargs():
    M, B, D = 4, 5, 2
    mu, lv = random_experts(M, B, D, seed=13)
    mask = mask_of("mixed")
    members = torch.tensor(
        [[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1]], dtype=torch.bool
    )
    sw = torch.tensor([0.5, 2.0, 1.0, 3.0, 0.7], dtype=torch.float64)
    w = random_weights((M,), 13)
    mix = A.mixture_of_pools(A.hellinger, mu, lv, mask, subset_weights=sw, members=members, weights=w)
    assert mix.mu.shape == (5, B, D)
    for b in range(B):
        valid = [bool(mask[members[k], b].all()) for k in range(5)]
        if not any(valid):  # no listed subset is observed in this row: nothing to compare
            continue
        denom = sum(sw[k].item() for k in range(5) if valid[k])
        for k in range(5):
            if not valid[k]:
                assert mix.log_weights[k, b].item() == -math.inf
                continue
            assert abs(mix.weights[k, b].item() - sw[k].item() / denom) < 1e-12
            s = members[k].numpy()
            lam = w.numpy()[s] / w.numpy()[s].sum()
            m_ref, lv_ref = np_hellinger(mu[s, b].numpy(), lv[s, b].numpy(), lam)
            np.testing.assert_allclose(mix.mu[k, b].numpy(), m_ref, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(mix.logvar[k, b].numpy(), lv_ref, rtol=1e-9, atol=1e-10)


def test_mocode_subset_weights_and_rho():
    M, B, D = 3, 4, 2
    mu, lv = random_experts(M, B, D, seed=14)
    mask = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    sw = torch.tensor([1.0, 2.0, 3.0, 0.5, 0.25, 4.0, 1.5], dtype=torch.float64)
    mix = A.mocode(mu, lv, mask, subset_weights=sw, rho=0.3)
    table = subset_table(M)
    for b in range(B):
        valid = [all(bool(mask[j, b]) for j in s) for s in table]
        denom = sum(sw[k].item() for k in range(len(table)) if valid[k])
        for k, s in enumerate(table):
            if valid[k]:
                assert abs(mix.weights[k, b].item() - sw[k].item() / denom) < 1e-12
                m_ref, lv_ref = np_code(mu[list(s), b].numpy(), lv[list(s), b].numpy(), 0.3)
                np.testing.assert_allclose(mix.mu[k, b].numpy(), m_ref, rtol=1e-9, atol=1e-10)
                np.testing.assert_allclose(mix.logvar[k, b].numpy(), lv_ref, rtol=1e-9, atol=1e-10)
            else:
                assert mix.weights[k, b].item() == 0.0


# --------------------------------------------------------------------------------------------------
# 8. Masks, empty rows, permutations, a single expert
# --------------------------------------------------------------------------------------------------


# (rule, weight shape) pairs: no weights, (M,) and (M, B) for the rules that take weights
RULE_WEIGHT_SHAPES = [(r, w) for r in RULES for w in (None, "M", "MB") if RULES[r][1] or w is None]


def _rule_weights(rule, shape, seed):
    return random_weights(shape, seed) if RULES[rule][1] else None


@pytest.mark.parametrize("rule, wshape", RULE_WEIGHT_SHAPES)
@pytest.mark.parametrize("mask_name", list(MASKS))
def test_mask_equals_pooling_observed_experts_alone(rule, wshape, mask_name):
    M, B, D = 4, 5, 3
    mu, lv = random_experts(M, B, D, seed=15)
    # garbage in unobserved experts must not matter
    mask = mask_of(mask_name)
    mu = torch.where(mask.unsqueeze(-1), mu, torch.full_like(mu, 1e6))
    lv = torch.where(mask.unsqueeze(-1), lv, torch.full_like(lv, 29.0))
    w = None if wshape is None else random_weights((M,) if wshape == "M" else (M, B), 15)
    full = call(rule, mu, lv, mask, w)
    for b in range(B):
        obs = mask[:, b]
        wb_ = None if w is None else (w[obs] if wshape == "M" else w[obs, b : b + 1])
        alone = call(rule, mu[obs, b : b + 1], lv[obs, b : b + 1], None, wb_)
        assert_same_law(full, alone, [b], [0])


@pytest.mark.parametrize(
    "rule, weighted", [(r, w) for r in RULES for w in (False, True) if RULES[r][1] or not w]
)
def test_empty_row_gives_standard_normal(rule, weighted):
    M, B, D = 3, 4, 2
    mu, lv = random_experts(M, B, D, seed=16)
    mask = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)  # row 1 empty
    out = call(rule, mu, lv, mask, _rule_weights(rule, (M,), 16) if weighted else None)
    if isinstance(out, DiagGaussian):
        np.testing.assert_allclose(out.mu[1].numpy(), 0.0, atol=1e-12)
        np.testing.assert_allclose(out.logvar[1].numpy(), 0.0, atol=1e-12)
    else:
        w, m, v = present(out, 1)
        assert len(w) == 1, "an empty row must have a single component"
        np.testing.assert_allclose(w, 1.0, rtol=1e-12)
        np.testing.assert_allclose(m, 0.0, atol=1e-12)
        np.testing.assert_allclose(v, 0.0, atol=1e-12)


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("mask_name", ["all", "mixed"])
@pytest.mark.parametrize("seed", [0, 1])
def test_permutation_invariance(rule, mask_name, seed):
    M, B, D = 4, 5, 3
    mu, lv = random_experts(M, B, D, seed=17 + seed)
    mask = mask_of(mask_name)
    w = _rule_weights(rule, (M, B), 17 + seed)
    perm = torch.tensor([[2, 0, 3, 1], [3, 2, 1, 0]][seed])
    a = call(rule, mu, lv, mask, w)
    b = call(rule, mu[perm], lv[perm], mask[perm], None if w is None else w[perm])
    assert_same_law(a, b, list(range(B)))


@pytest.mark.parametrize("rule", IDENTITY_RULES)
def test_single_expert_pools_to_itself(rule):
    B, D = 3, 4
    mu, lv = random_experts(1, B, D, seed=18, lv=(-5, 5))
    # any weight renormalises to 1, except PoE's exponents, which are used as given
    out = call(rule, mu, lv, None, None if rule == "poe" else _rule_weights(rule, (1,), 18))
    if isinstance(out, DiagGaussian):
        np.testing.assert_allclose(out.mu.numpy(), mu[0].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out.logvar.numpy(), lv[0].numpy(), rtol=1e-12, atol=1e-12)
    else:
        for b in range(B):
            w, m, v = present(out, b)
            assert len(w) == 1
            np.testing.assert_allclose(w, 1.0, rtol=1e-12)
            np.testing.assert_allclose(m[0], mu[0, b].numpy(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(v[0], lv[0, b].numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule", ["hellinger", "wb", "moe", "holder_half", "mwb", "mohel"])
def test_identical_experts_pool_to_themselves(rule):
    # M copies of one expert: every consensus rule (not PoE/CoDE, which sharpen) returns it
    mu, lv = random_experts(1, 2, 3, seed=19)
    out = call(rule, mu.expand(4, 2, 3), lv.expand(4, 2, 3), None, _rule_weights(rule, (4,), 19))
    z = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = np_log_normal(z.numpy(), mu[0].numpy(), lv[0].exp().numpy()).sum(-1)
    if isinstance(out, DiagGaussian):
        np.testing.assert_allclose(out.mu.numpy(), mu[0].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out.logvar.numpy(), lv[0].numpy(), rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(out.log_prob(z).numpy(), want, rtol=1e-10)


# --------------------------------------------------------------------------------------------------
# 9. Property-based tests over shapes, masks and weights
# --------------------------------------------------------------------------------------------------


@st.composite
def pooling_inputs(draw, max_m=5):
    M = draw(st.integers(1, max_m))
    B = draw(st.integers(1, 4))
    D = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    mask = draw(st.lists(st.booleans(), min_size=M * B, max_size=M * B))
    weights = draw(st.one_of(st.none(), st.lists(st.floats(0.01, 100.0), min_size=M, max_size=M)))
    lv_lo = draw(st.floats(-30.0, 0.0))
    lv_hi = draw(st.floats(0.0, 30.0))
    g = torch.Generator().manual_seed(seed)
    mu = 5.0 * torch.randn(M, B, D, generator=g)
    lv = torch.empty(M, B, D).uniform_(lv_lo, lv_hi, generator=g)
    w = None if weights is None else torch.tensor(weights)
    return mu, lv, torch.tensor(mask).reshape(M, B), w


@pytest.mark.parametrize("rule", list(RULES))
@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(inputs=pooling_inputs())
def test_property_outputs_valid(rule, inputs):
    mu, lv, mask, w = inputs
    M, B, D = mu.shape
    mu.requires_grad_(True)
    lv.requires_grad_(True)
    out = call(rule, mu, lv, mask, w)
    assert_valid(out, B, D)
    if isinstance(out, GaussianMixture) and rule not in ("moe", "holder_half"):
        assert out.mu.shape[0] == 2**M - 1
    total(out).backward()
    assert bool(torch.isfinite(mu.grad).all()) and bool(torch.isfinite(lv.grad).all())


@pytest.mark.parametrize("rule", ["poe", "hellinger", "wb", "moe"])
@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(inputs=pooling_inputs())
def test_property_mean_within_observed_means(rule, inputs):
    # these rules average the observed means with non-negative weights (CoDE can extrapolate)
    mu, lv, mask, w = inputs
    mu64, lv64 = mu.double(), lv.double()
    out = call(rule, mu64, lv64, mask, w)
    mean = out.mu if isinstance(out, DiagGaussian) else out.mean()
    for b in range(mu.shape[1]):
        obs = mask[:, b]
        if not bool(obs.any()):
            continue
        lo, hi = mu64[obs, b].min(0).values, mu64[obs, b].max(0).values
        tol = 1e-9 * (1 + mu64.abs().max())
        assert bool((mean[b] >= lo - tol).all()) and bool((mean[b] <= hi + tol).all())


# --------------------------------------------------------------------------------------------------
# 10. Numerics: extreme log-variances, large D, half precision, many experts, non-finite input
# --------------------------------------------------------------------------------------------------


def _extreme_inputs(M, B, D, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    mu = (5.0 * torch.randn(M, B, D, generator=g)).to(dtype)
    lv = torch.empty(M, B, D).uniform_(-30.0, 30.0, generator=g)
    lv[0, :, : D // 2] = -30.0  # a -30 next to a +30
    if M > 1:
        lv[1, :, : D // 2] = 30.0
    return mu, lv.to(dtype)


def _check_forward_backward(rule, mu, lv, mask=None, weights=None):
    mu = mu.clone().requires_grad_(True)
    lv = lv.clone().requires_grad_(True)
    out = call(rule, mu, lv, mask, weights)
    assert_valid(out, mu.shape[1], mu.shape[2])
    total(out).backward()
    assert bool(torch.isfinite(mu.grad).all()), f"{rule}: non-finite gradient w.r.t. mu"
    assert bool(torch.isfinite(lv.grad).all()), f"{rule}: non-finite gradient w.r.t. logvar"
    return out


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("M", [2, 4])
def test_extreme_logvar_finite_with_gradients(rule, M):
    mu, lv = _extreme_inputs(M, 3, 8, seed=20 + M)
    mask = torch.ones(M, 3, dtype=torch.bool)
    mask[-1, 2] = False
    _check_forward_backward(rule, mu, lv, mask, _rule_weights(rule, (M,), 20))


@pytest.mark.parametrize("rule", ["hellinger", "wb", "code"])
def test_extreme_logvar_accuracy_float32(rule):
    # float32 results at log-variances in [-30, 30] against float64 references
    M, B, D = 3, 3, 16
    mu, lv = _extreme_inputs(M, B, D, seed=21)
    out = call(rule, mu, lv)
    assert out.mu.dtype == torch.float32
    for b in range(B):
        m, v = mu[:, b].double().numpy(), lv[:, b].double().numpy()
        if rule == "hellinger":
            m_ref, lv_ref = np_hellinger(m, v, np.full(M, 1 / M))
        elif rule == "wb":
            m_ref, lv_ref = np_wb(m, v, np.full(M, 1 / M))
        else:
            # Sigma^-1 = diag(1/s) R^-1 diag(1/s): the same minimum-variance combination without
            # inverting a matrix with condition number 1e26
            rho = 0.5
            R_inv = np.linalg.inv(np.full((M, M), rho) + (1 - rho) * np.eye(M))
            u = np.exp(-0.5 * v)  # (M, D)
            tot = np.einsum("id,ij,jd->d", u, R_inv, u)
            wts = u * (R_inv @ u) / tot
            m_ref, lv_ref = (wts * m).sum(0), -np.log(tot)
        np.testing.assert_allclose(out.mu[b].double().numpy(), m_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out.logvar[b].double().numpy(), lv_ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("rule", list(RULES))
def test_large_latent_dimension(rule):
    M, B, D = 3, 2, 4096
    mu, lv = _extreme_inputs(M, B, D, seed=22)
    _check_forward_backward(rule, mu, lv, None, _rule_weights(rule, (M,), 22))


@pytest.mark.parametrize("M", [2, 5, 9])
def test_hellinger_blocks_and_gathered_pairs_agree_with_gradients(M, monkeypatch):
    # the two ways of computing the pairs, at log-variances across [-30, 30], with a mask and weights
    mu, lv = _extreme_inputs(M, 3, 6, seed=40 + M)
    mask = torch.rand(M, 3, generator=torch.Generator().manual_seed(M)) > 0.3
    w = torch.rand(M, generator=torch.Generator().manual_seed(M + 1)) + 0.1
    results = []
    for threshold in (2**62, 0):
        monkeypatch.setattr(A, "BLOCK_PAIRS_FROM", threshold)
        m, v, ww = mu.clone().requires_grad_(), lv.clone().requires_grad_(), w.clone().requires_grad_()
        q = A.hellinger(m, v, mask, ww)
        (q.mu.sin().sum() + q.logvar.sum()).backward()
        results.append((q.mu, q.logvar, m.grad, v.grad, ww.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_hellinger_large_d_overlaps_in_log_space(pair_path):
    # near-identical experts at D = 4096: every S_ij is exp(-O(1)) only as a product over 4096
    # dimensions of per-dimension coefficients close to 1 (far below float32's range if multiplied)
    M, B, D = 3, 2, 4096
    g = torch.Generator().manual_seed(23)
    base = torch.randn(1, B, D, generator=g)
    mu = base + 0.05 * torch.randn(M, B, D, generator=g)
    lv = torch.empty(M, B, D).uniform_(-1, 1, generator=g)
    out = A.hellinger(mu, lv)
    for b in range(B):
        m_ref, lv_ref = np_hellinger(mu[:, b].double().numpy(), lv[:, b].double().numpy(), np.full(M, 1 / M))
        np.testing.assert_allclose(out.mu[b].double().numpy(), m_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out.logvar[b].double().numpy(), lv_ref, rtol=1e-4, atol=1e-4)
    # identical experts: S_ij = 1 exactly and the pool is the expert itself
    same = A.hellinger(base.expand(M, B, D), lv[:1].expand(M, B, D))
    np.testing.assert_allclose(same.mu.numpy(), base[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(same.logvar.numpy(), lv[0].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(rule, dtype):
    M, B, D = 3, 2, 16
    mu, lv = _extreme_inputs(M, B, D, seed=24, dtype=dtype)
    mask = torch.tensor([[1, 1], [1, 0], [0, 1]], dtype=torch.bool)
    out = _check_forward_backward(rule, mu, lv, mask, _rule_weights(rule, (M,), 24))
    assert out.mu.dtype == torch.float32 and out.logvar.dtype == torch.float32
    if isinstance(out, GaussianMixture):
        assert out.log_weights.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_pooled_in_float32(dtype):
    # the half-precision input values, upcast, pooled exactly as float32 input would be by hand
    M, B, D = 4, 2, 8
    mu, lv = random_experts(M, B, D, seed=25, dtype=dtype)
    out = A.poe(mu, lv)
    for b in range(B):
        m_ref, lv_ref = np_poe(mu[:, b].double().numpy(), lv[:, b].double().numpy())
        np.testing.assert_allclose(out.mu[b].double().numpy(), m_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.logvar[b].double().numpy(), lv_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rule", GAUSSIAN_RULES)
def test_many_experts_gaussian_rules(rule):
    M, B, D = 16, 3, 8
    mu, lv = _extreme_inputs(M, B, D, seed=26)
    mask = torch.rand(M, B, generator=torch.Generator().manual_seed(0)) < 0.7
    mask[:, 0] = True
    _check_forward_backward(rule, mu, lv, mask, _rule_weights(rule, (M,), 26))
    # accuracy at M = 16 with moderate values
    mu, lv = random_experts(M, B, D, seed=27, dtype=torch.float32)
    out = call(rule, mu, lv)
    ref = {
        "poe": lambda m, v: np_poe(m, v),
        "hellinger": lambda m, v: np_hellinger(m, v, np.full(M, 1 / M)),
        "wb": lambda m, v: np_wb(m, v, np.full(M, 1 / M)),
        "code": lambda m, v: np_code(m, v, 0.5),
    }[rule]
    for b in range(B):
        m_ref, lv_ref = ref(mu[:, b].double().numpy(), lv[:, b].double().numpy())
        np.testing.assert_allclose(out.mu[b].double().numpy(), m_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out.logvar[b].double().numpy(), lv_ref, rtol=1e-4, atol=1e-4)


def test_many_experts_mixture_over_subsets():
    # M = 16 gives 65535 subsets: one row, D = 2
    M = 16
    mu, lv = _extreme_inputs(M, 1, 2, seed=28)
    out = _check_forward_backward("mopoe", mu, lv)
    assert out.mu.shape == (2**M - 1, 1, 2)
    np.testing.assert_allclose(out.log_weights.double().exp().numpy(), 1.0 / (2**M - 1), rtol=1e-4)


@pytest.mark.parametrize("rule", ["mwb", "mohel", "mocode"])
def test_many_experts_other_mixtures(rule):
    M = 9
    mu, lv = _extreme_inputs(M, 1, 2, seed=29)
    out = _check_forward_backward(rule, mu, lv)
    assert out.mu.shape == (2**M - 1, 1, 2)


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize(
    "where, value", [("mu", math.nan), ("logvar", math.inf), ("mu", -math.inf), ("logvar", math.nan)]
)
def test_non_finite_observed_input_raises(rule, where, value):
    M, B, D = 3, 2, 2
    mu, lv = random_experts(M, B, D, seed=30)
    (mu if where == "mu" else lv)[1, 0, 1] = value
    with pytest.raises(ValueError, match=RULES[rule][3]):
        call(rule, mu, lv, None, _rule_weights(rule, (M,), 30))


@pytest.mark.parametrize("rule", list(RULES))
def test_checks_can_be_turned_off(rule):
    M, B, D = 3, 2, 2
    mu, lv = random_experts(M, B, D, seed=31)
    mu[1, 0, 1] = math.nan
    with A.checks(False):
        call(rule, mu, lv)  # no error
    with pytest.raises(ValueError):
        call(rule, mu, lv)  # the context manager restored the check
    A.set_checks(False)
    try:
        call(rule, mu, lv)
    finally:
        A.set_checks(True)
    with pytest.raises(ValueError):
        call(rule, mu, lv)


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_unobserved_expert_does_not_leak(rule, value):
    M, B, D = 3, 3, 2
    mu, lv = random_experts(M, B, D, seed=32)
    mask = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=torch.bool)
    bad_mu = torch.where(mask.unsqueeze(-1), mu, torch.full_like(mu, value))
    bad_lv = torch.where(mask.unsqueeze(-1), lv, torch.full_like(lv, value))
    w = _rule_weights(rule, (M,), 32)
    out = _check_forward_backward(rule, bad_mu, bad_lv, mask, w)
    clean = call(rule, mu, lv, mask, w)
    assert_same_law(out, clean, list(range(B)))


@pytest.mark.parametrize("rule", list(RULES))
def test_non_finite_in_empty_row_does_not_leak(rule):
    # a row with nothing observed: every expert there is unobserved, NaN must not reach the output
    M, B, D = 3, 2, 2
    mu, lv = random_experts(M, B, D, seed=33)
    mask = torch.tensor([[1, 0], [1, 0], [0, 0]], dtype=torch.bool)
    mu[:, 1] = math.nan
    lv[:, 1] = math.nan
    _check_forward_backward(rule, mu, lv, mask, _rule_weights(rule, (M,), 33))


# --------------------------------------------------------------------------------------------------
# 11. Learnable weights: autograd against finite differences
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["hellinger", "wb", "moe", "holder_half"])
@pytest.mark.parametrize("shape", ["M", "MB"])
def test_weight_gradient_matches_finite_difference(rule, shape):
    M, B, D = 3, 2, 3
    mu, lv = random_experts(M, B, D, seed=34)
    z = torch.randn(4, B, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c = torch.randn(2, B, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]], dtype=torch.bool)

    def f(w):
        out = call(rule, mu, lv, mask, w)
        if isinstance(out, DiagGaussian):
            return (c[0] * out.mu).sum() + (c[1] * out.logvar).sum()
        return out.log_prob(z).sum()

    w0 = random_weights((M,) if shape == "M" else (M, B), 34)
    w = w0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(w), w)
    assert bool(torch.isfinite(grad).all())
    assert grad.abs().max() > 1e-6
    eps = 1e-6
    fd = torch.zeros_like(w0)
    for idx in itertools.product(*(range(n) for n in w0.shape)):
        e = torch.zeros_like(w0)
        e[idx] = eps
        fd[idx] = (f(w0 + e) - f(w0 - e)) / (2 * eps)
    np.testing.assert_allclose(grad.numpy(), fd.numpy(), rtol=1e-6, atol=1e-8)
    if shape == "MB":  # expert 1 is unobserved in row 1: its weight there cannot matter
        assert grad[1, 1].item() == 0.0


def test_softmax_weights_train_end_to_end():
    # weights as a softmax of parameters: one gradient step on a simple loss moves the pool
    mu, lv = random_experts(3, 1, 2, seed=35)
    theta = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    target = mu[2, 0]
    loss = (A.hellinger(mu, lv, weights=torch.softmax(theta, 0)).mu[0] - target).pow(2).sum()
    loss.backward()
    with torch.no_grad():
        theta2 = theta - 0.5 * theta.grad
    loss2 = (A.hellinger(mu, lv, weights=torch.softmax(theta2, 0)).mu[0] - target).pow(2).sum()
    assert loss2.item() < loss.item()


# --------------------------------------------------------------------------------------------------
# 11. The edges: Hellinger's accepted range and masks that are not 0/1
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [89.0, 100.0, -100.0, A.HELLINGER_LOGVAR_LIMIT + 0.01])
@pytest.mark.parametrize("rule", ["hellinger", "hellinger_parts"])
def test_hellinger_beyond_its_logvar_range_raises_naming_the_limit(rule, value):
    # before: logvar >= 89 overflowed exp in float32 and the pool was NaN, silently
    mu, lv = random_experts(3, 2, 4, seed=50, dtype=torch.float32)
    lv[1, 0, 2] = value
    with pytest.raises(ValueError, match=rf"{rule}: \|logvar\| .* beyond the accepted 40 .*HELLINGER_LOGVAR_LIMIT"):
        getattr(A, rule)(mu, lv)
    # an unobserved expert may hold anything: it is not pooled
    mask = torch.ones(3, 2, dtype=torch.bool)
    mask[1, 0] = False
    out = getattr(A, rule)(mu, lv, mask)
    assert bool(torch.isfinite(out.var if rule == "hellinger_parts" else out.logvar).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hellinger_means_of_1e30_raise_instead_of_an_infinite_variance(dtype):
    mu, lv = random_experts(2, 1, 3, seed=51, dtype=dtype)
    mu[0] = 1e30
    with pytest.raises(ValueError, match=r"hellinger: \|mu\| .* beyond the accepted 1e\+15"):
        A.hellinger(mu, lv)


def test_hellinger_is_finite_with_gradients_at_the_corners_of_its_range():
    # every combination of -limit, 0 and +limit for three experts, means and log-variances: values and gradients
    # finite in float32, and the mean against the independent NumPy reference np_hellinger (float64)
    L, U = A.HELLINGER_LOGVAR_LIMIT, A.HELLINGER_MU_LIMIT
    for lvs in itertools.product([-L, 0.0, L], repeat=3):
        for mus in itertools.product([-U, 0.0, U], repeat=3):
            mu = torch.tensor(mus, dtype=torch.float32).view(3, 1, 1).expand(3, 1, 2).contiguous()
            lv = torch.tensor(lvs, dtype=torch.float32).view(3, 1, 1).expand(3, 1, 2).contiguous()
            out = _check_forward_backward("hellinger", mu, lv)
            ref_mu, _ = np_hellinger(mu[:, 0].double().numpy(), lv[:, 0].double().numpy(), [1 / 3] * 3)
            np.testing.assert_allclose(out.mu[0].detach().double().numpy(), ref_mu, rtol=1e-5, atol=1e-30)
            parts = A.hellinger_parts(mu, lv)
            assert bool(torch.isfinite(parts.var).all()) and bool(torch.isfinite(parts.mean).all())


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("bad", [0.3, 2.0, math.nan, -1.0])
def test_a_mask_that_is_not_bool_or_0_1_raises(rule, bad):
    M, B, D = 3, 2, 2
    mu, lv = random_experts(M, B, D, seed=52)
    mask = torch.ones(M, B)
    mask[1, 0] = bad
    with pytest.raises(ValueError, match=rf"{RULES[rule][3]}: mask must be bool or hold only 0 and 1"):
        call(rule, mu, lv, mask, _rule_weights(rule, (M,), 52))


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.int64, torch.uint8])
def test_a_0_1_mask_of_numbers_is_the_bool_mask(rule, dtype):
    mu, lv = random_experts(4, 5, 3, seed=53)
    mask = torch.tensor(MASKS["mixed"], dtype=torch.bool)
    w = _rule_weights(rule, (4,), 53)
    want, got = call(rule, mu, lv, mask, w), call(rule, mu, lv, mask.to(dtype), w)
    assert torch.equal(want.mu, got.mu) and torch.equal(want.logvar, got.logvar)
