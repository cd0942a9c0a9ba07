"""Decoder likelihoods ``log p(x_m | z)`` of the modalities the papers use.

Images get a Laplace likelihood with a fixed scale (HEL appendix B.3: "Laplace likelihoods for all
modalities" on PolyMNIST; the MMVAE/MMVAE+ decoders use scale 0.75), text a one-hot categorical over
the alphabet, and binary images a Bernoulli. Each function sums over the modality's dimensions and
returns one log-likelihood per batch element, so the ELBO can weight modalities by relative
dimensionality (:func:`poolvae.datasets.likelihood_weights`).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

LAPLACE_SCALE = 0.75


def laplace_log_prob(x: Tensor, loc: Tensor, scale: float = LAPLACE_SCALE) -> Tensor:
    """``sum log Laplace(x; loc, scale)`` over all but the leading batch dims of ``x`` (B, ...)."""
    lp = -math.log(2.0 * scale) - (x - loc).abs() / scale
    return lp.flatten(-x.ndim + 1).sum(-1) if x.ndim > 1 else lp


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """``sum log Bernoulli(x; sigmoid(logits))`` over all but the batch dim."""
    lp = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return lp.flatten(1).sum(-1)


def categorical_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """``sum_t log Cat(x_t; softmax(logits_t))`` for one-hot ``x`` (B, T, V) and logits (B, T, V)."""
    return (x * F.log_softmax(logits, dim=-1)).sum((-1, -2))


LIKELIHOODS = {"laplace": laplace_log_prob, "bernoulli": bernoulli_log_prob, "categorical": categorical_log_prob}


def log_likelihood(kind: str, x: Tensor, out: Tensor) -> Tensor:
    """Dispatch on the likelihood name; ``x`` and the decoder output ``out`` have shape (..., B, *shape).

    Leading sample dims (K samples of z) are folded into the batch and restored.
    """
    if kind not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {kind!r}; valid: {', '.join(LIKELIHOODS)}")
    lead = out.shape[: out.ndim - x.ndim + 1]  # (..., B)
    x = x.expand(*lead, *x.shape[1:]).reshape(-1, *x.shape[1:])
    lp = LIKELIHOODS[kind](x, out.reshape(-1, *out.shape[len(lead):]))
    return lp.reshape(lead)

