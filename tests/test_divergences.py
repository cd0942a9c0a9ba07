"""Numerical tests of poolvae.divergences against independent computations.

References: torch.distributions.kl_divergence, trapezoid quadrature on fine 1-D grids (numpy,
float64), closed forms written out in numpy, and scipy.linalg.sqrtm for matrix square roots.
"""

import math

import numpy as np
import pytest
import torch
from scipy import linalg, stats
from torch.distributions import Independent, Normal, kl_divergence

from poolvae.distributions import DiagGaussian, GaussianMixture
from poolvae.divergences import (
    hellinger_distance,
    kl_diag_gaussians,
    kl_mixture_mc,
    kl_standard_normal,
    kl_to_standard_normal,
    log_bhattacharyya,
    sqrtm_psd,
    w2_squared_diag,
    w2_squared_gaussians,
)

torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------------
# Independent reference computations
# --------------------------------------------------------------------------------------------------


def grid_1d(mus, sigmas, n=100001, width=14.0):
    """A fine uniform grid covering +-width standard deviations of every Gaussian; returns (z, h)."""
    lo = min(m - width * s for m, s in zip(mus, sigmas, strict=True))
    hi = max(m + width * s for m, s in zip(mus, sigmas, strict=True))
    z = np.linspace(lo, hi, n)
    return z, z[1] - z[0]


def quad_bhattacharyya_1d(m1, s1, m2, s2):
    """int sqrt(N(z; m1, s1^2) N(z; m2, s2^2)) dz by the trapezoid rule."""
    z, h = grid_1d([m1, m2], [s1, s2])
    return np.sqrt(stats.norm.pdf(z, m1, s1) * stats.norm.pdf(z, m2, s2)).sum() * h


def closed_bhattacharyya(m1, v1, m2, v2):
    """HEL eq. 11 written out: prod_d sqrt(2 s1 s2 / (v1 + v2)) exp(-(m1 - m2)^2 / (4 (v1 + v2)))."""
    s1, s2 = np.sqrt(v1), np.sqrt(v2)
    return np.prod(np.sqrt(2 * s1 * s2 / (v1 + v2)) * np.exp(-((m1 - m2) ** 2) / (4 * (v1 + v2))), axis=-1)


def random_spd(D, rng, jitter=0.2):
    """A random symmetric positive-definite D x D matrix."""
    a = rng.standard_normal((D, D))
    return a @ a.T + jitter * np.eye(D)


def ref_w2_squared(m1, c1, m2, c2):
    """Barycentric paper eq. 1 with scipy.linalg.sqrtm."""
    r1 = linalg.sqrtm(c1)
    cross = linalg.sqrtm(r1 @ c2 @ r1)
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np.real(cross)))


