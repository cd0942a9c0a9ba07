"""Encoders map images to (mu, logvar); decoders accept any leading sample dims; classifiers give logits."""

import pytest
import torch

from poolvae.networks import ARCHITECTURES, DigitClassifier28, make_networks


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("private", [0, 3])
def test_shapes_with_private_latents_and_sample_dims(arch, private):
    enc, dec = make_networks(arch, 5, private, channels=3, width=4)
    mu, logvar = enc(torch.rand(6, 3, 28, 28))
    assert mu.shape == logvar.shape == (6, 5 + private)
    out = dec(torch.randn(2, 4, 6, 5 + private))  # (M, K, B, D)
    assert out.shape == (2, 4, 6, 3, 28, 28)
    assert 0 <= out.min().item() and out.max().item() <= 1  # sigmoid location of a Laplace
    # folding the sample dims into the batch changes nothing
    flat = dec(torch.randn(3, 5 + private))
    assert flat.shape == (3, 3, 28, 28)


def test_decoder_is_deterministic_per_sample():
    torch.manual_seed(0)
    _, dec = make_networks("conv28", 4, 0, width=4)
    dec.eval()
    z = torch.randn(5, 4)
    batched = dec(z.unsqueeze(0).expand(2, 5, 4))
    assert torch.allclose(batched[0], batched[1]) and torch.allclose(batched[0], dec(z), atol=1e-6)


def test_classifier_logits_and_unknown_architecture():
    assert DigitClassifier28(width=4)(torch.rand(2, 3, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="valid: conv28"):
        make_networks("vgg", 4)
