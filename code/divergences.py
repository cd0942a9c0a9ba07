"""Divergences and overlaps between the Gaussians that experts and pooled posteriors are made of.

Closed forms where they exist (KL between diagonal Gaussians, the Bhattacharyya coefficient,
the squared 2-Wasserstein distance between Gaussians) and Monte Carlo where they do not (KL from a
Gaussian mixture). Overlaps are products over latent dimensions, so they are computed and returned in
log space: at D = 512 a product of per-dimension coefficients of 0.9 is 1e-24, below float16 and
close to the float32 floor.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .distributions import DiagGaussian, GaussianMixture


def kl_diag_gaussians(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """``KL(N(mu_q, var_q) || N(mu_p, var_p))`` for diagonal Gaussians, summed over the last dim.

    ``0.5 * sum_d [logvar_p - logvar_q + (var_q + (mu_q - mu_p)^2) / var_p - 1]``.
    """
    return 0.5 * (
        logvar_p - logvar_q + (torch.exp(logvar_q) + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1.0
    ).sum(-1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` in closed form, summed over the last dim.

    ``0.5 * sum_d [mu^2 + exp(logvar) - 1 - logvar]``: the KL term of a VAE with a standard prior.
    """
    return 0.5 * (mu.pow(2) + torch.exp(logvar) - 1.0 - logvar).sum(-1)


def kl_mixture_mc(
    q: GaussianMixture,
    log_p,
    n: int = 1000,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Monte Carlo estimate of ``KL(q || p)`` for a Gaussian mixture ``q``, shape (B,).

    No closed form exists for a mixture. The estimate is stratified over components,
    ``sum_k w_k E_{q_k}[log q(z) - log p(z)]``, with ``n`` draws per component; ``log_p`` is a
    callable mapping z (..., B, D) to log densities (..., B), for example
    ``DiagGaussian(...).log_prob``. Its standard error shrinks like ``1 / sqrt(n)``.
    """
    z = q.stratified_rsample(n, generator=generator)  # (K, n, B, D)
    per_comp = (q.log_prob(z) - log_p(z)).mean(1)  # (K, B)
    w = q.weights
    return (w * torch.where(w > 0, per_comp, torch.zeros_like(per_comp))).sum(0)


def log_bhattacharyya(mu_i: Tensor, logvar_i: Tensor, mu_j: Tensor, logvar_j: Tensor) -> Tensor:
    """Log Bhattacharyya coefficient ``log S_ij`` of two diagonal Gaussians (HELVAE eq. 11).

    ``S_ij = int sqrt(q_i q_j) dz = prod_d sqrt(2 s_i s_j / (s_i^2 + s_j^2))
    exp(-(mu_i - mu_j)^2 / (4 (s_i^2 + s_j^2)))``; in log space the product is a sum over the last
    dim, which stays finite for any D.
    """
    var_sum = torch.exp(logvar_i) + torch.exp(logvar_j)
    log_ratio = math.log(2.0) + 0.5 * (logvar_i + logvar_j) - torch.log(var_sum)
    return (0.5 * log_ratio - (mu_i - mu_j).pow(2) / (4.0 * var_sum)).sum(-1)


def hellinger_distance(mu_i: Tensor, logvar_i: Tensor, mu_j: Tensor, logvar_j: Tensor) -> Tensor:
    """Hellinger distance ``sqrt(1 - S_ij)`` between two diagonal Gaussians, in [0, 1]."""
    s = torch.exp(log_bhattacharyya(mu_i, logvar_i, mu_j, logvar_j))
    return torch.sqrt(torch.clamp(1.0 - s, min=0.0))


def sqrtm_psd(a: Tensor) -> Tensor:
    """Principal square root of symmetric positive semi-definite matrices (..., D, D), by eigh."""
    evals, evecs = torch.linalg.eigh(a)
    return (evecs * torch.sqrt(torch.clamp(evals, min=0.0)).unsqueeze(-2)) @ evecs.transpose(-1, -2)


def w2_squared_gaussians(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between full-covariance Gaussians (barycentric paper eq. 1).

    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1^{1/2} cov2 cov1^{1/2})^{1/2})``.
    Shapes: means (..., D), covariances (..., D, D); returns (...).
    """
    r1 = sqrtm_psd(cov1)
    cross = sqrtm_psd(r1 @ cov2 @ r1)
    trace = torch.diagonal(cov1 + cov2 - 2.0 * cross, dim1=-2, dim2=-1).sum(-1)
    return (mu1 - mu2).pow(2).sum(-1) + trace


def w2_squared_diag(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    """Squared 2-Wasserstein distance between diagonal Gaussians: ``|mu1-mu2|^2 + |s1-s2|^2``."""
    s1, s2 = torch.exp(0.5 * logvar1), torch.exp(0.5 * logvar2)
    return ((mu1 - mu2).pow(2) + (s1 - s2).pow(2)).sum(-1)


def kl_to_standard_normal(q: DiagGaussian | GaussianMixture, n: int = 1000, generator=None) -> Tensor:
    """KL of a pooled posterior to ``N(0, I)``: closed form for a Gaussian, Monte Carlo for a mixture."""
    if isinstance(q, DiagGaussian):
        return kl_standard_normal(q.mu, q.logvar)
    prior = DiagGaussian(torch.zeros_like(q.mu[0]), torch.zeros_like(q.logvar[0]))
    return kl_mixture_mc(q, prior.log_prob, n=n, generator=generator)
