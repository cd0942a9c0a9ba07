"""Hellinger aggregation beyond Gaussians: experts from one exponential family (HEL Appendix A.2).

Every expert is ``q_eta(z) = h(z) exp(eta^T T(z) - A(eta))`` with the same base measure ``h``,
sufficient statistic ``T`` and support, and its own natural parameter ``eta_j``. The square root of a
product of two experts is again a (scaled) member of the family: ``sqrt(q_i q_j) = S_ij q_{eta_ij}``
with ``eta_ij = (eta_i + eta_j) / 2`` and the Hellinger affinity (Bhattacharyya coefficient)
``S_ij = exp(A(eta_ij) - A(eta_i)/2 - A(eta_j)/2)``. The natural parameter space is convex, so
``eta_ij`` is always a valid parameter, and ``S_ij <= 1`` because ``A`` is convex. Expanding the
square of the Hölder-1/2 pool ``(sum_j l_j sqrt(q_j))^2`` therefore gives a mixture of the experts
(weights ``l_j^2``) and the pair members ``q_{eta_ij}`` (weights ``2 l_i l_j S_ij``), whose first two
moments are the moment-matched pool: the family's log-partition function and its moments are all
that Hellinger aggregation needs. For a discrete family (Poisson) the integrals are sums and the
pooled "density" is a pmf; nothing else changes.

Shapes: natural parameters are stacked on dim 0 as ``(M, *batch, *event, *param)``; ``param`` is the
family's :attr:`ExpFamily.param_shape` (``()`` for a scalar natural parameter, ``(2,)`` for the
Gaussian's ``(eta1, eta2)``), and the last ``event_dims`` (default 1, the latent size D) coordinate
dims form one latent vector whose coordinates are independent under every expert. The affinity of a
factorised family is the product of the per-coordinate affinities, exactly as HEL eq. 7, so ``log S``
is summed over the event dims. Everything is computed in float64 when given float64 and in float32
otherwise; the affinities and pool weights are kept in log space. Equation numbers refer to the
HELVAE paper ("HEL eq."); the families are :data:`GAUSSIAN`, :data:`EXPONENTIAL`, :data:`GAMMA` and
:data:`POISSON` (see :data:`FAMILIES`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .aggregators import compute_dtype, pair_indices

LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------------
# The family record
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpFamily:
    """One exponential family ``q_eta(z) = h(z) exp(eta^T T(z) - A(eta))``, per scalar coordinate.

    All callables act elementwise over leading dims; ``eta`` carries the trailing ``param_shape``.

    Attributes:
        name: lower-case name, used in every error message.
        param_shape: shape of one natural parameter, ``()`` or ``(2,)``.
        log_partition: ``A(eta)``, (..., *param_shape) -> (...).
        mean: ``E_eta[z]``, (..., *param_shape) -> (...).
        variance: ``Var_eta[z]``, (..., *param_shape) -> (...).
        natural_from_params: the usual parameters (e.g. a rate) -> ``eta``; validates them.
        log_density: ``log q_eta(z)`` (a log pmf for discrete families), ``-inf`` off the support;
            ``z`` (...) broadcasts against ``eta`` (..., *param_shape).
        in_domain: bool mask of the (open) natural parameter space, (..., *param_shape) -> (...).
        domain: the natural parameter space in words, for error messages.
        support: ``(low, high)`` of the support of ``z``.
        discrete: True when ``z`` takes integer values (counting base measure).
        log_affinity: optional closed form of ``A(eta_ij) - A(eta_i)/2 - A(eta_j)/2`` (the per-coordinate
            ``log S_ij``) without the cancellation of the generic difference; must equal it.
    """

    name: str
    param_shape: tuple[int, ...]
    log_partition: Callable[[Tensor], Tensor]
    mean: Callable[[Tensor], Tensor]
    variance: Callable[[Tensor], Tensor]
    natural_from_params: Callable[..., Tensor]
    log_density: Callable[[Tensor, Tensor], Tensor]
    in_domain: Callable[[Tensor], Tensor]
    domain: str
    support: tuple[float, float]
    discrete: bool = False
    log_affinity: Callable[[Tensor, Tensor], Tensor] | None = None

    def second_moment(self, eta: Tensor) -> Tensor:
        """``E_eta[z^2] = Var_eta[z] + E_eta[z]^2`` (the per-coordinate second moment of HEL eq. 17)."""
        return self.variance(eta) + self.mean(eta).pow(2)


class PooledMoments(NamedTuple):
    """Mean and variance of the Hölder-1/2 pool, each of shape (*batch, *event)."""

    mean: Tensor
    var: Tensor


class PairTerms(NamedTuple):
    """The pair quantities of HEL A.2 for the ``P = M (M - 1) / 2`` pairs ``i < j``.

    ``log_s`` (P, *batch) is ``log S_ij`` (summed over the event dims); ``m`` and ``v`` (P, *batch,
    *event) are ``M_ij = S_ij E_{eta_ij}[z]`` and the diagonal ``V_ij = S_ij E_{eta_ij}[z^2]``.
    """

    i: Tensor  # (P,)
    j: Tensor  # (P,)
    log_s: Tensor  # (P, *batch)
    m: Tensor  # (P, *batch, *event)
    v: Tensor  # (P, *batch, *event)


def _as_float(x) -> Tensor:
    """A tensor in the compute dtype of its input (Python numbers become float32)."""
    t = torch.as_tensor(x)
    return t.to(compute_dtype(t.dtype))


def _require(family: str, ok: Tensor, what: str) -> None:
    """Raise ``ValueError`` naming the family when any entry of the bool tensor ``ok`` is False."""
    if not bool(ok.all()):
        raise ValueError(f"{family}: {what}; {int((~ok).sum())} of {ok.numel()} entries fail")


# --------------------------------------------------------------------------------------------------
# Gaussian: eta = (mu / s^2, -1 / (2 s^2)), T(z) = (z, z^2), h(z) = 1 / sqrt(2 pi)
# --------------------------------------------------------------------------------------------------


def _gaussian_mean_logvar(eta: Tensor) -> tuple[Tensor, Tensor]:
    """``(mu, log s^2)`` from the natural parameters: ``s^2 = -1/(2 eta2)``, ``mu = eta1 s^2``."""
    eta1, eta2 = eta[..., 0], eta[..., 1]
    return -eta1 / (2.0 * eta2), -torch.log(-2.0 * eta2)


def _gaussian_log_partition(eta: Tensor) -> Tensor:
    """``A(eta) = -eta1^2 / (4 eta2) - log(-2 eta2) / 2`` (``= mu^2 / (2 s^2) + log s``)."""
    eta1, eta2 = eta[..., 0], eta[..., 1]
    return -eta1.pow(2) / (4.0 * eta2) - 0.5 * torch.log(-2.0 * eta2)


def _gaussian_natural(mu, logvar) -> Tensor:
    """``(mu / s^2, -1 / (2 s^2))`` from a mean and a log-variance (the project's encoder outputs)."""
    mu, logvar = _as_float(mu), _as_float(logvar)
    _require("gaussian", torch.isfinite(mu), "mu must be finite")
    _require("gaussian", torch.isfinite(logvar), "logvar must be finite")
    prec = torch.exp(-logvar)
    return torch.stack(torch.broadcast_tensors(mu * prec, -0.5 * prec), dim=-1)


def _gaussian_log_density(z: Tensor, eta: Tensor) -> Tensor:
    """``log N(z; mu, s^2)``, evaluated from (mu, log s^2) to avoid cancelling large natural terms."""
    mu, logvar = _gaussian_mean_logvar(eta)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def _gaussian_log_affinity(eta_i: Tensor, eta_j: Tensor) -> Tensor:
    """Per-coordinate ``log S_ij`` of two Gaussians (HEL eq. 10), in mean/log-variance form.

    ``0.5 log(2 s_i s_j / (s_i^2 + s_j^2)) - (mu_i - mu_j)^2 / (4 (s_i^2 + s_j^2))``. The generic
    ``A(eta_ij) - A(eta_i)/2 - A(eta_j)/2`` subtracts terms of size ``mu^2 / s^2``; this form does not.
    """
    mu_i, lv_i = _gaussian_mean_logvar(eta_i)
    mu_j, lv_j = _gaussian_mean_logvar(eta_j)
    log_vsum = torch.logaddexp(lv_i, lv_j)
    return 0.5 * (math.log(2.0) + 0.5 * (lv_i + lv_j) - log_vsum) - (mu_i - mu_j).pow(2) / (
        4.0 * torch.exp(log_vsum)
    )


GAUSSIAN = ExpFamily(
    name="gaussian",
    param_shape=(2,),
    log_partition=_gaussian_log_partition,
    mean=lambda eta: _gaussian_mean_logvar(eta)[0],
    variance=lambda eta: -0.5 / eta[..., 1],
    natural_from_params=_gaussian_natural,
    log_density=_gaussian_log_density,
    in_domain=lambda eta: eta[..., 1] < 0,
    domain="eta2 = -1/(2 s^2) < 0",
    support=(-math.inf, math.inf),
    log_affinity=_gaussian_log_affinity,
)
"""Univariate Gaussian per coordinate; ``natural_from_params(mu, logvar)``."""


# --------------------------------------------------------------------------------------------------
# Exponential: eta = -rate, T(z) = z, h(z) = 1{z >= 0}, A = -log(-eta)  (the example of HEL A.2)
# --------------------------------------------------------------------------------------------------


def _exponential_natural(rate) -> Tensor:
    """``eta = -rate`` for ``Exp(rate)``, rate > 0."""
    rate = _as_float(rate)
    _require("exponential", torch.isfinite(rate) & (rate > 0), "rate must be finite and > 0")
    return -rate


def _exponential_log_density(z: Tensor, eta: Tensor) -> Tensor:
    """``log(rate) - rate z`` on ``z >= 0``, ``-inf`` below."""
    inside = z >= 0
    return torch.where(inside, torch.log(-eta) + eta * torch.where(inside, z, 0.0), -math.inf)


EXPONENTIAL = ExpFamily(
    name="exponential",
    param_shape=(),
    log_partition=lambda eta: -torch.log(-eta),
    mean=lambda eta: -1.0 / eta,
    variance=lambda eta: eta.pow(-2),
    natural_from_params=_exponential_natural,
    log_density=_exponential_log_density,
    in_domain=lambda eta: eta < 0,
    domain="eta = -rate < 0",
    support=(0.0, math.inf),
)
"""``Exp(rate)`` per coordinate; ``S_ij = 2 sqrt(a_i a_j) / (a_i + a_j)``, ``eta_ij = -(a_i + a_j)/2``."""


# --------------------------------------------------------------------------------------------------
# Gamma: eta = (k - 1, -rate), T(z) = (log z, z), h(z) = 1{z > 0}, A = lgamma(k) - k log(rate)
# --------------------------------------------------------------------------------------------------


def _gamma_shape_rate(eta: Tensor) -> tuple[Tensor, Tensor]:
    """``(k, rate) = (eta1 + 1, -eta2)``."""
    return eta[..., 0] + 1.0, -eta[..., 1]


def _gamma_log_partition(eta: Tensor) -> Tensor:
    """``A(eta) = lgamma(eta1 + 1) - (eta1 + 1) log(-eta2)``."""
    k, rate = _gamma_shape_rate(eta)
    return torch.lgamma(k) - k * torch.log(rate)


def _gamma_natural(shape, rate) -> Tensor:
    """``(k - 1, -rate)`` for ``Gamma(shape k, rate)``, both > 0."""
    shape, rate = _as_float(shape), _as_float(rate)
    _require("gamma", torch.isfinite(shape) & (shape > 0), "shape must be finite and > 0")
    _require("gamma", torch.isfinite(rate) & (rate > 0), "rate must be finite and > 0")
    return torch.stack(torch.broadcast_tensors(shape - 1.0, -rate), dim=-1)


def _gamma_log_density(z: Tensor, eta: Tensor) -> Tensor:
    """``(k - 1) log z - rate z - A`` on ``z >= 0`` (``xlogy`` makes ``k = 1`` at ``z = 0`` exact)."""
    inside = z >= 0
    zs = torch.where(inside, z, 1.0)
    log_q = torch.xlogy(eta[..., 0], zs) + eta[..., 1] * zs - _gamma_log_partition(eta)
    return torch.where(inside, log_q, -math.inf)


def _gamma_mean(eta: Tensor) -> Tensor:
    k, rate = _gamma_shape_rate(eta)
    return k / rate


def _gamma_variance(eta: Tensor) -> Tensor:
    k, rate = _gamma_shape_rate(eta)
    return k / rate.pow(2)


GAMMA = ExpFamily(
    name="gamma",
    param_shape=(2,),
    log_partition=_gamma_log_partition,
    mean=_gamma_mean,
    variance=_gamma_variance,
    natural_from_params=_gamma_natural,
    log_density=_gamma_log_density,
    in_domain=lambda eta: (eta[..., 0] > -1) & (eta[..., 1] < 0),
    domain="eta1 = k - 1 > -1 and eta2 = -rate < 0",
    support=(0.0, math.inf),
)
"""``Gamma(k, rate)`` per coordinate, both parameters free; pairs have ``k_ij = (k_i + k_j)/2``."""


# --------------------------------------------------------------------------------------------------
# Poisson: eta = log(rate), T(z) = z, h(z) = 1 / z! on z = 0, 1, 2, ..., A = exp(eta)
# --------------------------------------------------------------------------------------------------


def _poisson_natural(rate) -> Tensor:
    """``eta = log(rate)`` for ``Poisson(rate)``, rate > 0."""
    rate = _as_float(rate)
    _require("poisson", torch.isfinite(rate) & (rate > 0), "rate must be finite and > 0")
    return torch.log(rate)


def _poisson_log_density(z: Tensor, eta: Tensor) -> Tensor:
    """Log pmf ``z eta - exp(eta) - log z!`` on the non-negative integers, ``-inf`` elsewhere."""
    inside = (z >= 0) & (z == torch.floor(z))
    zs = torch.where(inside, z, 0.0)
    return torch.where(inside, zs * eta - torch.exp(eta) - torch.lgamma(zs + 1.0), -math.inf)


def _poisson_log_affinity(eta_i: Tensor, eta_j: Tensor) -> Tensor:
    """``log S_ij = sqrt(r_i r_j) - (r_i + r_j)/2 = -(sqrt(r_i) - sqrt(r_j))^2 / 2``, without cancellation."""
    return -0.5 * (torch.exp(0.5 * eta_i) - torch.exp(0.5 * eta_j)).pow(2)


POISSON = ExpFamily(
    name="poisson",
    param_shape=(),
    log_partition=torch.exp,
    mean=torch.exp,
    variance=torch.exp,
    natural_from_params=_poisson_natural,
    log_density=_poisson_log_density,
    in_domain=lambda eta: torch.ones_like(eta, dtype=torch.bool),
    domain="eta = log(rate), any real",
    support=(0.0, math.inf),
    discrete=True,
    log_affinity=_poisson_log_affinity,
)
"""``Poisson(rate)`` per coordinate; pairs are ``Poisson(sqrt(r_i r_j))``; the pool is a pmf."""

#: Name -> family, for configs and command lines.
FAMILIES: dict[str, ExpFamily] = {f.name: f for f in (GAUSSIAN, EXPONENTIAL, GAMMA, POISSON)}


# --------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------


def _check_eta(family: ExpFamily, eta: Tensor, event_dims: int) -> tuple[Tensor, int]:
    """Validate and upcast ``eta`` (M, *batch, *event, *param); return it and the number of batch dims."""
    if not isinstance(eta, Tensor):
        raise ValueError(f"{family.name}: eta must be a torch.Tensor; got {type(eta).__name__}")
    if event_dims < 0:
        raise ValueError(f"{family.name}: event_dims must be >= 0; got {event_dims}")
    n_par = len(family.param_shape)
    if eta.ndim < 1 + event_dims + n_par or tuple(eta.shape[eta.ndim - n_par :]) != family.param_shape:
        raise ValueError(
            f"{family.name}: eta must have shape (M, *batch, *event, *{family.param_shape}) with "
            f"{event_dims} event dim(s); got {tuple(eta.shape)}"
        )
    if eta.shape[0] < 1:
        raise ValueError(f"{family.name}: need at least one expert (M >= 1); got M = 0")
    eta = eta.to(compute_dtype(eta.dtype))
    finite = torch.isfinite(eta)
    if n_par:
        finite = finite.flatten(eta.ndim - n_par).all(-1)
    _require(family.name, finite, "non-finite natural parameter")
    _require(family.name, family.in_domain(eta), f"eta outside the natural parameter space ({family.domain})")
    return eta, eta.ndim - 1 - n_par - event_dims


def _log_weights(family: ExpFamily, weights, M: int, batch: tuple[int, ...], dtype, device) -> Tensor:
    """Log pooling weights ``log l_j`` (M, *batch), renormalised over the experts; uniform by default."""
    if weights is None:
        return torch.full((M, *batch), -math.log(M), dtype=dtype, device=device)
    w = torch.as_tensor(weights).to(dtype=dtype, device=device)
    if w.shape == (M,):
        w = w.reshape(M, *([1] * len(batch))).expand(M, *batch)
    if tuple(w.shape) != (M, *batch):
        raise ValueError(
            f"{family.name}: weights must have shape (M,) = ({M},) or (M, *batch) = {(M, *batch)}; "
            f"got {tuple(w.shape)}"
        )
    _require(family.name, torch.isfinite(w) & (w >= 0), "weights must be finite and non-negative")
    _require(family.name, w.sum(0) > 0, "weights must not all be zero")
    log_w = torch.log(w)
    return log_w - torch.logsumexp(log_w, dim=0, keepdim=True)


def _pairs(family: ExpFamily, eta: Tensor, event_dims: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pair indices, midpoints ``eta_ij`` (P, ..., *param) and ``log S_ij`` (P, *batch).

    ``log S_ij = sum_event [A(eta_ij) - A(eta_i)/2 - A(eta_j)/2]`` (HEL A.2 and eq. 7), or the family's
    closed form of the same bracket when it has one.
    """
    i, j = pair_indices(eta.shape[0], device=eta.device)
    eta_i, eta_j = eta[i], eta[j]
    mid = 0.5 * (eta_i + eta_j)  # inside the natural parameter space: it is convex
    if family.log_affinity is not None:
        log_s = family.log_affinity(eta_i, eta_j)
    else:
        a = family.log_partition
        log_s = a(mid) - 0.5 * a(eta_i) - 0.5 * a(eta_j)
    log_s = torch.clamp(log_s, max=0.0)  # S <= 1 by convexity of A; removes rounding above 0
    if event_dims:
        log_s = log_s.sum(tuple(range(-event_dims, 0)))
    return i, j, mid, log_s


def _log_component_weights(log_l: Tensor, i: Tensor, j: Tensor, log_s: Tensor) -> Tensor:
    """Unnormalised log weights (M + P, *batch): ``l_j^2`` for experts, ``2 l_i l_j S_ij`` for pairs.

    Their sum is ``Z = sum_j l_j^2 + 2 sum_{i<j} l_i l_j S_ij`` (HEL eq. 6).
    """
    log_pair = math.log(2.0) + log_l[i] + log_l[j] + log_s
    return torch.cat([2.0 * log_l, log_pair], 0)


# --------------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------------


def pair_terms(family: ExpFamily, eta: Tensor, event_dims: int = 1) -> PairTerms:
    """``S_ij``, ``M_ij`` and ``V_ij`` of HEL A.2 for every pair ``i < j`` (for tests and plots).

    ``S_ij = exp(A(eta_ij) - A(eta_i)/2 - A(eta_j)/2)`` (a product over the event coordinates, HEL
    eq. 7), ``M_ij = S_ij E_{eta_ij}[z]`` and ``V_ij = S_ij E_{eta_ij}[z^2]`` per coordinate (HEL
    eqs. 15, 19 in the exponential-family form of A.2). ``M_ij`` and ``V_ij`` are returned as plain
    numbers and may underflow for far-apart experts; :func:`hellinger_expfam` never forms them.
    """
    eta, _ = _check_eta(family, eta, event_dims)
    i, j, mid, log_s = _pairs(family, eta, event_dims)
    s = torch.exp(log_s).reshape(*log_s.shape, *([1] * event_dims))  # (P, *batch, 1...)
    return PairTerms(i, j, log_s, s * family.mean(mid), s * family.second_moment(mid))


def hellinger_expfam(
    family: ExpFamily, eta: Tensor, weights: Tensor | None = None, event_dims: int = 1
) -> PooledMoments:
    """Hellinger aggregation of exponential-family experts: the moment-matched Hölder-1/2 pool.

    With ``Z = sum_j l_j^2 + 2 sum_{i<j} l_i l_j S_ij`` (HEL eq. 6),

    * ``mean = (sum_j l_j^2 E_j[z] + 2 sum_{i<j} l_i l_j M_ij) / Z`` (HEL eq. 16),
    * ``E[z^2] = (sum_j l_j^2 E_j[z^2] + 2 sum_{i<j} l_i l_j V_ij) / Z`` (HEL eq. 20),

    with ``S_ij``, ``M_ij = S_ij E_{eta_ij}[z]`` and ``V_ij = S_ij E_{eta_ij}[z^2]`` from HEL A.2. These
    are the moments of the mixture with components ``q_{eta_j}`` (weight ``l_j^2 / Z``) and
    ``q_{eta_ij}`` (weight ``2 l_i l_j S_ij / Z``), so the variance is evaluated by the law of total
    variance ``sum_k w_k var_k + sum_k w_k (m_k - mean)^2``, without the cancellation of
    ``E[z^2] - mean^2``. The weights stay in log space (``log S_ij`` summed over the event dims), so
    any latent size stays finite. Pairs are vectorised with :func:`torch.triu_indices`: O(M^2), no loop.

    For :data:`GAUSSIAN` this is :func:`poolvae.aggregators.hellinger`; for a product family the result
    is the per-coordinate (diagonal) moment match, as HEL Step 5 does for Gaussians. There is no mask:
    give an unobserved expert weight 0 (its parameters must still be valid), which removes it exactly.

    Args:
        family: the experts' family, e.g. :data:`EXPONENTIAL`.
        eta: natural parameters, shape (M, *batch, *event, *family.param_shape).
        weights: non-negative pooling weights ``l``, shape (M,) or (M, *batch), renormalised over the
            experts; uniform ``1/M`` by default (HEL Step 6). Gradients flow to them.
        event_dims: number of trailing coordinate dims forming one latent vector (1: the D of (M, B, D)).

    Returns:
        :class:`PooledMoments` ``(mean, var)``, each of shape (*batch, *event).
    """
    eta, n_batch = _check_eta(family, eta, event_dims)
    M = eta.shape[0]
    batch = tuple(eta.shape[1 : 1 + n_batch])
    log_l = _log_weights(family, weights, M, batch, eta.dtype, eta.device)  # (M, *batch)
    i, j, mid, log_s = _pairs(family, eta, event_dims)
    log_w = _log_component_weights(log_l, i, j, log_s)  # (K, *batch), K = M + P
    w = torch.softmax(log_w, dim=0).reshape(*log_w.shape, *([1] * event_dims))  # (K, *batch, 1...)
    means = torch.cat([family.mean(eta), family.mean(mid)], 0)  # (K, *batch, *event)
    variances = torch.cat([family.variance(eta), family.variance(mid)], 0)
    mean = (w * means).sum(0)
    var = (w * (variances + (means - mean).pow(2))).sum(0)
    return PooledMoments(mean, var)


def holder_half_log_density_expfam(
    family: ExpFamily, eta: Tensor, weights: Tensor | None, z: Tensor, event_dims: int = 1
) -> Tensor:
    """Exact log density (log pmf if discrete) of the normalised Hölder-1/2 pool (HEL eq. 3) at ``z``.

    ``log q(z) = 2 log sum_j l_j sqrt(q_j(z)) - log Z`` with ``Z`` from HEL eq. 6 in closed form, where
    ``q_j(z)`` is the product over the event coordinates. ``z`` has shape (*sample, *batch, *event);
    returns (*sample, *batch). ``-inf`` off the support.
    """
    eta, n_batch = _check_eta(family, eta, event_dims)
    M = eta.shape[0]
    batch = tuple(eta.shape[1 : 1 + n_batch])
    n_coord = n_batch + event_dims
    z = torch.as_tensor(z).to(dtype=eta.dtype, device=eta.device)
    if z.ndim < n_coord:
        raise ValueError(
            f"{family.name}: z must have shape (*sample, *batch, *event) with {n_coord} trailing dims "
            f"matching {tuple(eta.shape[1 : 1 + n_coord])}; got {tuple(z.shape)}"
        )
    log_l = _log_weights(family, weights, M, batch, eta.dtype, eta.device)  # (M, *batch)
    i, j, _, log_s = _pairs(family, eta, event_dims)
    log_z = torch.logsumexp(_log_component_weights(log_l, i, j, log_s), dim=0)  # (*batch,)
    log_q = family.log_density(z.unsqueeze(z.ndim - n_coord), eta)  # (*sample, M, *batch, *event)
    if event_dims:
        log_q = log_q.sum(tuple(range(-event_dims, 0)))  # (*sample, M, *batch)
    root = torch.logsumexp(log_l + 0.5 * log_q, dim=-(n_batch + 1))  # log sum_j l_j sqrt(q_j)
    return 2.0 * root - log_z


def holder_half_density_expfam(
    family: ExpFamily, eta: Tensor, weights: Tensor | None, z: Tensor, event_dims: int = 1
) -> Tensor:
    """``(sum_j l_j sqrt(q_j(z)))^2 / Z`` pointwise: :func:`holder_half_log_density_expfam`, exponentiated."""
    return torch.exp(holder_half_log_density_expfam(family, eta, weights, z, event_dims))
