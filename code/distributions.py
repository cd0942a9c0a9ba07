"""Containers for the joint posteriors that pooling rules return.

Every aggregator in :mod:`poolvae.aggregators` returns one of two things: a diagonal Gaussian
(PoE, Hellinger, WB, CoDE) or a finite mixture of diagonal Gaussians (MoE, MoPoE, MWB, MoHEL, the
exact Hölder-1/2 pool). This module defines both as small immutable records with the operations a
multimodal VAE needs: reparameterised sampling (plain and stratified), log densities, moments, and a
conversion to :mod:`torch.distributions` for anything else. Shapes follow the project's contract:
batch ``B`` and latent size ``D``; mixtures stack ``K`` components on dim 0, like experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

LOG_2PI = math.log(2.0 * math.pi)


def diag_gaussian_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Log density of ``N(mu, diag(exp(logvar)))`` at ``z``, summed over the last dim.

    All arguments broadcast against each other; the result drops the last dimension.
    """
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


@dataclass(frozen=True)
class DiagGaussian:
    """A batch of diagonal Gaussians ``N(mu, diag(exp(logvar)))``.

    Attributes:
        mu: means, shape (B, D).
        logvar: log-variances, shape (B, D).
    """

    mu: Tensor  # (B, D)
    logvar: Tensor  # (B, D)

    @property
    def var(self) -> Tensor:
        """Variances, shape (B, D)."""
        return torch.exp(self.logvar)

    @property
    def std(self) -> Tensor:
        """Standard deviations, shape (B, D)."""
        return torch.exp(0.5 * self.logvar)

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised samples: shape (B, D), or (n, B, D) when ``n`` is given."""
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        eps = torch.randn(shape, dtype=self.mu.dtype, device=self.mu.device, generator=generator)
        return self.mu + eps * self.std

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density at ``z`` of shape (..., B, D); returns (..., B)."""
        return diag_gaussian_log_prob(z, self.mu, self.logvar)

    def distribution(self) -> Independent:
        """The same law as a :class:`torch.distributions.Independent` normal (event dim D)."""
        return Independent(Normal(self.mu, self.std), 1)


@dataclass(frozen=True)
class GaussianMixture:
    """A batch of finite mixtures of diagonal Gaussians.

    Component ``k`` of row ``b`` is ``N(mu[k, b], diag(exp(logvar[k, b])))`` with probability
    ``exp(log_weights[k, b])``. Absent components (a subset that is not observed, say) carry
    ``log_weights = -inf``; each row's weights sum to one.

    Attributes:
        mu: component means, shape (K, B, D).
        logvar: component log-variances, shape (K, B, D).
        log_weights: normalised log mixture weights, shape (K, B).
    """

    mu: Tensor  # (K, B, D)
    logvar: Tensor  # (K, B, D)
    log_weights: Tensor  # (K, B)

    @property
    def weights(self) -> Tensor:
        """Mixture weights, shape (K, B)."""
        return torch.exp(self.log_weights)

    def log_prob(self, z: Tensor) -> Tensor:
        """Log density at ``z`` of shape (..., B, D); returns (..., B).

        ``log sum_k w_k N(z; mu_k, sigma_k^2)`` evaluated with a log-sum-exp over components.
        """
        comp = diag_gaussian_log_prob(z.unsqueeze(-3), self.mu, self.logvar)  # (..., K, B)
        return torch.logsumexp(comp + self.log_weights, dim=-2)

    def stratified_rsample(self, n: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``n`` reparameterised samples from every component: shape (K, n, B, D).

        This is the stratified estimator of MMVAE (Shi et al., 2019): an expectation under the
        mixture is ``sum_k w_k E_{q_k}[f]``, estimated with the same number of draws per component,
        so no discrete sampling (and no gradient-free step) is involved. Weight the per-component
        estimates with :attr:`weights`.
        """
        shape = (self.mu.shape[0], n, *self.mu.shape[1:])
        eps = torch.randn(shape, dtype=self.mu.dtype, device=self.mu.device, generator=generator)
        return self.mu.unsqueeze(1) + eps * torch.exp(0.5 * self.logvar).unsqueeze(1)

    def rsample(self, n: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Samples of the mixture: shape (B, D), or (n, B, D) when ``n`` is given.

        The component index is drawn from the weights (no gradient flows to them); the draw within
        the chosen component is reparameterised, as in MoPoE's and MWB-VAE's training.
        """
        m = 1 if n is None else n
        K, B, D = self.mu.shape
        probs = self.weights.detach().T  # (B, K)
        idx = torch.multinomial(probs, m, replacement=True, generator=generator).T  # (m, B)
        gather = idx.unsqueeze(-1).expand(m, B, D)
        mu = torch.gather(self.mu, 0, gather)  # (m, B, D)
        logvar = torch.gather(self.logvar, 0, gather)
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
        z = mu + eps * torch.exp(0.5 * logvar)
        return z[0] if n is None else z

    def mean(self) -> Tensor:
        """Mixture mean ``sum_k w_k mu_k``, shape (B, D)."""
        w = self.weights.unsqueeze(-1)
        return (w * _zero_where_absent(self.mu, self.log_weights)).sum(0)

    def moment_match(self) -> DiagGaussian:
        """Diagonal Gaussian with the mixture's mean and per-dimension variance.

        Uses the law of total variance, ``Var = sum_k w_k sigma_k^2 + sum_k w_k (mu_k - mean)^2``,
        which equals ``E[z^2] - E[z]^2`` but has no cancellation between two large numbers.
        """
        w = self.weights.unsqueeze(-1)  # (K, B, 1)
        mu = _zero_where_absent(self.mu, self.log_weights)
        var_k = _zero_where_absent(torch.exp(self.logvar), self.log_weights)
        mean = (w * mu).sum(0)
        var = (w * (var_k + (mu - mean).pow(2))).sum(0)
        return DiagGaussian(mean, torch.log(var))

    def distribution(self) -> MixtureSameFamily:
        """The same law as :class:`torch.distributions.MixtureSameFamily` (event dim D)."""
        comps = Independent(Normal(self.mu.movedim(0, -2), torch.exp(0.5 * self.logvar).movedim(0, -2)), 1)
        return MixtureSameFamily(Categorical(logits=self.log_weights.T), comps)


def _zero_where_absent(x: Tensor, log_weights: Tensor) -> Tensor:
    """Zero the parameters of absent components so ``0 * garbage`` never produces NaN."""
    present = torch.isfinite(log_weights).unsqueeze(-1)
    return torch.where(present, x, torch.zeros_like(x))
