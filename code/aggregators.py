"""Every pooling rule of the two papers, as small pure functions over stacked Gaussian experts.

Contract (DESIGN.md): experts are stacked on dim 0, ``mu`` and ``logvar`` of shape (M, B, D), with a
boolean ``mask`` of shape (M, B) that is True where modality m of row b is observed. Every rule

* pools only the observed experts (pooling with a mask equals pooling the observed experts alone);
* returns the prior ``N(0, I)`` for a row in which nothing is observed;
* accepts optional non-negative weights of shape (M,) or (M, B), renormalised over the observed
  experts (uniform by default), so learnable weights are a softmax away;
* computes in float32 (or float64 if given) even for float16/bfloat16 input, and takes overlaps in
  log space, so any D and log-variances anywhere in [-30, 30] stay finite;
* checks its input for NaN/inf and names itself in the error (``set_checks(False)`` turns the check
  off for speed); :func:`hellinger` also checks its documented range (``|logvar| <= 40``, ``|mu| <= 1e15``);
* takes a mask of bools, or of numbers that are exactly 0 or 1; any other value is an error.

Gaussian pools (:func:`poe`, :func:`hellinger`, :func:`wb`, :func:`code`) return a
:class:`~poolvae.distributions.DiagGaussian`; mixture pools (:func:`moe`, :func:`mopoe`,
:func:`mwb`, :func:`mohel`, :func:`mocode`, :func:`holder_half_mixture`) return a
:class:`~poolvae.distributions.GaussianMixture`. Equation numbers refer to the HELVAE paper
("HEL eq.") and the barycentric paper ("WB eq.").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from .distributions import DiagGaussian, GaussianMixture
from .divergences import sqrtm_psd

_CHECKS = {"finite": True}


def set_checks(enabled: bool) -> None:
    """Turn the non-finite input check of every pooling rule on or off (on by default)."""
    _CHECKS["finite"] = bool(enabled)


@contextmanager
def checks(enabled: bool):
    """Context manager form of :func:`set_checks`; restores the previous setting on exit."""
    previous = _CHECKS["finite"]
    set_checks(enabled)
    try:
        yield
    finally:
        set_checks(previous)


# --------------------------------------------------------------------------------------------------
# Input handling shared by every rule
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Experts:
    """Validated experts: unobserved entries zeroed, rows with nothing observed marked ``empty``.

    ``log_lam`` holds the log pooling weights, normalised over the observed experts of each row, and
    ``-inf`` for unobserved ones. In an empty row expert 0 is replaced by the prior ``N(0, I)`` with
    weight 1, so every rule returns the prior there without a special case and without NaN
    gradients (see :func:`_prepare`).
    """

    mu: Tensor  # (M, B, D)
    logvar: Tensor  # (M, B, D)
    mask: Tensor  # (M, B) bool, True = observed (after the empty-row substitution)
    log_lam: Tensor  # (M, B)
    empty: Tensor  # (B,) bool, rows with nothing observed


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype pooling computes in: float64 is kept, everything else (float16, bfloat16, float32) is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _prepare(
    rule: str,
    mu: Tensor,
    logvar: Tensor,
    mask: Tensor | None,
    weights: Tensor | None,
    substitute_prior: bool = True,
) -> Experts:
    """Validate shapes and values, upcast, zero unobserved experts and normalise the weights.

    With ``substitute_prior`` an empty row gets the prior ``N(0, I)`` as its single observed expert.
    Zeroing unobserved entries matters: they are multiplied by weight 0 downstream, and ``0 * inf``
    or ``0 * nan`` would otherwise leak into outputs and gradients.
    """
    if mu.ndim != 3 or logvar.shape != mu.shape:
        raise ValueError(
            f"{rule}: expected mu and logvar of the same shape (M, B, D); "
            f"got mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)}"
        )
    M, B, _ = mu.shape
    if M < 1:
        raise ValueError(f"{rule}: need at least one expert (M >= 1); got M = 0")
    if mask is None:
        mask = torch.ones(M, B, dtype=torch.bool, device=mu.device)
    if mask.shape != (M, B):
        raise ValueError(f"{rule}: mask must have shape (M, B) = {(M, B)}; got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:  # 0/1 numbers are accepted; anything else (0.3, 2, NaN) is not silently True
        stray = mask[(mask != 0) & (mask != 1)]
        if stray.numel():
            raise ValueError(f"{rule}: mask must be bool or hold only 0 and 1 (True = observed); "
                             f"got {stray.flatten()[0].item()!r} ({stray.numel()} such entries)")
    mask = mask.to(torch.bool)
    dtype = compute_dtype(mu.dtype)
    mu, logvar = mu.to(dtype), logvar.to(dtype)
    if _CHECKS["finite"]:
        for name, x in (("mu", mu), ("logvar", logvar)):
            bad = ~torch.isfinite(x) & mask.unsqueeze(-1)
            if bool(bad.any()):
                raise ValueError(
                    f"{rule}: {int(bad.sum())} non-finite value(s) in {name} of observed experts; "
                    "check the encoder outputs (or call poolvae.aggregators.set_checks(False) to skip)"
                )
    empty = ~mask.any(0)  # (B,)
    observed = mask.unsqueeze(-1)
    mu = torch.where(observed, mu, torch.zeros_like(mu))
    logvar = torch.where(observed, logvar, torch.zeros_like(logvar))
    if substitute_prior and bool(empty.any()):
        mask = mask.clone()
        mask[0] = mask[0] | empty
    log_lam = _log_weights(rule, weights, mask, dtype)
    return Experts(mu, logvar, mask, log_lam, empty)


def _log_weights(rule: str, weights: Tensor | None, mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Log weights (M, B), normalised over the observed experts of each row, -inf elsewhere."""
    M, B = mask.shape
    if weights is None:
        logits = torch.zeros(M, B, dtype=dtype, device=mask.device)
    else:
        w = weights.to(dtype)
        if w.shape == (M,):
            w = w.unsqueeze(-1).expand(M, B)
        if w.shape != (M, B):
            raise ValueError(f"{rule}: weights must have shape (M,) or (M, B); got {tuple(weights.shape)}")
        if _CHECKS["finite"] and bool((~torch.isfinite(w) | (w < 0)).any()):
            raise ValueError(f"{rule}: weights must be finite and non-negative")
        logits = torch.log(w)
    logits = torch.where(mask, logits, torch.full_like(logits, -math.inf))
    return logits - torch.logsumexp(logits, dim=0, keepdim=True)


