"""Decoder likelihoods against torch.distributions, with and without leading sample dimensions."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Laplace

from poolvae.likelihoods import LAPLACE_SCALE, log_likelihood


def test_laplace_matches_torch():
    assert LAPLACE_SCALE == 0.75  # the scale of the MMVAE/MMVAE+ decoders (likelihoods.py's docstring)
    x, loc = torch.rand(4, 3, 5, 5), torch.rand(4, 3, 5, 5)
    ref = Laplace(loc, 0.75).log_prob(x).flatten(1).sum(-1)
    assert torch.allclose(log_likelihood("laplace", x, loc), ref, atol=1e-4)
    # by hand: one scale away from the location, each of the 75 elements gives -log(2 * 0.75) - 1
    assert torch.allclose(log_likelihood("laplace", loc + 0.75, loc), torch.full((4,), 75 * (-math.log(1.5) - 1)))


def test_bernoulli_matches_torch():
    x, logits = (torch.rand(4, 7) > 0.5).float(), torch.randn(4, 7)
    ref = Bernoulli(logits=logits).log_prob(x).sum(-1)
    assert torch.allclose(log_likelihood("bernoulli", x, logits), ref, atol=1e-5)


def test_categorical_matches_torch_on_one_hot_text():
    idx, logits = torch.randint(0, 6, (4, 8)), torch.randn(4, 8, 6)
    x = torch.nn.functional.one_hot(idx, 6).float()
    ref = Categorical(logits=logits).log_prob(idx).sum(-1)
    assert torch.allclose(log_likelihood("categorical", x, logits), ref, atol=1e-5)


def test_leading_sample_dims_are_kept():
    x = torch.rand(4, 3, 5, 5)
    loc = torch.rand(2, 6, 4, 3, 5, 5)  # (M, K, B, ...)
    out = log_likelihood("laplace", x, loc)
    assert out.shape == (2, 6, 4)
    assert torch.allclose(out[1, 3], log_likelihood("laplace", x, loc[1, 3]))


def test_unknown_likelihood_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: laplace"):
        log_likelihood("gamma", torch.zeros(1, 2), torch.zeros(1, 2))
