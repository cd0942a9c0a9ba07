"""Encoders map items to (mu, logvar); decoders accept any leading sample dims and give what the modality's
likelihood reads; gradients reach every parameter; :func:`networks_for` picks each data set's family."""

import pytest
import torch
from data_fixtures import ATTRS

from poolvae import datasets as D
from poolvae import networks as N
from poolvae import text as tx
from poolvae.likelihoods import log_likelihood
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


# ---------------------------------------------------------------------------- MNIST-SVHN-Text, CelebA, CUB

VOCAB = tx.Vocabulary(tx.SPECIAL_TOKENS + tuple(f"w{i}" for i in range(37)))  # 40 words
SPECS = {"mnist-svhn-text": D.mnist_svhn_text_spec(), "celeba": D.celeba_spec(ATTRS), "cub": D.cub_spec(VOCAB)}
CASES = [(name, m) for name, spec in SPECS.items() for m in spec.modalities]
IDS = [f"{name}-{m.name}" for name, m in CASES]
EXPECTED = {("mnist-svhn-text", "mnist"): "MnistEncoderFC", ("mnist-svhn-text", "svhn"): "SvhnEncoder32",
            ("mnist-svhn-text", "text"): "CharEncoder8", ("celeba", "img"): "CelebAImageEncoder64",
            ("celeba", "text"): "CelebATextEncoder256", ("cub", "img"): "CubImageEncoder64",
            ("cub", "text"): "CubTextEncoder"}


def _batch(m, B: int, seed: int = 0) -> torch.Tensor:
    """A batch (B, *shape) of a modality: uniform pixels, or random one-hot rows for a text."""
    g = torch.Generator().manual_seed(seed)
    if m.kind == "image":
        return torch.rand(B, *m.shape, generator=g)
    idx = torch.randint(0, m.shape[1], (B, m.shape[0]), generator=g)
    return torch.nn.functional.one_hot(idx, m.shape[1]).float()


@pytest.mark.parametrize("dataset, m", CASES, ids=IDS)
@pytest.mark.parametrize("private", [0, 2])
def test_family_shapes_sample_dims_and_likelihood(dataset, m, private):
    torch.manual_seed(0)
    enc, dec = N.networks_for(m, dataset, 5, private, width=4)
    assert type(enc).__name__ == EXPECTED[dataset, m.name] and dec.likelihood == m.likelihood
    x = _batch(m, 3)
    mu, logvar = enc(x)
    assert mu.shape == logvar.shape == (3, 5 + private) and torch.isfinite(mu).all() and torch.isfinite(logvar).all()
    z = torch.randn(2, 4, 3, 5 + private)  # (M, K, B, D + Dp)
    out = dec(z)
    assert out.shape == (2, 4, 3, *m.shape)
    if m.likelihood == "laplace":  # a sigmoid location
        assert 0 <= out.min().item() and out.max().item() <= 1
    else:  # logits of one categorical per row: the log-likelihood of a one-hot row is a log-probability
        lp = log_likelihood(m.likelihood, x, out)
        assert lp.shape == (2, 4, 3) and (lp < 0).all()
        per_row = torch.log_softmax(out, -1)
        assert torch.allclose(per_row.exp().sum(-1), torch.ones(2, 4, 3, m.shape[0]), atol=1e-5)
        assert torch.allclose(lp, (per_row * x).sum((-1, -2)), atol=1e-4)
    # the sample dims are folded into the batch and back: each (m, k) slice equals decoding it alone
    dec.eval()
    full = dec(z)
    for i, k in ((0, 0), (1, 3)):
        assert torch.allclose(full[i, k], dec(z[i, k]), atol=1e-5)