def _prior_like(x: Tensor) -> DiagGaussian:
    """The standard normal prior with the batch shape of ``x`` (B, D)."""
    return DiagGaussian(torch.zeros_like(x), torch.zeros_like(x))


# --------------------------------------------------------------------------------------------------
# Product of experts (log-linear pooling, reverse-KL barycenter)
# --------------------------------------------------------------------------------------------------


def poe(
    mu: Tensor,
    logvar: Tensor,
    mask: Tensor | None = None,
    weights: Tensor | None = None,
    prior_expert: bool = False,
) -> DiagGaussian:
    """Product of Gaussian experts ``prod_j q_j^{w_j}`` (MVAE; HEL sec. 3.2 log-linear pooling).

    Precisions add: ``1/s^2 = sum_j w_j / s_j^2`` and ``mu = s^2 sum_j w_j mu_j / s_j^2``. The sum of
    precisions is taken as a log-sum-exp of ``log w_j - logvar_j``, so a log-variance of -30 next to
    one of +30 neither overflows nor loses the small term.

    Unlike the other rules, the default exponents are all 1 (the plain product used by MVAE), not
    1/M; pass ``weights`` to get a weighted log-linear pool (exponents are used as given, not
    renormalised; with exponents 1/M the mean is the same and the variance M times larger).
    ``prior_expert=True`` multiplies in ``N(0, I)`` as an extra expert, as MVAE does.
    """
    e = _prepare("poe", mu, logvar, mask, None, substitute_prior=not prior_expert)
    M, B, D = e.mu.shape
    if weights is None:
        log_w = torch.zeros(M, B, dtype=e.mu.dtype, device=e.mu.device)
    else:
        w = weights.to(e.mu.dtype)
        w = w.unsqueeze(-1).expand(M, B) if w.shape == (M,) else w
        if w.shape != (M, B) or (_CHECKS["finite"] and bool((~torch.isfinite(w) | (w < 0)).any())):
            raise ValueError("poe: weights must be finite, non-negative, of shape (M,) or (M, B)")
        log_w = torch.log(w)
        log_w = torch.where(e.empty.unsqueeze(0), torch.zeros_like(log_w), log_w)  # the prior: exponent 1
    log_w = torch.where(e.mask, log_w, torch.full_like(log_w, -math.inf)).unsqueeze(-1)  # (M, B, 1)
    log_prec = log_w - e.logvar  # (M, B, D)
    mu_e = e.mu
    if prior_expert:
        zeros = torch.zeros_like(e.mu[:1])
        log_prec = torch.cat([log_prec, zeros], 0)  # the prior: precision 1
        mu_e = torch.cat([mu_e, zeros], 0)
    logvar_out = -torch.logsumexp(log_prec, dim=0)  # (B, D)
    mu_out = (torch.exp(log_prec + logvar_out) * mu_e).sum(0)
    return DiagGaussian(mu_out, logvar_out)


# --------------------------------------------------------------------------------------------------
# Mixtures (linear pooling, forward-KL barycenter) and mixtures over subsets
# --------------------------------------------------------------------------------------------------


def moe(mu: Tensor, logvar: Tensor, mask: Tensor | None = None, weights: Tensor | None = None) -> GaussianMixture:
    """Mixture of experts ``sum_j w_j q_j`` (MMVAE; HEL sec. 3.2 linear pooling; WB Theorem 1).

    One component per expert; unobserved experts get weight 0. Sample it with
    :meth:`GaussianMixture.stratified_rsample` for MMVAE's stratified estimator.
    """
    e = _prepare("moe", mu, logvar, mask, weights)
    return GaussianMixture(e.mu, e.logvar, e.log_lam)


@cache
def _subset_table(M: int) -> tuple[tuple[int, ...], ...]:
    """All non-empty subsets of range(M), ordered by size, then lexicographically."""
    return tuple(s for k in range(1, M + 1) for s in itertools.combinations(range(M), k))


def subsets(M: int, device=None) -> Tensor:
    """Membership matrix of all ``2^M - 1`` non-empty subsets of M modalities, shape (2^M - 1, M).

    Row order: by subset size, then lexicographic, so rows 0..M-1 are the singletons.
    """
    return _subset_matrix(M).to(device, copy=True)


@cache
def _subset_matrix(M: int) -> Tensor:
    """Cached CPU membership matrix behind :func:`subsets`, built from bit masks (no per-row indexing)."""
    codes = torch.tensor([sum(1 << i for i in s) for s in _subset_table(M)], dtype=torch.int64)
    return ((codes.unsqueeze(-1) >> torch.arange(M)) & 1).to(torch.bool)