def t64(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# KL divergences
# --------------------------------------------------------------------------------------------------


def _random_pair(seed, shape=(4, 6), spread=3.0):
    g = torch.Generator().manual_seed(seed)
    mu_q = torch.randn(shape, generator=g, dtype=torch.float64)
    mu_p = torch.randn(shape, generator=g, dtype=torch.float64)
    lv_q = torch.empty(shape, dtype=torch.float64).uniform_(-spread, spread, generator=g)
    lv_p = torch.empty(shape, dtype=torch.float64).uniform_(-spread, spread, generator=g)
    return mu_q, lv_q, mu_p, lv_p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_standard_normal_matches_torch(seed):
    mu, lv, _, _ = _random_pair(seed)
    q = Independent(Normal(mu, torch.exp(0.5 * lv)), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    np.testing.assert_allclose(kl_standard_normal(mu, lv).numpy(), kl_divergence(q, p).numpy(), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_diag_gaussians_matches_torch(seed):
    mu_q, lv_q, mu_p, lv_p = _random_pair(seed)
    q = Independent(Normal(mu_q, torch.exp(0.5 * lv_q)), 1)
    p = Independent(Normal(mu_p, torch.exp(0.5 * lv_p)), 1)
    got = kl_diag_gaussians(mu_q, lv_q, mu_p, lv_p)
    np.testing.assert_allclose(got.numpy(), kl_divergence(q, p).numpy(), rtol=1e-11)
    # KL(q || q) = 0
    np.testing.assert_allclose(kl_diag_gaussians(mu_q, lv_q, mu_q, lv_q).numpy(), 0.0, atol=1e-12)


def test_kl_to_standard_normal_gaussian_is_closed_form():
    mu, lv, _, _ = _random_pair(3)
    want = 0.5 * (mu**2 + torch.exp(lv) - 1 - lv).sum(-1)
    np.testing.assert_allclose(kl_to_standard_normal(DiagGaussian(mu, lv)).numpy(), want.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Bhattacharyya coefficient and Hellinger distance
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "m1, s1, m2, s2",
    [
        (0.0, 1.0, 0.0, 1.0),
        (0.0, 1.0, 1.5, 1.0),
        (-1.0, 0.5, 2.0, 2.0),
        (0.3, 0.2, 0.1, 3.0),
        (4.0, 0.7, -4, 0.9),
    ],
)
def test_log_bhattacharyya_matches_quadrature_1d(m1, s1, m2, s2):
    want = quad_bhattacharyya_1d(m1, s1, m2, s2)
    got = log_bhattacharyya(t64([m1]), t64([2 * math.log(s1)]), t64([m2]), t64([2 * math.log(s2)]))
    assert got.shape == ()
    assert abs(math.exp(got.item()) - want) < 1e-9
    # Hellinger distance sqrt(1 - S), with 1 - S = H^2 = (1/2) int (sqrt q1 - sqrt q2)^2
    z, h = grid_1d([m1, m2], [s1, s2])
    h2 = 0.5 * ((np.sqrt(stats.norm.pdf(z, m1, s1)) - np.sqrt(stats.norm.pdf(z, m2, s2))) ** 2).sum() * h
    hd = hellinger_distance(t64([m1]), t64([2 * math.log(s1)]), t64([m2]), t64([2 * math.log(s2)]))
    assert abs(hd.item() - math.sqrt(max(h2, 0.0))) < 1e-6


@pytest.mark.parametrize("D", [1, 3, 8])
def test_log_bhattacharyya_matches_closed_form_and_factorisation(D):
    rng = np.random.default_rng(D)
    m1, m2 = rng.normal(size=(2, 5, D))
    v1, v2 = np.exp(rng.uniform(-2, 2, size=(2, 5, D)))
    got = log_bhattacharyya(t64(m1), t64(np.log(v1)), t64(m2), t64(np.log(v2))).numpy()
    assert got.shape == (5,)
    np.testing.assert_allclose(got, np.log(closed_bhattacharyya(m1, v1, m2, v2)), rtol=1e-12, atol=1e-12)
    # the D-dim coefficient is the product of 1-D quadratures
    b = 0
    prod = np.prod(
        [quad_bhattacharyya_1d(m1[b, d], np.sqrt(v1[b, d]), m2[b, d], np.sqrt(v2[b, d])) for d in range(D)]
    )
    assert abs(math.exp(got[b]) - prod) < 1e-9


def test_log_bhattacharyya_large_d_stays_finite_in_float32():
    # per-dimension coefficient ~0.9 at D = 4096 gives S ~ 1e-190: only the log is representable
    D = 4096
    m1 = torch.zeros(D)
    m2 = torch.full((D,), 0.9)
    lv = torch.zeros(D)
    got = log_bhattacharyya(m1, lv, m2, lv)
    want = D * (-(0.9**2) / 8.0)  # per dim: sqrt(1) * exp(-0.81 / 8)
    assert torch.isfinite(got)
    assert abs(got.item() - want) < 1e-4 * abs(want)


def test_log_bhattacharyya_extreme_logvar():
    lv1 = torch.tensor([-30.0, 30.0, -30.0], dtype=torch.float32)
    lv2 = torch.tensor([30.0, -30.0, -30.0], dtype=torch.float32)
    mu = torch.zeros(3)
    got = log_bhattacharyya(mu, lv1, mu, lv2)
    v1, v2 = np.exp(lv1.double().numpy()), np.exp(lv2.double().numpy())
    want = np.log(closed_bhattacharyya(np.zeros(3), v1, np.zeros(3), v2))
    assert torch.isfinite(got)
    assert abs(got.item() - want) < 1e-4 * abs(want)


# --------------------------------------------------------------------------------------------------
# Matrix square roots and 2-Wasserstein distances
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("D", [1, 2, 5])
def test_sqrtm_psd_matches_scipy(D):
    rng = np.random.default_rng(10 + D)
    c = np.stack([random_spd(D, rng) for _ in range(3)])
    got = sqrtm_psd(t64(c)).numpy()
    for k in range(3):
        np.testing.assert_allclose(got[k], np.real(linalg.sqrtm(c[k])), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("D", [1, 2, 3, 5])
def test_w2_squared_gaussians_matches_scipy(D):
    rng = np.random.default_rng(20 + D)
    B = 4
    m1, m2 = rng.normal(size=(2, B, D))
    c1 = np.stack([random_spd(D, rng) for _ in range(B)])
    c2 = np.stack([random_spd(D, rng) for _ in range(B)])
    got = w2_squared_gaussians(t64(m1), t64(c1), t64(m2), t64(c2)).numpy()
    assert got.shape == (B,)
    want = [ref_w2_squared(m1[b], c1[b], m2[b], c2[b]) for b in range(B)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
    # symmetric, and zero from a Gaussian to itself
    back = w2_squared_gaussians(t64(m2), t64(c2), t64(m1), t64(c1)).numpy()
    np.testing.assert_allclose(back, want, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(
        w2_squared_gaussians(t64(m1), t64(c1), t64(m1), t64(c1)).numpy(), 0.0, atol=1e-9
    )


def test_w2_squared_diag_and_commuting_covariances():
    rng = np.random.default_rng(30)
    B, D = 5, 4
    m1, m2 = rng.normal(size=(2, B, D))
    lv1, lv2 = rng.uniform(-3, 3, size=(2, B, D))
    s1, s2 = np.exp(0.5 * lv1), np.exp(0.5 * lv2)
    want = ((m1 - m2) ** 2 + (s1 - s2) ** 2).sum(-1)
    np.testing.assert_allclose(
        w2_squared_diag(t64(m1), t64(lv1), t64(m2), t64(lv2)).numpy(), want, rtol=1e-12
    )
    # the same distance from the full-covariance formula with diagonal covariances
    c1 = np.stack([np.diag(s1[b] ** 2) for b in range(B)])
    c2 = np.stack([np.diag(s2[b] ** 2) for b in range(B)])
    np.testing.assert_allclose(
        w2_squared_gaussians(t64(m1), t64(c1), t64(m2), t64(c2)).numpy(), want, rtol=1e-9
    )
    # commuting but not diagonal: C = Q diag(a) Q^T, trace term sum (sqrt a - sqrt b)^2
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    a, b = np.exp(rng.uniform(-2, 2, size=(2, D)))
    got = w2_squared_gaussians(t64(m1[0]), t64(q @ np.diag(a) @ q.T), t64(m2[0]), t64(q @ np.diag(b) @ q.T))
    want_c = ((m1[0] - m2[0]) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert abs(got.item() - want_c) < 1e-9 * max(1.0, want_c)


# --------------------------------------------------------------------------------------------------
# Monte Carlo KL of a mixture
# --------------------------------------------------------------------------------------------------


def quad_kl_and_se(w, m, s, mp, sp, n):
    """KL(q || N(mp, sp^2)) of the 1-D mixture q = sum_k w_k N(m_k, s_k^2) by quadrature, and the
    standard error of the stratified estimator with n draws per component,
    sqrt(sum_k w_k^2 Var_{q_k}[log q - log p] / n), also by quadrature."""
    z, h = grid_1d(list(m) + [mp], list(s) + [sp], n=200001, width=12.0)
    comp = np.stack([stats.norm.pdf(z, m[k], s[k]) for k in range(len(w))])
    qz = (w[:, None] * comp).sum(0)
    f = np.log(qz) - stats.norm.logpdf(z, mp, sp)
    kl = (qz * f).sum() * h
    var_k = [(comp[k] * (f - (comp[k] * f).sum() * h) ** 2).sum() * h for k in range(len(w))]
    return kl, math.sqrt(sum(w[k] ** 2 * var_k[k] for k in range(len(w))) / n)


def _mixture_1d(w, m, s):
    K = len(w)
    return GaussianMixture(
        t64(m).reshape(K, 1, 1),
        t64(np.log(np.asarray(s) ** 2)).reshape(K, 1, 1),
        t64(np.log(w)).reshape(K, 1),
    )


def test_kl_mixture_mc_matches_quadrature_1d():
    w = np.array([0.2, 0.5, 0.3])
    m = np.array([-2.0, 0.5, 3.0])
    s = np.array([0.6, 1.0, 0.4])
    n = 4000
    q = _mixture_1d(w, m, s)
    kl, se = quad_kl_and_se(w, m, s, 0.3, 1.5, n)
    p = DiagGaussian(t64([[0.3]]), t64([[2 * math.log(1.5)]]))
    est = kl_mixture_mc(q, p.log_prob, n=n, generator=torch.Generator().manual_seed(0))
    assert est.shape == (1,)
    assert abs(est.item() - kl) < 5 * se
    # the prior version: KL(q || N(0, 1))
    kl0, se0 = quad_kl_and_se(w, m, s, 0.0, 1.0, n)
    est0 = kl_to_standard_normal(q, n=n, generator=torch.Generator().manual_seed(1))
    assert abs(est0.item() - kl0) < 5 * se0


def test_kl_mixture_mc_ignores_absent_components():
    # an absent component with garbage parameters must not change the estimate
    m = t64([[[0.0]], [[2.0]], [[1e6]]])
    lv = t64([[[0.0]], [[-1.0]], [[50.0]]])
    log_w = t64([[math.log(0.4)], [math.log(0.6)], [-math.inf]])
    q = GaussianMixture(m, lv, log_w)
    p = DiagGaussian(t64([[0.5]]), t64([[0.0]]))
    n = 2000
    est = kl_mixture_mc(q, p.log_prob, n=n, generator=torch.Generator().manual_seed(2))
    assert torch.isfinite(est).all()
    kl, se = quad_kl_and_se(np.array([0.4, 0.6]), [0.0, 2.0], [1.0, math.exp(-0.5)], 0.5, 1.0, n)
    assert abs(est.item() - kl) < 5 * se