@pytest.mark.parametrize("dataset, m", CASES, ids=IDS)
def test_family_gradients_reach_every_parameter(dataset, m):
    torch.manual_seed(1)
    enc, dec = N.networks_for(m, dataset, 4, 2, width=4)
    x = _batch(m, 4, seed=1)
    mu, logvar = enc(x)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    loss = -log_likelihood(m.likelihood, x, dec(z.unsqueeze(0))).mean()
    loss.backward()
    for name, p in [*enc.named_parameters(prefix="enc"), *dec.named_parameters(prefix="dec")]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # a bias just before a batch norm is cancelled by it (zero gradient); every weight must learn
        if p.ndim > 1:
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("dataset, m", CASES, ids=IDS)
def test_family_autoencoder_fits_a_small_batch(dataset, m):
    """Encoder and decoder together learn to reconstruct two items (each twice in the batch). For a text the
    decoded symbols must match position by position, so the logits are laid out as the likelihood reads them."""
    torch.manual_seed(2)
    enc, dec = N.networks_for(m, dataset, 8, 0, width=8)
    x = _batch(m, 2, seed=2)
    if m.kind == "image":  # one colour per image: learnable in a few steps, unlike uniform noise
        x = x.mean((2, 3), keepdim=True).expand(-1, *m.shape)
    x = x.repeat(2, *[1] * len(m.shape))  # (4, *shape)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)

    def loss():
        return -log_likelihood(m.likelihood, x, dec(enc(x)[0])).mean()

    def error():
        with torch.no_grad():
            out = dec(enc(x)[0])
        return (out - x).abs().mean().item() if m.kind == "image" else loss().item()

    first = error()
    for _ in range(40):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert error() < 0.7 * first
    if m.kind == "text":
        # Each position must decode one of the two texts' symbols there: at least half right (chance: 1 / symbols,
        # under 0.03). Logits laid out as anything but (B, L, V) would not be, position by position.
        with torch.no_grad():
            acc = (dec(enc(x)[0]).argmax(-1) == x.argmax(-1)).float().mean().item()
        assert acc >= 0.45


def test_networks_for_polymnist_builds_make_networks_unchanged():
    m = D.polymnist_spec().modalities[0]
    for arch in ("conv28", "res28"):
        torch.manual_seed(7)
        enc, dec = N.networks_for(m, "polymnist-mini", 6, 2, width=4, arch=arch)
        torch.manual_seed(7)
        enc0, dec0 = make_networks(arch, 6, 2, 3, 4)
        assert type(enc) is type(enc0) and type(dec) is type(dec0)
        for a, b in ((enc, enc0), (dec, dec0)):
            sa, sb = a.state_dict(), b.state_dict()
            assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert type(N.networks_for(m, "polymnist", 6)[0]).__name__ == "ConvEncoder28"  # the default


def test_networks_for_errors_name_the_valid_choices():
    mst = SPECS["mnist-svhn-text"]
    with pytest.raises(ValueError, match="does not fit mnist-svhn-text; valid: sutter-mst"):
        N.networks_for(mst.modality("svhn"), "mnist-svhn-text", 4, arch="conv28")
    with pytest.raises(ValueError, match="valid: conv28, res28"):
        N.networks_for(D.polymnist_spec().modalities[0], "polymnist", 4, arch="sutter-mst")
    with pytest.raises(ValueError, match="no networks for data set 'imagenet'"):
        N.networks_for(mst.modality("svhn"), "imagenet", 4)
    with pytest.raises(ValueError, match="no networks for modality 'audio'; valid: mnist, svhn, text"):
        N.networks_for(D.ModalitySpec("audio", "image", (1, 28, 28), "laplace"), "mnist-svhn-text", 4)
    with pytest.raises(ValueError, match="parameterises a laplace likelihood, but 'mnist' has a bernoulli"):
        N.networks_for(D.ModalitySpec("mnist", "image", (1, 28, 28), "bernoulli"), "mnist-svhn-text", 4)
    with pytest.raises(ValueError, match=r"SvhnEncoder32 expects items of shape \*x32x32; got \(3, 28, 28\)"):
        N.networks_for(D.ModalitySpec("svhn", "image", (3, 28, 28), "laplace"), "mnist-svhn-text", 4)
    with pytest.raises(ValueError, match="length divisible by 8"):
        N.CubTextEncoder((30, 40), 4)