def mixture_of_pools(
    pool: Callable[..., DiagGaussian],
    mu: Tensor,
    logvar: Tensor,
    mask: Tensor | None = None,
    subset_weights: Tensor | None = None,
    members: Tensor | None = None,
    rule: str = "mixture_of_pools",
    **pool_kwargs,
) -> GaussianMixture:
    """Mixture over subsets of a Gaussian pool: ``sum_k w_k pool({q_j : j in S_k})``.

    The generic form of MoPoE (Sutter et al., 2021), MWB-VAE (WB Remark 3), MoHELVAE and CoDEVAE's
    mixture. A subset is a component of row b only if all its members are observed in row b, so the
    mixture runs over the non-empty subsets of the observed modalities; the weights are uniform over
    those (or ``subset_weights``, shape (K,), renormalised over them). All subsets are pooled in one
    vectorised call of ``pool`` on a (M, K*B, D) batch: cost O(2^M) in memory and time, by design.

    Args:
        pool: a Gaussian rule with the signature of :func:`poe` / :func:`hellinger`.
        members: (K, M) bool subset matrix; all non-empty subsets (:func:`subsets`) by default.
        subset_weights: optional non-negative (K,) weights, e.g. CoDEVAE's learned subset weights.
        **pool_kwargs: passed on to ``pool`` (``weights`` of shape (M,) included).
    """
    e = _prepare(rule, mu, logvar, mask, None)
    M, B, D = e.mu.shape
    members = subsets(M, device=e.mu.device) if members is None else members.to(torch.bool)
    K = members.shape[0]
    if members.shape != (K, M) or not bool(members.any(1).all()):
        raise ValueError(f"{rule}: members must be a (K, M) bool matrix of non-empty subsets")
    # valid[k, b]: every member of subset k is observed in row b
    valid = ~(members.unsqueeze(-1) & ~e.mask.unsqueeze(0)).any(1)  # (K, B)
    sub_mask = (members.T.unsqueeze(-1) & (valid & ~e.empty).unsqueeze(0)).reshape(M, K * B)  # (M, K*B)
    mu_rep = e.mu.unsqueeze(1).expand(M, K, B, D).reshape(M, K * B, D)
    lv_rep = e.logvar.unsqueeze(1).expand(M, K, B, D).reshape(M, K * B, D)
    with checks(False):  # validated above; re-checking the 2^M - 1 copies would cost 2^M - 1 times as much
        pooled = pool(mu_rep, lv_rep, sub_mask, **pool_kwargs)  # invalid subsets give the prior, weight 0
    if subset_weights is None:
        logits = torch.zeros(K, B, dtype=e.mu.dtype, device=e.mu.device)
    else:
        if subset_weights.shape != (K,):
            raise ValueError(f"{rule}: subset_weights must have shape (K,) = ({K},)")
        logits = torch.log(subset_weights.to(e.mu.dtype)).unsqueeze(-1).expand(K, B)
    logits = torch.where(valid, logits, torch.full_like(logits, -math.inf))
    log_w = logits - torch.logsumexp(logits, dim=0, keepdim=True)
    return GaussianMixture(pooled.mu.reshape(K, B, D), pooled.logvar.reshape(K, B, D), log_w)


#: Where MoPoE multiplies the prior N(0, I) into a subset's PoE: ``"none"``, ``"full"`` (the subset of all M
#: modalities only) or ``"all"`` (every subset).
MOPOE_PRIOR_EXPERT = ("none", "full", "all")


def times_standard_normal(q: DiagGaussian) -> DiagGaussian:
    """``q N(0, I)`` renormalised: the PoE of a diagonal Gaussian with the prior (precisions add, the prior's is 1)."""
    logvar = -torch.logaddexp(-q.logvar, torch.zeros_like(q.logvar))  # 1 / (1/s^2 + 1)
    return DiagGaussian(q.mu * torch.exp(logvar - q.logvar), logvar)


def mopoe(mu: Tensor, logvar: Tensor, mask: Tensor | None = None, prior_expert: bool | str = "none") -> GaussianMixture:
    """MoPoE (Sutter et al., 2021): uniform mixture of the PoE of every non-empty observed subset.

    ``prior_expert`` says where ``N(0, I)`` joins the product (:data:`MOPOE_PRIOR_EXPERT`). The authors' code
    (and ``multivae``) multiplies it into the PoE of the full set of M modalities only, ``"full"``, which is
    what :class:`poolvae.models.MultimodalVAE` trains by default; ``"none"`` is the plain MoPoE of the paper's
    equations, ``"all"`` (or ``True``) puts it in every subset's product.
    """
    where = ("all" if prior_expert else "none") if isinstance(prior_expert, bool) else prior_expert
    if where not in MOPOE_PRIOR_EXPERT:
        raise ValueError(f"mopoe: prior_expert must be one of {MOPOE_PRIOR_EXPERT}; got {prior_expert!r}")
    q = mixture_of_pools(poe, mu, logvar, mask, rule="mopoe", prior_expert=where == "all")
    if where != "full":
        return q
    # the full set is the last subset (subsets are ordered by size); its component exists where all M are observed
    full = times_standard_normal(DiagGaussian(q.mu[-1], q.logvar[-1]))
    return GaussianMixture(torch.cat([q.mu[:-1], full.mu[None]], 0), torch.cat([q.logvar[:-1], full.logvar[None]], 0),
                           q.log_weights)


# --------------------------------------------------------------------------------------------------
# Hölder pooling
# --------------------------------------------------------------------------------------------------


