"""Numerical tests of poolvae.distributions against independent computations.

References are written out here: scipy.stats.norm for Gaussian log densities, explicit sums over
components for mixtures, and Monte Carlo checks with a stated tolerance of 5 standard errors
(fixed generators, so the tests are deterministic).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from poolvae.distributions import DiagGaussian, GaussianMixture, diag_gaussian_log_prob

torch.set_num_threads(1)

N_SE = 5.0  # Monte Carlo tolerance in standard errors


# --------------------------------------------------------------------------------------------------
# Independent reference computations (numpy / scipy, float64)
# --------------------------------------------------------------------------------------------------


def ref_diag_log_prob(z, mu, logvar):
    """Sum over the last dim of scipy's normal log pdf; everything broadcasts."""
    return stats.norm.logpdf(z, loc=mu, scale=np.sqrt(np.exp(logvar))).sum(-1)


def ref_mixture_log_prob(z, mu, logvar, log_w):
    """log sum_k w_k N(z; mu_k, var_k) by an explicit loop over the K components.

    z: (N, B, D); mu, logvar: (K, B, D); log_w: (K, B). Components with w_k = 0 are skipped.
    """
    terms = []
    for k in range(mu.shape[0]):
        lw = log_w[k]  # (B,)
        comp = ref_diag_log_prob(z, mu[k], logvar[k])  # (N, B)
        terms.append(np.where(np.isfinite(lw), lw + comp, -np.inf))
    return logsumexp(np.stack(terms, 0), axis=0)


def ref_mixture_moments(mu, logvar, log_w):
    """Mixture mean E[z] and per-dimension variance E[z^2] - E[z]^2, term by term."""
    w = np.exp(log_w)[..., None]  # (K, B, 1)
    mu = np.where(w > 0, mu, 0.0)
    var = np.where(w > 0, np.exp(logvar), 0.0)
    mean = (w * mu).sum(0)
    second = (w * (mu**2 + var)).sum(0)
    return mean, second - mean**2


def random_mixture(K=3, B=2, D=2, seed=0, absent=None):
    """A random float64 GaussianMixture; ``absent`` lists (k, b) pairs that get weight 0."""
    g = torch.Generator().manual_seed(seed)
    mu = 3.0 * torch.randn(K, B, D, generator=g, dtype=torch.float64)
    logvar = torch.empty(K, B, D, dtype=torch.float64).uniform_(-1.5, 1.0, generator=g)
    logits = torch.randn(K, B, generator=g, dtype=torch.float64)
    for k, b in absent or []:
        logits[k, b] = -math.inf
    return GaussianMixture(mu, logvar, logits - torch.logsumexp(logits, 0, keepdim=True))


