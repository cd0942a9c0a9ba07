"""Tests of poolvae.expfam against independent computations: the Gaussian Hellinger aggregator,
quadrature (scipy.integrate.quad) and direct summation of the pooled density written out here, and
the closed forms of HEL Appendix A.2. No test compares the module with its own output, except for
the invariances (permutation, duplicated experts, zero weights), which are properties by definition.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammaln

from poolvae import aggregators, expfam
from poolvae.expfam import EXPONENTIAL, GAMMA, GAUSSIAN, POISSON

F64 = torch.float64
QUAD = {"epsabs": 0.0, "epsrel": 1e-12, "limit": 400}


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _quad_moments(f, low: float, high: float, points=()) -> tuple[float, float, float]:
    """Normaliser, mean and variance of the unnormalised density ``f`` on [low, high], by quadrature."""

    def integral(g):
        edges = [low, *points, high]
        return sum(integrate.quad(g, a, b, **QUAD)[0] for a, b in itertools.pairwise(edges))

    z_norm = integral(f)
    mean = integral(lambda z: z * f(z)) / z_norm
    var = integral(lambda z: (z - mean) ** 2 * f(z)) / z_norm
    return z_norm, mean, var


def _pool_fn(densities, lam):
    """``z -> (sum_j l_j sqrt(q_j(z)))^2`` for a list of scalar densities (unnormalised Hölder-1/2 pool)."""
    return lambda z: sum(l * math.sqrt(q(z)) for l, q in zip(lam, densities, strict=True)) ** 2


def _exp_pdf(a):
    return lambda z: a * math.exp(-a * z)


def _gamma_pdf(k, r):
    return lambda z: math.exp(k * math.log(r) - gammaln(k) + (k - 1) * math.log(z) - r * z) if z > 0 else 0.0


def _normalised(w):
    w = np.asarray(w, dtype=np.float64)
    return w / w.sum()


# --------------------------------------------------------------------------------------------------
# Gaussian: agreement with poolvae.aggregators.hellinger
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("D", [1, 2, 3, 4])
@pytest.mark.parametrize("weight_shape", ["none", "M", "MB"])
def test_gaussian_matches_gaussian_hellinger(D, weight_shape):
    gen = torch.Generator().manual_seed(100 * D + len(weight_shape))
    M, B = 4, 5
    mu = 2.0 * torch.randn(M, B, D, dtype=F64, generator=gen)
    logvar = 4.0 * torch.rand(M, B, D, dtype=F64, generator=gen) - 2.0
    weights = {
        "none": None,
        "M": torch.rand(M, dtype=F64, generator=gen) + 0.1,
        "MB": torch.rand(M, B, dtype=F64, generator=gen) + 0.1,
    }[weight_shape]
    got = expfam.hellinger_expfam(GAUSSIAN, GAUSSIAN.natural_from_params(mu, logvar), weights)
    ref = aggregators.hellinger(mu, logvar, weights=weights)
    assert got.mean.shape == (B, D) and got.var.shape == (B, D)
    torch.testing.assert_close(got.mean, ref.mu, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(got.var, torch.exp(ref.logvar), rtol=1e-8, atol=1e-8)


def test_gaussian_extreme_logvars_float32_stay_finite_and_accurate():
    gen = torch.Generator().manual_seed(7)
    M, B, D = 3, 8, 16
    mu = torch.randn(M, B, D, dtype=F64, generator=gen)
    logvar = 60.0 * torch.rand(M, B, D, dtype=F64, generator=gen) - 30.0
    ref = aggregators.hellinger(mu, logvar)
    got = expfam.hellinger_expfam(GAUSSIAN, GAUSSIAN.natural_from_params(mu.float(), logvar.float()))
    assert got.mean.dtype == torch.float32
    assert bool(torch.isfinite(got.mean).all() and (got.var > 0).all())
    torch.testing.assert_close(got.mean.double(), ref.mu, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(torch.log(got.var).double(), ref.logvar, rtol=0, atol=1e-3)


def test_gaussian_affinity_vs_quadrature():
    mu_i, s_i, mu_j, s_j = 0.3, 0.7, -1.1, 1.9
    q_i = lambda z: math.exp(-0.5 * ((z - mu_i) / s_i) ** 2) / (s_i * math.sqrt(2 * math.pi))  # noqa: E731
    q_j = lambda z: math.exp(-0.5 * ((z - mu_j) / s_j) ** 2) / (s_j * math.sqrt(2 * math.pi))  # noqa: E731
    s_quad = integrate.quad(lambda z: math.sqrt(q_i(z) * q_j(z)), -math.inf, math.inf, **QUAD)[0]
    eta = GAUSSIAN.natural_from_params(_t([[mu_i], [mu_j]]), _t([[2 * math.log(s_i)], [2 * math.log(s_j)]]))
    got = expfam.pair_terms(GAUSSIAN, eta)
    assert math.isclose(float(torch.exp(got.log_s)[0]), s_quad, rel_tol=1e-10)


# --------------------------------------------------------------------------------------------------
# Each family's log-partition and moments against quadrature / summation of h exp(eta T)
# --------------------------------------------------------------------------------------------------


def test_log_partitions_and_moments_vs_quadrature():
    # (family, eta, unnormalised h(z) exp(eta^T T(z)) written out here, support)
    cases = [
        (GAUSSIAN, [0.8, -0.6], lambda z: math.exp(0.8 * z - 0.6 * z * z) / math.sqrt(2 * math.pi),
         (-math.inf, math.inf)),
        (EXPONENTIAL, -1.7, lambda z: math.exp(-1.7 * z), (0.0, math.inf)),
        (GAMMA, [1.5, -0.9], lambda z: math.exp(1.5 * math.log(z) - 0.9 * z) if z > 0 else 0.0,
         (0.0, math.inf)),
    ]
    for family, eta, kernel, (low, high) in cases:
        z_norm, mean, var = _quad_moments(kernel, low, high, points=(1.0,) if low == 0 else ())
        e = _t(eta)
        assert math.isclose(float(family.log_partition(e)), math.log(z_norm), rel_tol=1e-10), family.name
        assert math.isclose(float(family.mean(e)), mean, rel_tol=1e-9), family.name
        assert math.isclose(float(family.variance(e)), var, rel_tol=1e-9), family.name
        assert math.isclose(float(family.second_moment(e)), var + mean**2, rel_tol=1e-9), family.name
        # the log density is the normalised kernel
        for z in (0.3, 1.7):
            assert math.isclose(float(torch.exp(family.log_density(_t(z), e))), kernel(z) / z_norm,
                                rel_tol=1e-10), family.name
    # Poisson: sum_k exp(eta k) / k! = exp(exp(eta))
    eta, k = 1.3, np.arange(200.0)
    log_terms = eta * k - gammaln(k + 1)
    log_norm = float(np.logaddexp.reduce(log_terms))
    pmf = np.exp(log_terms - log_norm)
    assert math.isclose(float(POISSON.log_partition(_t(eta))), log_norm, rel_tol=1e-12)
    assert math.isclose(float(POISSON.mean(_t(eta))), float((k * pmf).sum()), rel_tol=1e-12)
    assert math.isclose(float(POISSON.second_moment(_t(eta))), float((k**2 * pmf).sum()), rel_tol=1e-12)
    torch.testing.assert_close(torch.exp(POISSON.log_density(_t(k[:10]), _t(eta))), _t(pmf[:10]))


def test_closed_form_affinities_equal_generic_log_partition_difference():
    # GAUSSIAN and POISSON override log S with a cancellation-free closed form; it must equal the
    # generic A(eta_ij) - A(eta_i)/2 - A(eta_j)/2 of HEL A.2 (computed here from A alone).
    for family, eta_i, eta_j in [
        (GAUSSIAN, _t([[0.5, -0.3], [2.0, -4.0]]), _t([[-1.0, -2.0], [0.1, -0.05]])),
        (POISSON, _t([0.2, 3.0, -1.0]), _t([1.1, 2.5, 0.0])),
    ]:
        a = family.log_partition
        generic = a(0.5 * (eta_i + eta_j)) - 0.5 * a(eta_i) - 0.5 * a(eta_j)
        torch.testing.assert_close(family.log_affinity(eta_i, eta_j), generic, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Exponential (the example of HEL A.2)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rates, weights",
    [
        ([1.0, 3.0], None),
        ([0.5, 2.0, 7.0], [0.2, 0.5, 0.3]),
        ([0.3, 0.31, 4.0, 12.0], [3.0, 1.0, 0.5, 2.0]),  # unnormalised weights are renormalised
    ],
)
def test_exponential_vs_quadrature(rates, weights):
    lam = _normalised(weights if weights is not None else [1.0] * len(rates))
    f = _pool_fn([_exp_pdf(a) for a in rates], lam)
    _, mean, var = _quad_moments(f, 0.0, math.inf, points=(1.0,))
    eta = EXPONENTIAL.natural_from_params(_t(rates).unsqueeze(-1))  # (M, D=1)
    got = expfam.hellinger_expfam(EXPONENTIAL, eta, None if weights is None else _t(weights))
    assert math.isclose(float(got.mean[0]), mean, rel_tol=1e-9)
    assert math.isclose(float(got.var[0]), var, rel_tol=1e-9)


def test_exponential_pair_terms_match_paper_closed_forms():
    rng = np.random.default_rng(3)
    M, D = 5, 3
    rates = rng.uniform(0.2, 6.0, size=(M, D))
    got = expfam.pair_terms(EXPONENTIAL, EXPONENTIAL.natural_from_params(_t(rates)))
    pairs = list(itertools.combinations(range(M), 2))
    assert [(int(a), int(b)) for a, b in zip(got.i, got.j, strict=True)] == pairs
    for p, (i, j) in enumerate(pairs):
        ai, aj = rates[i], rates[j]
        s_per_coord = 2.0 * np.sqrt(ai * aj) / (ai + aj)  # HEL A.2, per coordinate
        s = float(np.prod(s_per_coord))  # HEL eq. 7: a product over coordinates
        assert math.isclose(float(torch.exp(got.log_s[p])), s, rel_tol=1e-12)
        np.testing.assert_allclose(got.m[p].numpy(), s * 2.0 / (ai + aj), rtol=1e-12)
        np.testing.assert_allclose(got.v[p].numpy(), s * 8.0 / (ai + aj) ** 2, rtol=1e-12)


def test_exponential_pooled_density_vs_direct_formula_and_normalised():
    rates, weights = [0.5, 2.0, 5.0], [0.5, 0.2, 0.3]
    lam = _normalised(weights)
    f = _pool_fn([_exp_pdf(a) for a in rates], lam)
    z_norm = integrate.quad(f, 0.0, math.inf, **QUAD)[0]
    eta = EXPONENTIAL.natural_from_params(_t(rates).unsqueeze(-1))
    zs = np.array([0.0, 0.01, 0.4, 1.3, 6.0])
    got = expfam.holder_half_density_expfam(EXPONENTIAL, eta, _t(weights), _t(zs).unsqueeze(-1))
    np.testing.assert_allclose(got.numpy(), [f(z) / z_norm for z in zs], rtol=1e-10)
    assert float(expfam.holder_half_density_expfam(EXPONENTIAL, eta, None, _t([[-0.5]]))[0]) == 0.0
    total = integrate.quad(
        lambda z: float(expfam.holder_half_density_expfam(EXPONENTIAL, eta, _t(weights), _t([[z]]))[0]),
        0.0, math.inf, epsabs=0.0, epsrel=1e-10, limit=200,
    )[0]
    assert math.isclose(total, 1.0, rel_tol=1e-8)


# --------------------------------------------------------------------------------------------------
# Gamma (both natural parameters free)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shapes, rates, weights",
    [
        ([2.0, 5.0], [1.0, 0.7], None),
        ([1.2, 3.5, 8.0], [0.5, 2.0, 1.5], [0.1, 0.6, 0.3]),
        ([0.7, 1.0, 2.5], [1.0, 0.4, 3.0], [1.0, 2.0, 1.0]),  # shape < 1: density singular at 0
    ],
)
def test_gamma_vs_quadrature(shapes, rates, weights):
    lam = _normalised(weights if weights is not None else [1.0] * len(shapes))
    f = _pool_fn([_gamma_pdf(k, r) for k, r in zip(shapes, rates, strict=True)], lam)
    _, mean, var = _quad_moments(f, 0.0, math.inf, points=(1.0,))
    eta = GAMMA.natural_from_params(_t(shapes), _t(rates)).unsqueeze(1)  # (M, D=1, 2)
    got = expfam.hellinger_expfam(GAMMA, eta, None if weights is None else _t(weights))
    assert math.isclose(float(got.mean[0]), mean, rel_tol=1e-8)
    assert math.isclose(float(got.var[0]), var, rel_tol=1e-8)


def test_gamma_factorised_two_coordinates_vs_one_dimensional_quadratures():
    # For D = 2, E[z_d] under (sum_j l_j sqrt(q_j(z)))^2 / Z is
    # sum_{j,k} l_j l_k int z_d sqrt(q_jd q_kd) dz_d * int sqrt(q_je q_ke) dz_e / Z (e != d).
    shapes = np.array([[1.5, 3.0], [2.5, 1.2], [4.0, 2.0]])
    rates = np.array([[1.0, 0.5], [0.6, 2.0], [1.5, 1.0]])
    lam = _normalised([0.3, 0.3, 0.4])
    M, D = shapes.shape

    def overlap(j, k, d, power):
        qj, qk = _gamma_pdf(shapes[j, d], rates[j, d]), _gamma_pdf(shapes[k, d], rates[k, d])
        g = lambda z: z**power * math.sqrt(qj(z) * qk(z))  # noqa: E731
        return sum(integrate.quad(g, a, b, **QUAD)[0] for a, b in [(0.0, 1.0), (1.0, math.inf)])

    moments = np.zeros((3, D))  # rows: int 1, int z, int z^2 of the unnormalised pool, per coordinate
    for j, k in itertools.product(range(M), repeat=2):
        base = [overlap(j, k, d, 0) for d in range(D)]
        for d in range(D):
            other = np.prod([base[e] for e in range(D) if e != d])
            for p in range(3):
                moments[p, d] += lam[j] * lam[k] * overlap(j, k, d, p) * other
    mean = moments[1] / moments[0]
    var = moments[2] / moments[0] - mean**2
    got = expfam.hellinger_expfam(GAMMA, GAMMA.natural_from_params(_t(shapes), _t(rates)), _t(lam))
    np.testing.assert_allclose(got.mean.numpy(), mean, rtol=1e-8)
    np.testing.assert_allclose(got.var.numpy(), var, rtol=1e-7)


# --------------------------------------------------------------------------------------------------
# Poisson (discrete: the pooled density is a pmf, integrals are sums)
# --------------------------------------------------------------------------------------------------


def _poisson_pool_by_summation(rates, lam, k_max=400):
    k = np.arange(k_max + 1, dtype=np.float64)
    pmfs = np.exp(k[None] * np.log(np.asarray(rates))[:, None] - np.asarray(rates)[:, None] - gammaln(k + 1))
    unnorm = (np.asarray(lam)[:, None] * np.sqrt(pmfs)).sum(0) ** 2
    pmf = unnorm / unnorm.sum()
    mean = (k * pmf).sum()
    return k, pmf, mean, ((k - mean) ** 2 * pmf).sum()


@pytest.mark.parametrize(
    "rates, weights",
    [
        ([2.0, 9.0], None),
        ([0.3, 4.0, 25.0], [0.5, 0.25, 0.25]),
        ([1.0, 1.5, 60.0, 70.0], [1.0, 1.0, 2.0, 0.5]),
    ],
)
def test_poisson_vs_direct_summation(rates, weights):
    lam = _normalised(weights if weights is not None else [1.0] * len(rates))
    k, pmf, mean, var = _poisson_pool_by_summation(rates, lam)
    eta = POISSON.natural_from_params(_t(rates).unsqueeze(-1))
    got = expfam.hellinger_expfam(POISSON, eta, None if weights is None else _t(weights))
    assert math.isclose(float(got.mean[0]), mean, rel_tol=1e-10)
    assert math.isclose(float(got.var[0]), var, rel_tol=1e-10)
    pooled = expfam.holder_half_density_expfam(POISSON, eta, None if weights is None else _t(weights),
                                               _t(k[:120]).unsqueeze(-1))
    np.testing.assert_allclose(pooled.numpy(), pmf[:120], rtol=1e-10, atol=1e-300)
    off_support = expfam.holder_half_density_expfam(POISSON, eta, None, _t([[2.5], [-1.0]]))
    assert float(off_support.abs().sum()) == 0.0


def test_poisson_affinity_vs_summation():
    r_i, r_j = 3.0, 11.0
    k = np.arange(400.0)
    s_sum = np.exp(0.5 * (k * math.log(r_i * r_j) - r_i - r_j) - gammaln(k + 1)).sum()
    got = expfam.pair_terms(POISSON, POISSON.natural_from_params(_t([[r_i], [r_j]])))
    assert math.isclose(float(torch.exp(got.log_s[0])), float(s_sum), rel_tol=1e-12)


# --------------------------------------------------------------------------------------------------
# Structural properties, all families
# --------------------------------------------------------------------------------------------------

# (family, natural parameters of shape (M=3, B=2, D=2, *param), closed-form mean and variance)
_RATES = np.array([[[0.5, 1.0], [2.0, 3.0]], [[1.5, 0.2], [0.7, 4.0]], [[6.0, 2.5], [1.1, 0.9]]])
_SHAPES = np.array([[[2.0, 1.0], [0.8, 3.0]], [[5.0, 1.5], [2.2, 4.0]], [[1.3, 9.0], [3.3, 0.9]]])
_MUS = np.array([[[0.0, 1.0], [-2.0, 3.0]], [[1.5, -0.2], [0.7, 4.0]], [[-6.0, 2.5], [1.1, 0.9]]])
_CASES = {
    "gaussian": (GAUSSIAN, lambda: GAUSSIAN.natural_from_params(_t(_MUS), _t(np.log(_RATES))), _MUS, _RATES),
    "exponential": (EXPONENTIAL, lambda: EXPONENTIAL.natural_from_params(_t(_RATES)), 1 / _RATES,
                    _RATES**-2.0),
    "gamma": (GAMMA, lambda: GAMMA.natural_from_params(_t(_SHAPES), _t(_RATES)), _SHAPES / _RATES,
              _SHAPES / _RATES**2),
    "poisson": (POISSON, lambda: POISSON.natural_from_params(_t(_RATES)), _RATES, _RATES),
}


@pytest.mark.parametrize("name", list(_CASES))
def test_one_expert_and_identical_experts_give_the_expert(name):
    family, make_eta, mean, var = _CASES[name]
    eta = make_eta()
    for m in range(3):
        got = expfam.hellinger_expfam(family, eta[m : m + 1])
        np.testing.assert_allclose(got.mean.numpy(), mean[m], rtol=1e-12)
        np.testing.assert_allclose(got.var.numpy(), var[m], rtol=1e-12)
        copies = eta[m : m + 1].expand(4, *eta.shape[1:])
        got = expfam.hellinger_expfam(family, copies, _t([0.1, 0.2, 0.3, 0.4]))
        np.testing.assert_allclose(got.mean.numpy(), mean[m], rtol=1e-12)
        np.testing.assert_allclose(got.var.numpy(), var[m], rtol=1e-10)


@pytest.mark.parametrize("name", list(_CASES))
def test_permutation_invariance_and_zero_weights(name):
    family, make_eta, _, _ = _CASES[name]
    eta = make_eta()
    w = _t([[0.2, 0.5], [0.3, 0.1], [0.5, 0.4]])  # (M, B)
    ref = expfam.hellinger_expfam(family, eta, w)
    for perm in itertools.permutations(range(3)):
        got = expfam.hellinger_expfam(family, eta[list(perm)], w[list(perm)])
        torch.testing.assert_close(got.mean, ref.mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got.var, ref.var, rtol=1e-12, atol=1e-12)
    # a zero weight removes its expert
    got = expfam.hellinger_expfam(family, eta, _t([0.4, 0.0, 0.6]))
    ref = expfam.hellinger_expfam(family, eta[[0, 2]], _t([0.4, 0.6]))
    torch.testing.assert_close(got.mean, ref.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.var, ref.var, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(_CASES))
def test_dtypes_and_gradients(name):
    family, make_eta, _, _ = _CASES[name]
    eta = make_eta()
    assert expfam.hellinger_expfam(family, eta).mean.dtype == torch.float64
    for dtype in (torch.float32, torch.float16):
        out = expfam.hellinger_expfam(family, eta.to(dtype))
        assert out.mean.dtype == torch.float32 and out.var.dtype == torch.float32
        assert bool(torch.isfinite(out.mean).all() and torch.isfinite(out.var).all())
    logits = torch.zeros(3, dtype=F64, requires_grad=True)
    out = expfam.hellinger_expfam(family, eta, torch.softmax(logits, 0))
    (out.mean.sum() + out.var.sum()).backward()
    assert bool(torch.isfinite(logits.grad).all()) and float(logits.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    "family, make_bad",
    [
        (EXPONENTIAL, lambda: EXPONENTIAL.natural_from_params(_t([1.0, 0.0]))),
        (EXPONENTIAL, lambda: EXPONENTIAL.natural_from_params(_t([1.0, -2.0]))),
        (EXPONENTIAL, lambda: expfam.hellinger_expfam(EXPONENTIAL, _t([[-1.0], [0.5]]))),
        (EXPONENTIAL, lambda: expfam.hellinger_expfam(EXPONENTIAL, _t([[-1.0], [math.nan]]))),
        (GAUSSIAN, lambda: expfam.hellinger_expfam(GAUSSIAN, _t([[[0.0, -1.0]], [[0.0, 0.0]]]))),
        (GAUSSIAN, lambda: GAUSSIAN.natural_from_params(_t([0.0]), _t([math.inf]))),
        (GAUSSIAN, lambda: expfam.hellinger_expfam(GAUSSIAN, _t([[-1.0], [-2.0]]))),  # no param dim
        (GAMMA, lambda: GAMMA.natural_from_params(_t([0.0]), _t([1.0]))),
        (GAMMA, lambda: GAMMA.natural_from_params(_t([1.0]), _t([-1.0]))),
        (GAMMA, lambda: expfam.hellinger_expfam(GAMMA, _t([[[-1.5, -1.0]], [[0.0, -1.0]]]))),
        (POISSON, lambda: POISSON.natural_from_params(_t([-3.0]))),
        (POISSON, lambda: expfam.hellinger_expfam(POISSON, _t([[0.0], [math.inf]]))),
        (POISSON, lambda: expfam.hellinger_expfam(POISSON, _t([[0.0], [1.0]]), _t([1.0, -1.0]))),
        (POISSON, lambda: expfam.hellinger_expfam(POISSON, _t([[0.0], [1.0]]), _t([0.0, 0.0]))),
        (POISSON, lambda: expfam.hellinger_expfam(POISSON, _t([[0.0], [1.0]]), _t([1.0, 1.0, 1.0]))),
        (POISSON, lambda: expfam.hellinger_expfam(POISSON, _t([0.0, 1.0]))),  # no event dim
        (POISSON, lambda: expfam.holder_half_density_expfam(POISSON, _t([[[0.0]], [[1.0]]]), None,
                                                            _t([1.0]))),
    ],
)
def test_invalid_input_raises_value_error_naming_the_family(family, make_bad):
    with pytest.raises(ValueError, match=f"^{family.name}: "):
        make_bad()


def test_families_registry():
    assert set(expfam.FAMILIES) == {"gaussian", "exponential", "gamma", "poisson"}
    assert all(f.name == name for name, f in expfam.FAMILIES.items())