def holder_log_density(log_q: Tensor, alpha: float, weights: Tensor | None = None) -> Tensor:
    """Unnormalised log Hölder pool ``(1/alpha) log sum_j w_j q_j^alpha`` at given points (HEL sec. 3.2).

    ``log_q`` holds the experts' log densities at N points, shape (M, N); returns shape (N,).
    ``alpha = 0`` is the limit, the log-linear (geometric) pool ``sum_j w_j log q_j``; ``alpha = 1``
    the linear pool. Works for any densities, not only Gaussians: use it on grids or samples.
    Normalise with :func:`holder_pool_on_grid` (or importance sampling on samples).
    """
    M = log_q.shape[0]
    w = torch.full((M,), 1.0 / M, dtype=log_q.dtype) if weights is None else weights.to(log_q.dtype)
    w = w / w.sum()
    log_w = torch.log(w).reshape(M, *([1] * (log_q.ndim - 1)))
    if alpha == 0:
        return (w.reshape(log_w.shape) * log_q).sum(0)
    return torch.logsumexp(log_w + alpha * log_q, dim=0) / alpha


def holder_pool_on_grid(
    log_q: Tensor, alpha: float, cell_volume: float, weights: Tensor | None = None
) -> Tensor:
    """Normalised Hölder pool on a regular grid: log density at the grid points, shape (N,).

    ``log_q`` is (M, N), the experts' log densities at the N grid points, each cell of volume
    ``cell_volume``; the normaliser ``c`` is the Riemann sum of the unnormalised pool.
    """
    log_p = holder_log_density(log_q, alpha, weights)
    return log_p - (torch.logsumexp(log_p, dim=0) + math.log(cell_volume))


def pair_indices(M: int, device=None) -> tuple[Tensor, Tensor]:
    """Index vectors (i, j) of the ``M (M - 1) / 2`` unordered pairs with i < j."""
    idx = torch.triu_indices(M, M, offset=1, device=device)
    return idx[0], idx[1]