# --------------------------------------------------------------------------------------------------
# DiagGaussian
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lead", [(), (5,), (3, 4)])
def test_diag_log_prob_matches_scipy(lead):
    g = torch.Generator().manual_seed(1)
    B, D = 3, 4
    mu = torch.randn(B, D, generator=g, dtype=torch.float64)
    logvar = torch.empty(B, D, dtype=torch.float64).uniform_(-3, 3, generator=g)
    z = 2.0 * torch.randn(*lead, B, D, generator=g, dtype=torch.float64)
    q = DiagGaussian(mu, logvar)
    got = q.log_prob(z)
    assert got.shape == (*lead, B)
    want = ref_diag_log_prob(z.numpy(), mu.numpy(), logvar.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(diag_gaussian_log_prob(z, mu, logvar).numpy(), want, rtol=1e-12, atol=1e-12)


def test_diag_var_std():
    logvar = torch.tensor([[-2.0, 0.0, 3.0]], dtype=torch.float64)
    q = DiagGaussian(torch.zeros_like(logvar), logvar)
    np.testing.assert_allclose(q.var.numpy(), np.exp([[-2.0, 0.0, 3.0]]), rtol=1e-14)
    np.testing.assert_allclose(q.std.numpy(), np.exp([[-1.0, 0.0, 1.5]]), rtol=1e-14)


def test_diag_distribution_same_log_prob():
    g = torch.Generator().manual_seed(2)
    mu = torch.randn(3, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(3, 5, generator=g, dtype=torch.float64)
    z = torch.randn(7, 3, 5, generator=g, dtype=torch.float64)
    q = DiagGaussian(mu, logvar)
    want = ref_diag_log_prob(z.numpy(), mu.numpy(), logvar.numpy())
    np.testing.assert_allclose(q.distribution().log_prob(z).numpy(), want, rtol=1e-12)
    assert q.distribution().event_shape == (5,)


def test_diag_rsample_shapes_and_reparameterisation():
    mu = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    logvar = torch.zeros(3, 4, dtype=torch.float64)
    q = DiagGaussian(mu, logvar)
    assert q.rsample().shape == (3, 4)
    z = q.rsample(6)
    assert z.shape == (6, 3, 4)
    z.sum().backward()  # d z / d mu = 1 for every draw
    np.testing.assert_allclose(mu.grad.numpy(), np.full((3, 4), 6.0))


def test_diag_rsample_monte_carlo_moments():
    n = 20000
    mu = torch.tensor([[0.5, -2.0], [10.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 2.0], [-3.0, 1.0]], dtype=torch.float64)
    z = DiagGaussian(mu, logvar).rsample(n, generator=torch.Generator().manual_seed(3)).numpy()
    var = np.exp(logvar.numpy())
    # mean: SE = sigma / sqrt(n); variance of a Gaussian sample: SE = var * sqrt(2 / (n - 1))
    assert np.all(np.abs(z.mean(0) - mu.numpy()) < N_SE * np.sqrt(var / n))
    assert np.all(np.abs(z.var(0, ddof=1) - var) < N_SE * var * np.sqrt(2.0 / (n - 1)))


# --------------------------------------------------------------------------------------------------
# GaussianMixture
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("absent", [None, [(1, 0)], [(0, 1), (2, 1)]])
def test_mixture_log_prob_matches_direct_sum(absent):
    q = random_mixture(K=3, B=2, D=3, seed=4, absent=absent)
    z = 3.0 * torch.randn(11, 2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = q.log_prob(z)
    assert got.shape == (11, 2)
    want = ref_mixture_log_prob(z.numpy(), q.mu.numpy(), q.logvar.numpy(), q.log_weights.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    # weights are the exponentiated log weights and sum to one
    np.testing.assert_allclose(q.weights.sum(0).numpy(), 1.0, rtol=1e-12)


def test_mixture_log_prob_unbatched_point():
    q = random_mixture(K=4, B=3, D=2, seed=6)
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    want = ref_mixture_log_prob(z.numpy()[None], q.mu.numpy(), q.logvar.numpy(), q.log_weights.numpy())[0]
    np.testing.assert_allclose(q.log_prob(z).numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("absent", [None, [(1, 0)], [(0, 1), (2, 1)]])
def test_mixture_mean_and_moment_match(absent):
    q = random_mixture(K=3, B=2, D=3, seed=8, absent=absent)
    if absent:  # garbage in an absent component must be ignored
        mu = q.mu.clone()
        logvar = q.logvar.clone()
        for k, b in absent:
            mu[k, b] = 1e30
            logvar[k, b] = 80.0
        q = GaussianMixture(mu, logvar, q.log_weights)
    mean, var = ref_mixture_moments(q.mu.numpy(), q.logvar.numpy(), q.log_weights.numpy())
    np.testing.assert_allclose(q.mean().numpy(), mean, rtol=1e-12, atol=1e-12)
    mm = q.moment_match()
    np.testing.assert_allclose(mm.mu.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mm.var.numpy(), var, rtol=1e-10)


def test_mixture_moment_match_by_quadrature_1d():
    # moments of a 1-D mixture by trapezoid quadrature of the density written with scipy
    q = random_mixture(K=3, B=1, D=1, seed=9)
    w = q.weights.numpy()[:, 0]
    m = q.mu.numpy()[:, 0, 0]
    s = np.exp(0.5 * q.logvar.numpy()[:, 0, 0])
    z = np.linspace(m.min() - 15 * s.max(), m.max() + 15 * s.max(), 200001)
    p = sum(w[k] * stats.norm.pdf(z, m[k], s[k]) for k in range(3))
    h = z[1] - z[0]
    mean = (z * p).sum() * h
    var = ((z - mean) ** 2 * p).sum() * h
    mm = q.moment_match()
    assert abs(mm.mu.item() - mean) < 1e-8
    assert abs(mm.var.item() - var) < 1e-8 * max(1.0, var)


def test_mixture_distribution_same_log_prob_and_moments():
    q = random_mixture(K=3, B=2, D=3, seed=10, absent=[(2, 0)])
    z = 2.0 * torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    want = ref_mixture_log_prob(z.numpy(), q.mu.numpy(), q.logvar.numpy(), q.log_weights.numpy())
    dist = q.distribution()
    assert dist.event_shape == (3,)
    assert dist.batch_shape == (2,)
    np.testing.assert_allclose(dist.log_prob(z).numpy(), want, rtol=1e-12)
    mean, var = ref_mixture_moments(q.mu.numpy(), q.logvar.numpy(), q.log_weights.numpy())
    np.testing.assert_allclose(dist.mean.numpy(), mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dist.variance.numpy(), var, rtol=1e-10)


def test_mixture_sample_shapes():
    q = random_mixture(K=4, B=3, D=2, seed=12)
    g = torch.Generator().manual_seed(0)
    assert q.rsample(generator=g).shape == (3, 2)
    assert q.rsample(5, generator=g).shape == (5, 3, 2)
    assert q.stratified_rsample(generator=g).shape == (4, 1, 3, 2)
    assert q.stratified_rsample(6, generator=g).shape == (4, 6, 3, 2)


def test_mixture_rsample_monte_carlo_moments():
    n = 40000
    q = random_mixture(K=3, B=2, D=2, seed=13)
    z = q.rsample(n, generator=torch.Generator().manual_seed(14)).numpy()  # (n, B, D)
    mean, var = ref_mixture_moments(q.mu.numpy(), q.logvar.numpy(), q.log_weights.numpy())
    assert np.all(np.abs(z.mean(0) - mean) < N_SE * np.sqrt(var / n))
    # SE of the sample variance estimated from the draws: std((z - mean)^2) / sqrt(n)
    sq = (z - mean) ** 2
    assert np.all(np.abs(z.var(0, ddof=1) - var) < N_SE * sq.std(0) / np.sqrt(n))


def test_mixture_rsample_never_draws_absent_component():
    mu = torch.tensor([[[0.0]], [[1000.0]]], dtype=torch.float64)
    logvar = torch.zeros(2, 1, 1, dtype=torch.float64)
    log_w = torch.tensor([[0.0], [-math.inf]], dtype=torch.float64)
    z = GaussianMixture(mu, logvar, log_w).rsample(5000, generator=torch.Generator().manual_seed(15))
    assert bool((z.abs() < 10).all())


def test_mixture_rsample_component_frequencies():
    # weights (0.2, 0.8) with far apart components: the share near each is Binomial
    n = 20000
    mu = torch.tensor([[[-50.0]], [[50.0]]], dtype=torch.float64)
    log_w = torch.log(torch.tensor([[0.2], [0.8]], dtype=torch.float64))
    q = GaussianMixture(mu, torch.zeros(2, 1, 1, dtype=torch.float64), log_w)
    share = (q.rsample(n, generator=torch.Generator().manual_seed(16)) > 0).double().mean().item()
    assert abs(share - 0.8) < N_SE * math.sqrt(0.8 * 0.2 / n)


def test_stratified_rsample_per_component_moments():
    n = 20000
    q = random_mixture(K=3, B=2, D=2, seed=17)
    z = q.stratified_rsample(n, generator=torch.Generator().manual_seed(18)).numpy()  # (K, n, B, D)
    mu, var = q.mu.numpy(), np.exp(q.logvar.numpy())
    assert np.all(np.abs(z.mean(1) - mu) < N_SE * np.sqrt(var / n))
    assert np.all(np.abs(z.var(1, ddof=1) - var) < N_SE * var * np.sqrt(2.0 / (n - 1)))


def test_stratified_rsample_is_reparameterised():
    mu = torch.zeros(3, 2, 4, dtype=torch.float64, requires_grad=True)
    logvar = torch.zeros(3, 2, 4, dtype=torch.float64, requires_grad=True)
    q = GaussianMixture(mu, logvar, torch.full((3, 2), -math.log(3.0), dtype=torch.float64))
    z = q.stratified_rsample(5, generator=torch.Generator().manual_seed(19))
    z.sum().backward()
    np.testing.assert_allclose(mu.grad.numpy(), 5.0)
    # d z / d logvar = eps * std / 2 with std = 1: the sum of the eps over the draws
    eps = z.detach().numpy()  # mu = 0, std = 1, so z = eps
    np.testing.assert_allclose(logvar.grad.numpy(), 0.5 * eps.sum(1), rtol=1e-12, atol=1e-12)