def _pair_terms(mu_i: Tensor, var_i: Tensor, lv_sum_i: Tensor, mu_j: Tensor, var_j: Tensor,
                lv_sum_j: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(mu_ij, var_ij, log S_ij)`` of the pairs of experts i and j (broadcast over their leading dims).

    With ``a = s_j^2 / (s_i^2 + s_j^2)`` (a sigmoid of the log-variance gap, so any gap is stable):
    ``mu_ij = mu_j + a (mu_i - mu_j)`` (HEL eq. 14), ``s_ij^2 = 2 a s_i^2`` (HEL eq. 18) and the log
    Bhattacharyya coefficient of HEL eq. 11 summed over the last dim,
    ``log S_ij = sum_d [(log 2 + (lv_i + lv_j)/2 - log(v_i + v_j)) / 2 - (mu_i - mu_j)^2 / (4 (v_i + v_j))]``,
    whose per-expert terms come summed over d already (``lv_sum``: (..., B) instead of (..., B, D)).
    """
    inv_sum = torch.reciprocal(var_i + var_j)  # 1 / (s_i^2 + s_j^2)
    diff = mu_i - mu_j
    a = var_j * inv_sum
    per_pair = (torch.log(inv_sum) - 0.5 * diff.pow(2) * inv_sum).sum(-1)
    log_s = 0.5 * per_pair + 0.25 * (lv_sum_i + lv_sum_j) + 0.5 * mu_i.shape[-1] * math.log(2.0)
    return torch.addcmul(mu_j, a, diff), 2.0 * a * var_i, log_s


def _pair_components(e: Experts) -> tuple[Tensor, Tensor, Tensor]:
    """Parameters of the pair components ``sqrt(q_i q_j) = S_ij N(mu_ij, s_ij^2)`` for all i < j.

    Returns ``(mu_ij, var_ij, log_S_ij)`` of shapes (P, B, D), (P, B, D), (P, B) with P = M (M - 1) / 2 in
    :func:`pair_indices` order (formulas: :func:`_pair_terms`). Pairs are gathered with ``index_select``
    (one ``index_add`` backward); no Python loop runs over pairs.
    """
    i, j = pair_indices(e.mu.shape[0], device=e.mu.device)
    var = torch.exp(e.logvar)
    lv_sum = e.logvar.sum(-1)  # (M, B)
    return _pair_terms(e.mu.index_select(0, i), var.index_select(0, i), lv_sum[i],
                       e.mu.index_select(0, j), var.index_select(0, j), lv_sum[j])


def _holder_half_log_weights(e: Experts, log_s: Tensor) -> Tensor:
    """Normalised log weights (M + P, B): ``l_j^2`` for singles, ``2 l_i l_j S_ij`` for pairs (HEL eq. 6)."""
    i, j = pair_indices(e.mu.shape[0], device=e.mu.device)
    log_w = torch.cat([2.0 * e.log_lam, math.log(2.0) + e.log_lam[i] + e.log_lam[j] + log_s], 0)
    return log_w - torch.logsumexp(log_w, dim=0, keepdim=True)


def holder_half_mixture(
    mu: Tensor, logvar: Tensor, mask: Tensor | None = None, weights: Tensor | None = None
) -> GaussianMixture:
    """The exact Hölder pool with alpha = 1/2 of diagonal Gaussian experts, as a Gaussian mixture.

    Claim: ``c (sum_j l_j sqrt(q_j))^2`` is the mixture with M + M(M-1)/2 components

    * ``q_j = N(mu_j, s_j^2)`` with weight proportional to ``l_j^2``;
    * ``N(mu_ij, s_ij^2)`` for each pair i < j with weight proportional to ``2 l_i l_j S_ij``,

    where ``s_ij^2 = 2 s_i^2 s_j^2 / (s_i^2 + s_j^2)``, ``mu_ij = (mu_i s_j^2 + mu_j s_i^2)/(s_i^2 + s_j^2)``
    (HEL eqs. 14, 18) and ``S_ij`` is the Bhattacharyya coefficient (HEL eq. 11).

    Proof: expanding the square, ``(sum_j l_j sqrt(q_j))^2 = sum_j l_j^2 q_j + 2 sum_{i<j} l_i l_j
    sqrt(q_i q_j)``. Per dimension, ``sqrt(q_i q_j)`` is ``exp`` of half the sum of two quadratics in
    z, i.e. a Gaussian kernel with precision ``(1/s_i^2 + 1/s_j^2)/2 = 1/s_ij^2`` and mean ``mu_ij``
    (completing the square, HEL eqs. 8-10); its integral is ``S_ij``, so ``sqrt(q_i q_j) = S_ij
    N(z; mu_ij, s_ij^2)``. Hence the square is a non-negative combination of normalised Gaussians with
    the stated weights, whose total ``sum_j l_j^2 + 2 sum_{i<j} l_i l_j S_ij`` is ``1/c`` (HEL eq. 6).
    Normalising the weights gives the pool exactly. (Tested pointwise against the grid pool.)

    Components are ordered singles first (j = 0..M-1), then pairs in :func:`pair_indices` order.
    """
    e = _prepare("holder_half_mixture", mu, logvar, mask, weights)
    mu_ij, _, log_s = _pair_components(e)
    log_w = _holder_half_log_weights(e, log_s)
    i, j = pair_indices(e.mu.shape[0], device=e.mu.device)
    lv_i, lv_j = e.logvar[i], e.logvar[j]
    log_var_ij = math.log(2.0) + lv_i + torch.nn.functional.logsigmoid(lv_j - lv_i)  # log(2 a s_i^2)
    return GaussianMixture(torch.cat([e.mu, mu_ij], 0), torch.cat([e.logvar, log_var_ij], 0), log_w)


#: The inputs :func:`hellinger` and :func:`hellinger_parts` accept from observed experts: log-variances within
#: +-HELLINGER_LOGVAR_LIMIT and means within +-HELLINGER_MU_LIMIT. Inside, the pool and its gradients are finite in
#: float32 (tested at the corners and inside: the squared spread of such means stays below float32's largest
#: number, and an overlap that underflows gives its pair weight 0, which is its value); the models clamp
#: log-variances to [-30, 30]. Beyond them the float32 pair terms overflow (exp(89) is inf: the pool was NaN;
#: means of 1e30 gave logvar = inf; gradients fail from |logvar| of about 50), so a ValueError names the limit.
HELLINGER_LOGVAR_LIMIT = 40.0
HELLINGER_MU_LIMIT = 1e15


def _check_hellinger_range(rule: str, e: Experts) -> None:
    """Raise a ValueError when an observed expert lies outside the range where the Hellinger terms are finite
    (unobserved experts are zeroed by :func:`_prepare`, so only observed ones can fail)."""
    for name, x, limit in (("logvar", e.logvar, HELLINGER_LOGVAR_LIMIT), ("mu", e.mu, HELLINGER_MU_LIMIT)):
        worst = float(x.detach().abs().max()) if x.numel() else 0.0
        if worst > limit:
            raise ValueError(f"{rule}: |{name}| of an observed expert is {worst:.3g}, beyond the accepted "
                             f"{limit:g} (poolvae.aggregators.HELLINGER_{name.upper()}_LIMIT): the float32 pair "
                             f"terms would overflow; clamp the encoder's outputs (the models clamp logvar to "
                             f"[-30, 30])")


#: Pair elements (M (M - 1) / 2 * B * D) from which :func:`hellinger` computes the pairs in blocks.
BLOCK_PAIRS_FROM = 2**18


def _pair_blocks(e: Experts) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
    """The pair components of :func:`_pair_components` in M - 1 blocks, and their log overlaps.

    Block i holds the pairs (i, j) for j > i, expert i broadcast against the slices ``[i + 1:]``: no
    gathered copies, and no temporary larger than (M - 1, B, D). Returns ``[(mu_ij, var_ij)]`` per block,
    each (M - 1 - i, B, D), and ``log S_ij`` (P, B) in :func:`pair_indices` order (the blocks' order).
    """
    var = torch.exp(e.logvar)
    lv_sum = e.logvar.sum(-1)  # (M, B)
    comps, log_s = [], []
    for i in range(e.mu.shape[0] - 1):
        mu_ij, var_ij, log_s_i = _pair_terms(e.mu[i], var[i], lv_sum[i], e.mu[i + 1:], var[i + 1:], lv_sum[i + 1:])
        comps.append((mu_ij, var_ij))
        log_s.append(log_s_i)
    return comps, torch.cat(log_s, 0) if comps else e.mu.new_zeros(0, e.mu.shape[1])


def hellinger(
    mu: Tensor, logvar: Tensor, mask: Tensor | None = None, weights: Tensor | None = None
) -> DiagGaussian:
    """Hellinger aggregation: the moment-matched Hölder-1/2 pool (HEL eqs. 16 and 20).

    ``mu~ = (sum_j l_j^2 mu_j + 2 sum_{i<j} l_i l_j S_ij mu_ij) / Z`` and
    ``s~^2 = (sum_j l_j^2 (mu_j^2 + s_j^2) + 2 sum_{i<j} l_i l_j S_ij (mu_ij^2 + s_ij^2)) / Z - mu~^2``
    with ``Z = sum_j l_j^2 + 2 sum_{i<j} l_i l_j S_ij``; uniform ``l_j = 1/M`` gives HEL Step 6.
    These are exactly the first two moments of :func:`holder_half_mixture`. The variance is
    evaluated as ``sum_k w_k s_k^2 + sum_k w_k (mu_k - mu~)^2`` over the mixture's components (the
    same number as eq. 20, without its cancellation between ``E[z^2]`` and ``mu~^2``, which in float32
    would wipe out a variance of exp(-30)). Cost O(M^2), no subsets. From :data:`BLOCK_PAIRS_FROM` pair
    elements (P B D) on, the pairs are computed in M - 1 broadcast blocks (:func:`_pair_blocks`; a loop
    over experts, not over pairs), which keeps every temporary at most (M - 1, B, D): gathering all pairs
    into (P, B, D) tensors was 1.6x to 5x slower on a CPU at B = 256, D = 512 (M = 3 to 12), most of it in
    page faults of the large temporaries. Below it, one gathered block (:func:`_pair_components`) is
    faster, since there the cost is in kernel launches, which blocks multiply. Pass ``weights``
    (e.g. a softmax of parameters) for learned pooling weights; gradients flow to them. Observed experts must
    have ``|logvar| <= 40`` and ``|mu| <= 1e15`` (:data:`HELLINGER_LOGVAR_LIMIT`), else a ValueError says so.
    """
    e = _prepare("hellinger", mu, logvar, mask, weights)
    if _CHECKS["finite"]:
        _check_hellinger_range("hellinger", e)
    M, B, D = e.mu.shape
    if M * (M - 1) // 2 * B * D >= BLOCK_PAIRS_FROM:
        comps, log_s = _pair_blocks(e)
    else:  # small: one gathered (P, B, D) block, fewer kernel launches
        mu_ij, var_ij, log_s = _pair_components(e)
        comps = [(mu_ij, var_ij)]
    w = torch.exp(_holder_half_log_weights(e, log_s)).unsqueeze(-1)  # (M + P, B, 1)
    w_single, w_pairs = w[:M], w[M:].split([len(m) for m, _ in comps], 0)
    mean = (w_single * e.mu).sum(0)
    for w_k, (mu_k, _) in zip(w_pairs, comps, strict=True):
        mean = mean + (w_k * mu_k).sum(0)
    var = (w_single * (torch.exp(e.logvar) + (e.mu - mean).square())).sum(0)
    for w_k, (mu_k, var_k) in zip(w_pairs, comps, strict=True):
        var = var + (w_k * (var_k + (mu_k - mean).square())).sum(0)
    return DiagGaussian(mean, torch.log(var))


@dataclass(frozen=True)
class HellingerParts:
    """The Hellinger pool split into what its single-expert and pair terms carry (:func:`hellinger_parts`).

    Shapes: ``mean``, ``var`` (B, D) are the pool's moments; ``pair_mass`` (B,) the share of the Hölder-1/2
    mixture's mass in its pair components (1 - the singles' share); ``var_within`` and ``var_between`` (B, D) split
    ``var`` into the components' own variances ``sum_k w_k s_k^2`` and the spread of their means
    ``sum_k w_k (mu_k - mean)^2``; ``log_overlap`` (P, B) the log Bhattacharyya coefficients of the pairs
    (:func:`pair_indices` order); ``expert_var`` (M, B, D) the experts' variances, zero where unobserved.
    """

    mean: Tensor
    var: Tensor
    pair_mass: Tensor
    var_within: Tensor
    var_between: Tensor
    log_overlap: Tensor
    expert_var: Tensor


def hellinger_parts(mu: Tensor, logvar: Tensor, mask: Tensor | None = None,
                    weights: Tensor | None = None) -> HellingerParts:
    """The moments of :func:`hellinger` with the share of each kind of term (HEL eqs. 6, 16, 20).

    The moment-matched pool is the mean and variance of the mixture ``sum_j w_j q_j + sum_{i<j} w_ij N(mu_ij,
    s_ij^2)`` (:func:`holder_half_mixture`) with ``w_ij`` proportional to ``2 l_i l_j S_ij``. When the experts are
    sharp and disagree, every ``S_ij`` underflows, the pairs get no weight (``pair_mass`` 0) and the pool is the
    moment match of the plain mixture of the experts, whose variance is then mostly ``var_between``, the
    disagreement of their means. Computed from the same mixture as :func:`hellinger` (checked to agree).
    """
    e = _prepare("hellinger_parts", mu, logvar, mask, weights)
    if _CHECKS["finite"]:
        _check_hellinger_range("hellinger_parts", e)
    M = e.mu.shape[0]
    mu_ij, var_ij, log_s = _pair_components(e)
    w = torch.exp(_holder_half_log_weights(e, log_s)).unsqueeze(-1)  # (M + P, B, 1)
    mus = torch.cat([e.mu, mu_ij], 0)
    variances = torch.cat([torch.exp(e.logvar), var_ij], 0)
    mean = (w * mus).sum(0)
    within = (w * variances).sum(0)
    between = (w * (mus - mean).square()).sum(0)
    expert_var = torch.exp(e.logvar) * e.mask.unsqueeze(-1).to(e.mu.dtype)
    return HellingerParts(mean, within + between, w[M:, :, 0].sum(0), within, between, log_s, expert_var)


def hellinger_summary(parts: HellingerParts, mask: Tensor | None = None) -> dict[str, float]:
    """Four numbers that say what a trained Hellinger pool does, averaged over a batch (logged per epoch).

    ``pool/pair_share``: mean share of the pooled mass in pair terms; ``pool/disagreement_share``: share of the
    pooled variance that is the spread of the components' means (mean over rows and dimensions);
    ``pool/log_overlap_median``: median log Bhattacharyya coefficient over pairs of observed experts;
    ``pool/expert_var_mean``: mean variance of the observed experts.
    """
    M, B = parts.expert_var.shape[:2]
    mask = torch.ones(M, B, dtype=torch.bool, device=parts.mean.device) if mask is None else mask.to(torch.bool)
    i, j = pair_indices(M, device=parts.mean.device)
    both = mask[i] & mask[j]  # (P, B)
    overlaps = parts.log_overlap[both]
    seen = mask.unsqueeze(-1).expand_as(parts.expert_var)
    return {
        "pool/pair_share": float(parts.pair_mass.mean()),
        "pool/disagreement_share": float((parts.var_between / parts.var).mean()),
        "pool/log_overlap_median": float(overlaps.median()) if overlaps.numel() else float("nan"),
        "pool/expert_var_mean": float(parts.expert_var[seen].mean()),
    }


# --------------------------------------------------------------------------------------------------
# Wasserstein barycenters
# --------------------------------------------------------------------------------------------------


def wb(mu: Tensor, logvar: Tensor, mask: Tensor | None = None, weights: Tensor | None = None) -> DiagGaussian:
    """Wasserstein barycenter of diagonal Gaussians (WB-VAE; WB eq. 7).

    For diagonal (commuting) covariances the Bures-Wasserstein fixed point has the closed form
    ``mu~ = sum_j l_j mu_j`` and ``s~ = sum_j l_j s_j`` (standard deviations, not variances, average).
    ``log s~`` is a log-sum-exp of ``log l_j + logvar_j / 2``.
    """
    e = _prepare("wb", mu, logvar, mask, weights)
    lam = torch.exp(e.log_lam).unsqueeze(-1)  # (M, B, 1)
    mu_out = (lam * e.mu).sum(0)
    log_std = torch.logsumexp(e.log_lam.unsqueeze(-1) + 0.5 * e.logvar, dim=0)
    return DiagGaussian(mu_out, 2.0 * log_std)


def bures_wasserstein_barycenter(
    mu: Tensor,
    cov: Tensor,
    weights: Tensor | None = None,
    iters: int = 200,
    tol: float = 1e-10,
) -> tuple[Tensor, Tensor]:
    """Wasserstein barycenter of full-covariance Gaussians by fixed-point iteration (WB eq. 6).

    The barycenter is Gaussian with mean ``sum_m l_m mu_m`` and the covariance ``S`` solving
    ``S = sum_m l_m (S^{1/2} C_m S^{1/2})^{1/2}``. Iterating that equation directly need not converge;
    we iterate the equivalent map of Álvarez-Esteban et al. (2016),
    ``S <- S^{-1/2} (sum_m l_m (S^{1/2} C_m S^{1/2})^{1/2})^2 S^{-1/2}``, which converges from any
    positive-definite start (here the weighted mean of the covariances) and has the same fixed points.

    Args:
        mu: means, shape (M, ..., D).
        cov: symmetric positive-definite covariances, shape (M, ..., D, D).
        weights: optional non-negative (M,) weights, renormalised; uniform by default.
        iters, tol: stop after ``iters`` steps or when the relative Frobenius change is below ``tol``.

    Returns:
        ``(mean, cov)`` of shapes (..., D) and (..., D, D), in float64 for accuracy.
    """
    if cov.shape[:-2] != mu.shape[:-1] or cov.shape[-1] != cov.shape[-2] or cov.shape[-1] != mu.shape[-1]:
        raise ValueError(f"bures_wasserstein_barycenter: mu (M, ..., D) and cov (M, ..., D, D) disagree: "
                         f"{tuple(mu.shape)} vs {tuple(cov.shape)}")
    M = mu.shape[0]
    mu, cov = mu.to(torch.float64), cov.to(torch.float64)
    lam = torch.full((M,), 1.0 / M, dtype=torch.float64) if weights is None else weights.to(torch.float64)
    lam = (lam / lam.sum()).reshape(M, *([1] * (cov.ndim - 1)))
    mean = (lam.squeeze(-1) * mu).sum(0)
    s = (lam * cov).sum(0)
    for _ in range(iters):
        evals, evecs = torch.linalg.eigh(s)
        root = (evecs * evals.sqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)
        inv_root = (evecs * evals.rsqrt().unsqueeze(-2)) @ evecs.transpose(-1, -2)
        t = (lam * sqrtm_psd(root @ cov @ root)).sum(0)
        s_new = inv_root @ t @ t @ inv_root
        s_new = 0.5 * (s_new + s_new.transpose(-1, -2))
        change = torch.linalg.matrix_norm(s_new - s) / torch.linalg.matrix_norm(s)
        s = s_new
        if bool((change < tol).all()):
            break
    return mean, s


# --------------------------------------------------------------------------------------------------
# Consensus of dependent experts
# --------------------------------------------------------------------------------------------------


def code(
    mu: Tensor,
    logvar: Tensor,
    mask: Tensor | None = None,
    rho: float | Tensor = 0.5,
) -> DiagGaussian:
    """Consensus of dependent experts (CoDE; Mancisidor et al., 2025), per latent dimension.

    The n observed experts' errors in dimension d have covariance ``Sigma = (s s^T) * R`` with
    ``R = (1 - rho) I + rho 1 1^T``. The consensus is the minimum-variance unbiased combination:
    weights ``Sigma^{-1} 1 / (1^T Sigma^{-1} 1)`` and variance ``1 / (1^T Sigma^{-1} 1)``. With
    ``u = 1/s`` and the Sherman-Morrison inverse ``R^{-1} = (I - rho/(1 + (n-1) rho) 1 1^T)/(1 - rho)``:

    ``1^T Sigma^{-1} 1 = (sum u^2 - g (sum u)^2) / (1 - rho)`` and
    ``Sigma^{-1} 1 = u * (u - g sum u) / (1 - rho)``, with ``g = rho / (1 + (n - 1) rho)``,

    so the cost is O(M) and no matrix is inverted. ``rho = 0`` gives the PoE without prior; ``rho``
    must lie in (-1/(M-1), 1) so that R is positive definite. Weights can be negative for rho > 0: a
    less precise expert that is correlated with a precise one is partly subtracted. The default 0.5
    is the default of the original implementation. ``rho`` may be a tensor broadcastable to (B, D).
    """
    e = _prepare("code", mu, logvar, mask, None)
    M = e.mu.shape[0]
    rho_t = torch.as_tensor(rho, dtype=e.mu.dtype, device=e.mu.device)
    lower = -1.0 / (M - 1) if M > 1 else -math.inf
    if bool(((rho_t <= lower) | (rho_t >= 1.0)).any()):
        raise ValueError(f"code: rho must lie in ({lower:g}, 1) for M = {M} experts; got {rho}")
    observed = e.mask.unsqueeze(-1).to(e.mu.dtype)  # (M, B, 1)
    n = observed.sum(0)  # (B, 1)
    u = torch.exp(-0.5 * e.logvar) * observed  # (M, B, D), 0 for unobserved
    su = u.sum(0)
    g = rho_t / (1.0 + (n - 1.0) * rho_t)
    total = (u.pow(2).sum(0) - g * su.pow(2)) / (1.0 - rho_t)  # 1^T Sigma^-1 1, (B, D)
    w = u * (u - g * su) / (1.0 - rho_t) / total  # (M, B, D), sums to 1 over observed
    return DiagGaussian((w * e.mu).sum(0), -torch.log(total))


# --------------------------------------------------------------------------------------------------
# Mixtures of barycenters
# --------------------------------------------------------------------------------------------------


def mwb(mu: Tensor, logvar: Tensor, mask: Tensor | None = None) -> GaussianMixture:
    """MWB-VAE (WB Remark 3): uniform mixture of the diagonal WB of every non-empty observed subset."""
    return mixture_of_pools(wb, mu, logvar, mask, rule="mwb")


def mohel(mu: Tensor, logvar: Tensor, mask: Tensor | None = None) -> GaussianMixture:
    """MoHELVAE (HEL sec. 4): uniform mixture of the Hellinger pool of every non-empty observed subset."""
    return mixture_of_pools(hellinger, mu, logvar, mask, rule="mohel")


def mocode(
    mu: Tensor,
    logvar: Tensor,
    mask: Tensor | None = None,
    subset_weights: Tensor | None = None,
    rho: float | Tensor = 0.5,
) -> GaussianMixture:
    """CoDEVAE's mixture: CoDE consensus of every non-empty observed subset, with optional subset weights."""
    return mixture_of_pools(code, mu, logvar, mask, subset_weights=subset_weights, rule="mocode", rho=rho)


#: Name -> pooling rule, for configs and command lines.
POOLS: dict[str, Callable[..., DiagGaussian | GaussianMixture]] = {
    "poe": poe,
    "moe": moe,
    "mopoe": mopoe,
    "hellinger": hellinger,
    "holder_half": holder_half_mixture,
    "wb": wb,
    "mwb": mwb,
    "mohel": mohel,
    "code": code,
    "mocode": mocode,
}


def get_pool(name: str) -> Callable[..., DiagGaussian | GaussianMixture]:
    """Look a pooling rule up by name; an unknown name lists the valid ones."""
    try:
        return POOLS[name]
    except KeyError:
        raise ValueError(f"unknown pooling rule {name!r}; valid: {', '.join(sorted(POOLS))}") from None


_COMPILED: dict[tuple[str, bool], Callable[..., DiagGaussian | GaussianMixture]] = {}


def compiled(name: str, dynamic: bool | None = None) -> Callable[..., DiagGaussian | GaussianMixture]:
    """The pooling rule ``name`` through ``torch.compile``: same numbers, fused kernels (opt-in).

    Eager PyTorch runs each elementwise operation of a rule as its own pass over memory, with a new
    temporary each time; Hellinger's pairs make that (M + M(M-1)/2) x D work several dozen times over.
    ``torch.compile`` (TorchInductor) fuses those passes; ``make bench`` times the compiled rules against
    the eager and the compiled PoE (``results/bench/aggregators.json``, key ``compiled``). The first call
    of each input shape compiles (seconds to a minute on a CPU; a C++ compiler must be installed), later
    calls reuse the kernels; with the input checks on, the check is a graph break and runs eagerly.
    Results are cached per ``(name, dynamic)``.
    """
    rule = get_pool(name)
    key = (name, bool(dynamic))
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(rule, dynamic=dynamic)
    return _COMPILED[key]
