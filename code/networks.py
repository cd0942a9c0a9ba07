"""Encoders, decoders and classifiers, one small class per architecture the papers cite.

Every encoder maps a modality batch (B, *shape) to ``(mu, logvar)`` of the shared latent, each (B, D),
and optionally a private latent (MMVAE+); every decoder maps latents (..., B, D [+ D_private]) to the
parameters of the modality's likelihood with the modality's shape: a sigmoid location (..., B, C, H, W)
for a Laplace image, logits (..., B, L, V) for a one-hot categorical text. Architectures:

* :class:`ConvEncoder28` / :class:`ConvDecoder28` - the small convolutional PolyMNIST networks of MoPoE
  (Sutter et al., 2021), used by the barycentric paper and at ``cpu`` scale here;
* :class:`ResEncoder28` / :class:`ResDecoder28` - residual PolyMNIST networks in the spirit of
  Daunhawer et al. (2022) and MMVAE+ (Palumbo et al., 2023), used by the HELVAE paper;
* ``sutter-mst`` - MNIST-SVHN-Text as in MMJSD / MoPoE (Sutter et al., 2020, 2021; WB App. B.2):
  :class:`MnistEncoderFC`, :class:`SvhnEncoder32`, :class:`CharEncoder8` and their decoders;
* ``sutter-celeba`` - bimodal CelebA as in Sutter et al. (2020) (HEL App. B.3, WB App. B.3): residual
  networks :class:`CelebAImageEncoder64` and :class:`CelebATextEncoder256` and their decoders;
* ``mmvaeplus-cub`` - CUB Image-Captions as in MMVAE+ (Palumbo et al., 2023; HEL App. B.3), after Shi et
  al. (2019): :class:`CubImageEncoder64` (ResNet) and :class:`CubTextEncoder` (CNN over word
  embeddings) and their decoders;
* :class:`DigitClassifier28` - the per-modality digit classifier used for coherence.

:func:`networks_for` picks the pair of a data set's modality (:data:`DATASET_ARCH`); ``width`` is each
family's base channel count, and each class says which ``width`` gives the paper's network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Heads(nn.Module):
    """Linear heads from a feature vector to (mu, logvar) of the shared and optional private latent."""

    def __init__(self, features: int, latent_dim: int, private_dim: int = 0):
        super().__init__()
        self.latent_dim, self.private_dim = latent_dim, private_dim
        self.out = nn.Linear(features, 2 * (latent_dim + private_dim))

    def forward(self, h: Tensor):
        mu, logvar = self.out(h).chunk(2, dim=-1)
        return mu, logvar  # (B, D + D_private) each; the model splits shared and private parts


def _fold(z: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Fold leading sample dims into the batch: (..., B, D) -> (N, D), remembering (..., B)."""
    return z.reshape(-1, z.shape[-1]), tuple(z.shape[:-1])


class ConvEncoder28(nn.Module):
    """MoPoE's PolyMNIST encoder (Sutter et al., 2021): three stride-2 convolutions, linear heads."""

    def __init__(self, latent_dim: int, private_dim: int = 0, channels: int = 3, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), nn.ReLU(),  # 14x14
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),  # 7x7
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(),  # 4x4
            nn.Flatten(),
        )
        self.heads = _Heads(4 * width * 16, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """Images (B, C, 28, 28) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x))


class ConvDecoder28(nn.Module):
    """MoPoE's PolyMNIST decoder: linear layer, three transposed convolutions, sigmoid location."""

    def __init__(self, latent_dim: int, channels: int = 3, width: int = 32):
        super().__init__()
        self.width = width
        self.fc = nn.Sequential(nn.Linear(latent_dim, 4 * width * 16), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 3, 2, 1, output_padding=0), nn.ReLU(),  # 7x7
            nn.ConvTranspose2d(2 * width, width, 3, 2, 1, output_padding=1), nn.ReLU(),  # 14x14
            nn.ConvTranspose2d(width, channels, 3, 2, 1, output_padding=1),  # 28x28
        )

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> pixel means in (0, 1), (..., B, C, 28, 28)."""
        flat, lead = _fold(z)
        h = self.fc(flat).view(-1, 4 * self.width, 4, 4)
        return torch.sigmoid(self.body(h)).view(*lead, *self.body[-1].weight.shape[1:2], 28, 28)


class _ResBlock(nn.Module):
    """Pre-activation residual block with an optional stride-2 down- or up-sampling path."""

    def __init__(self, c_in: int, c_out: int, mode: str = "same"):
        super().__init__()
        if mode == "down":
            conv, skip = nn.Conv2d(c_in, c_out, 4, 2, 1), nn.Conv2d(c_in, c_out, 4, 2, 1)
        elif mode == "up":
            conv, skip = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)
        else:
            conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
            skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)
        self.path = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), conv, nn.BatchNorm2d(c_out), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        return self.path(x) + self.skip(x)


class ResEncoder28(nn.Module):
    """Residual PolyMNIST encoder after Daunhawer et al. (2022) / MMVAE+ (Palumbo et al., 2023)."""

    def __init__(self, latent_dim: int, private_dim: int = 0, channels: int = 3, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1),
            _ResBlock(width, 2 * width, "down"),  # 14x14
            _ResBlock(2 * width, 4 * width, "down"),  # 7x7
            _ResBlock(4 * width, 4 * width),
            nn.ReLU(), nn.Flatten(),
        )
        self.heads = _Heads(4 * width * 49, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """Images (B, C, 28, 28) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x))


class ResDecoder28(nn.Module):
    """Residual PolyMNIST decoder mirroring :class:`ResEncoder28`; sigmoid location."""

    def __init__(self, latent_dim: int, channels: int = 3, width: int = 32):
        super().__init__()
        self.width, self.channels = width, channels
        self.fc = nn.Linear(latent_dim, 4 * width * 49)
        self.body = nn.Sequential(
            _ResBlock(4 * width, 4 * width),
            _ResBlock(4 * width, 2 * width, "up"),  # 14x14
            _ResBlock(2 * width, width, "up"),  # 28x28
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> pixel means in (0, 1), (..., B, C, 28, 28)."""
        flat, lead = _fold(z)
        h = self.fc(flat).view(-1, 4 * self.width, 7, 7)
        return torch.sigmoid(self.body(h)).view(*lead, self.channels, 28, 28)


class DigitClassifier28(nn.Module):
    """Per-modality digit classifier for conditional coherence (the MoPoE PolyMNIST classifier's shape)."""

    def __init__(self, channels: int = 3, width: int = 32, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * width * 16, classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, classes)."""
        return self.net(x)


ARCHITECTURES = {
    "conv28": (ConvEncoder28, ConvDecoder28),
    "res28": (ResEncoder28, ResDecoder28),
}


def make_networks(arch: str, latent_dim: int, private_dim: int = 0, channels: int = 3, width: int = 32):
    """One (encoder, decoder) pair for architecture ``arch``; the decoder sees shared + private latents."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    enc_cls, dec_cls = ARCHITECTURES[arch]
    return (enc_cls(latent_dim, private_dim, channels, width), dec_cls(latent_dim + private_dim, channels, width))


# --------------------------------------------------------------------------------------------------
# MNIST-SVHN-Text: Sutter, Daunhawer & Vogt (2020, MMJSD; 2021, MoPoE), as the barycentric paper
# uses them (WB App. B.2: "the same network architecture as in Sutter et al. (2021)").
# --------------------------------------------------------------------------------------------------


def _check_shape(cls: type, shape: tuple[int, ...], expected: tuple[int | None, ...]) -> None:
    """Raise a ValueError naming the class if ``shape`` does not match ``expected`` (None: any size)."""
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected, strict=True)):
        want = "x".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{cls.__name__} expects items of shape {want}; got {tuple(shape)}")


def _unfold(x: Tensor, lead: tuple[int, ...]) -> Tensor:
    """Restore folded sample dims: (N, *item) -> (*lead, *item)."""
    return x.reshape(*lead, *x.shape[1:])


class MnistEncoderFC(nn.Module):
    """MNIST encoder of Sutter et al.'s MNIST-SVHN-Text (MMJSD 2020, MoPoE 2021): one fully connected
    hidden layer of 400 ReLUs, linear heads. ``hidden = 25 * width // 2`` (400 at the paper's width 32).
    Simplified: no separate style (modality-specific) heads; the private part comes from the same heads."""

    def __init__(self, shape=(1, 28, 28), latent_dim: int = 20, private_dim: int = 0, width: int = 32):
        super().__init__()
        hidden = 25 * width // 2
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), hidden), nn.ReLU())
        self.heads = _Heads(hidden, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """Digits (B, 1, 28, 28) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x))


class MnistDecoderFC(nn.Module):
    """MNIST decoder of Sutter et al. (2020, 2021): 400 ReLUs, a linear layer to 784 pixels, sigmoid
    location of the Laplace likelihood (their scale 0.75 is :data:`poolvae.likelihoods.LAPLACE_SCALE`)."""

    likelihood = "laplace"

    def __init__(self, shape=(1, 28, 28), latent_dim: int = 20, width: int = 32):
        super().__init__()
        hidden = 25 * width // 2
        self.shape = tuple(shape)
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, math.prod(shape)))

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> pixel means in (0, 1), (..., B, 1, 28, 28)."""
        flat, lead = _fold(z)
        return torch.sigmoid(self.net(flat)).view(*lead, *self.shape)  # (..., B, 1, 28, 28)


class SvhnEncoder32(nn.Module):
    """SVHN encoder of Sutter et al. (2020, 2021): four 4x4 stride-2 convolutions 32-64-64-128 down to
    1x1, linear heads. Channels ``width, 2 width, 2 width, 4 width`` (the paper's at width 32)."""

    def __init__(self, shape=(3, 32, 32), latent_dim: int = 20, private_dim: int = 0, width: int = 32):
        super().__init__()
        _check_shape(type(self), shape, (None, 32, 32))
        self.body = nn.Sequential(
            nn.Conv2d(shape[0], width, 4, 2, 1), nn.ReLU(),  # 16x16
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),  # 8x8
            nn.Conv2d(2 * width, 2 * width, 4, 2, 1), nn.ReLU(),  # 4x4
            nn.Conv2d(2 * width, 4 * width, 4, 2, 0), nn.ReLU(),  # 1x1
            nn.Flatten(),
        )
        self.heads = _Heads(4 * width, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """Images (B, 3, 32, 32) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x))


class SvhnDecoder32(nn.Module):
    """SVHN decoder of Sutter et al. (2020, 2021): linear layer to 128 x 1x1, four transposed
    convolutions to 32x32. Simplified: a sigmoid location (theirs is unbounded), as every image here."""

    likelihood = "laplace"

    def __init__(self, shape=(3, 32, 32), latent_dim: int = 20, width: int = 32):
        super().__init__()
        _check_shape(type(self), shape, (None, 32, 32))
        self.shape = tuple(shape)
        self.fc = nn.Sequential(nn.Linear(latent_dim, 4 * width), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 1, 0), nn.ReLU(),  # 4x4
            nn.ConvTranspose2d(2 * width, 2 * width, 4, 2, 1), nn.ReLU(),  # 8x8
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),  # 16x16
            nn.ConvTranspose2d(width, shape[0], 4, 2, 1),  # 32x32
        )

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> pixel means in (0, 1), (..., B, 3, 32, 32)."""
        flat, lead = _fold(z)
        h = self.fc(flat)[..., None, None]  # (N, 4w, 1, 1)
        return _unfold(torch.sigmoid(self.body(h)), lead)  # (..., B, 3, 32, 32)


class CharEncoder8(nn.Module):
    """Text encoder of Sutter et al.'s MNIST-SVHN-Text (2020, 2021): 1-D convolutions over the one-hot
    characters (B, 8, A) - a 1x1 convolution to 128 channels, then two 4-wide stride-2 ones down to one
    position - and linear heads. Channels ``4 width`` (128 at the paper's width 32)."""

    def __init__(self, shape=(8, 70), latent_dim: int = 20, private_dim: int = 0, width: int = 32):
        super().__init__()
        _check_shape(type(self), shape, (8, None))
        c = 4 * width
        self.body = nn.Sequential(
            nn.Conv1d(shape[1], c, 1), nn.ReLU(),  # 8
            nn.Conv1d(c, c, 4, 2, 1), nn.ReLU(),  # 4
            nn.Conv1d(c, c, 4, 2, 0), nn.ReLU(),  # 1
            nn.Flatten(),
        )
        self.heads = _Heads(c, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """One-hot text (B, 8, A) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x.transpose(1, 2)))  # (B, L, A) -> (B, A, L) channels first


class CharDecoder8(nn.Module):
    """Text decoder of Sutter et al. (2020, 2021): linear layer to 128 x 1, two transposed 1-D
    convolutions to 8 positions, a 1x1 convolution to the alphabet. Returns logits (..., B, 8, A); the
    original's log-softmax is done by :func:`poolvae.likelihoods.categorical_log_prob`."""

    likelihood = "categorical"

    def __init__(self, shape=(8, 70), latent_dim: int = 20, width: int = 32):
        super().__init__()
        _check_shape(type(self), shape, (8, None))
        c = 4 * width
        self.fc = nn.Linear(latent_dim, c)
        self.body = nn.Sequential(
            nn.ConvTranspose1d(c, c, 4, 1, 0), nn.ReLU(),  # 4
            nn.ConvTranspose1d(c, c, 4, 2, 1), nn.ReLU(),  # 8
            nn.Conv1d(c, shape[1], 1),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> character logits (..., B, 8, A)."""
        flat, lead = _fold(z)
        logits = self.body(self.fc(flat)[..., None])  # (N, A, 8)
        return _unfold(logits.transpose(1, 2), lead)  # (..., B, 8, A)


# --------------------------------------------------------------------------------------------------
# Bimodal CelebA: the residual networks of Sutter et al. (2020), which both papers use (HEL App. B.3,
# WB App. B.3). Their width (DIM_img = DIM_text) is 128.
# --------------------------------------------------------------------------------------------------


class _SutterBlock(nn.Module):
    """Sutter et al.'s residual block, 1-D or 2-D, down (conv) or up (transposed conv):
    path = BN-ReLU-1x1 conv-BN-ReLU-conv(k, s, p), skip = conv(k, s, p)-BN, out = a * skip + b * path
    with their a = 2, b = 0.3. Simplified: no dropout (theirs: p = 0.5 after both convolutions)."""

    def __init__(self, c_in: int, c_out: int, k: int, s: int, p: int, dims: int = 2, up: bool = False,
                 a: float = 2.0, b: float = 0.3):
        super().__init__()
        bn = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        conv = {(1, False): nn.Conv1d, (1, True): nn.ConvTranspose1d,
                (2, False): nn.Conv2d, (2, True): nn.ConvTranspose2d}[(dims, up)]
        self.path = nn.Sequential(bn(c_in), nn.ReLU(), conv(c_in, c_in, 1), bn(c_in), nn.ReLU(),
                                  conv(c_in, c_out, k, s, p))
        self.skip = nn.Sequential(conv(c_in, c_out, k, s, p), bn(c_out))
        self.a, self.b = a, b

    def forward(self, x: Tensor) -> Tensor:
        return self.a * self.skip(x) + self.b * self.path(x)


class CelebAImageEncoder64(nn.Module):
    """Image encoder of Sutter et al. (2020) for bimodal CelebA: a 3x3 stride-2 convolution to ``width``
    channels (33x33), four residual blocks to 2, 3, 4, 5 x ``width`` channels and 16, 8, 4, 1 pixels,
    linear heads. Paper width 128. Simplified: one pair of heads for shared + private parts (theirs:
    separate style and content heads), no dropout."""

    def __init__(self, shape=(3, 64, 64), latent_dim: int = 32, private_dim: int = 0, width: int = 128):
        super().__init__()
        _check_shape(type(self), shape, (None, 64, 64))
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(shape[0], w, 3, 2, 2),  # 33x33
            _SutterBlock(w, 2 * w, 4, 2, 1),  # 16x16
            _SutterBlock(2 * w, 3 * w, 4, 2, 1),  # 8x8
            _SutterBlock(3 * w, 4 * w, 4, 2, 1),  # 4x4
            _SutterBlock(4 * w, 5 * w, 4, 2, 0),  # 1x1
            nn.Flatten(),
        )
        self.heads = _Heads(5 * w, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """Images (B, 3, 64, 64) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x))


class CelebAImageDecoder64(nn.Module):
    """Image decoder of Sutter et al. (2020): linear layer to 5 ``width`` x 1x1, four transposed residual
    blocks to 4, 8, 16, 32 pixels, a transposed 3x3 convolution to 64x64. Simplified: sigmoid location
    (theirs is unbounded), no dropout. Batch norm at 1x1 needs more than one latent per batch in training."""

    likelihood = "laplace"

    def __init__(self, shape=(3, 64, 64), latent_dim: int = 32, width: int = 128):
        super().__init__()
        _check_shape(type(self), shape, (None, 64, 64))
        w = width
        self.fc = nn.Linear(latent_dim, 5 * w)
        self.body = nn.Sequential(
            _SutterBlock(5 * w, 4 * w, 4, 1, 0, up=True),  # 4x4
            _SutterBlock(4 * w, 3 * w, 4, 2, 1, up=True),  # 8x8
            _SutterBlock(3 * w, 2 * w, 4, 2, 1, up=True),  # 16x16
            _SutterBlock(2 * w, w, 4, 2, 1, up=True),  # 32x32
            nn.ConvTranspose2d(w, shape[0], 3, 2, 1, output_padding=1),  # 64x64
        )

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> pixel means in (0, 1), (..., B, 3, 64, 64)."""
        flat, lead = _fold(z)
        return _unfold(torch.sigmoid(self.body(self.fc(flat)[..., None, None])), lead)  # (..., B, 3, 64, 64)


class CelebATextEncoder256(nn.Module):
    """Character-text encoder of Sutter et al. (2020) for bimodal CelebA: over the one-hot text (B, 256, A),
    a 4-wide stride-2 1-D convolution to ``width`` channels (128 positions), then six residual blocks to
    2, 3, 4, 5, 5, 5 x ``width`` channels and 64 ... 4, 1 positions, linear heads. Paper width 128.
    Simplified as :class:`CelebAImageEncoder64`."""

    def __init__(self, shape=(256, 70), latent_dim: int = 32, private_dim: int = 0, width: int = 128):
        super().__init__()
        _check_shape(type(self), shape, (256, None))
        w = width
        self.body = nn.Sequential(
            nn.Conv1d(shape[1], w, 4, 2, 1),  # 128
            _SutterBlock(w, 2 * w, 4, 2, 1, dims=1),  # 64
            _SutterBlock(2 * w, 3 * w, 4, 2, 1, dims=1),  # 32
            _SutterBlock(3 * w, 4 * w, 4, 2, 1, dims=1),  # 16
            _SutterBlock(4 * w, 5 * w, 4, 2, 1, dims=1),  # 8
            _SutterBlock(5 * w, 5 * w, 4, 2, 1, dims=1),  # 4
            _SutterBlock(5 * w, 5 * w, 4, 2, 0, dims=1),  # 1
            nn.Flatten(),
        )
        self.heads = _Heads(5 * w, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """One-hot text (B, 256, A) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x.transpose(1, 2)))  # (B, L, A) -> (B, A, L)


class CelebATextDecoder256(nn.Module):
    """Character-text decoder of Sutter et al. (2020): linear layer to 5 ``width`` x 1, six transposed
    residual blocks to 4 ... 128 positions, a transposed 1-D convolution to 256 positions and the alphabet.
    Returns logits (..., B, 256, A); their log-softmax is in the likelihood. No dropout."""

    likelihood = "categorical"

    def __init__(self, shape=(256, 70), latent_dim: int = 32, width: int = 128):
        super().__init__()
        _check_shape(type(self), shape, (256, None))
        w = width
        self.fc = nn.Linear(latent_dim, 5 * w)
        self.body = nn.Sequential(
            _SutterBlock(5 * w, 5 * w, 4, 1, 0, dims=1, up=True),  # 4
            _SutterBlock(5 * w, 5 * w, 4, 2, 1, dims=1, up=True),  # 8
            _SutterBlock(5 * w, 4 * w, 4, 2, 1, dims=1, up=True),  # 16
            _SutterBlock(4 * w, 3 * w, 4, 2, 1, dims=1, up=True),  # 32
            _SutterBlock(3 * w, 2 * w, 4, 2, 1, dims=1, up=True),  # 64
            _SutterBlock(2 * w, w, 4, 2, 1, dims=1, up=True),  # 128
            nn.ConvTranspose1d(w, shape[1], 4, 2, 1),  # 256
        )

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> character logits (..., B, 256, A)."""
        flat, lead = _fold(z)
        logits = self.body(self.fc(flat)[..., None])  # (N, A, 256)
        return _unfold(logits.transpose(1, 2), lead)  # (..., B, 256, A)


# --------------------------------------------------------------------------------------------------
# CUB Image-Captions: the networks of MMVAE+ (Palumbo et al., 2023), which HEL App. B.3 follows
# ("ResNet networks for image modality and CNNs for text modality"); the text CNN is that of MMVAE
# (Shi et al., 2019). MMVAE+ runs two copies of each trunk (shared and private latent); we run one.
# --------------------------------------------------------------------------------------------------


def _leaky(x: Tensor) -> Tensor:
    """The activation of the MMVAE+ image ResNet: leaky ReLU with slope 0.2."""
    return F.leaky_relu(x, 0.2)


class _CubResBlock(nn.Module):
    """ResNet block of the MMVAE+ CUB image networks (after Mescheder et al., 2018): two 3x3 convolutions
    through leaky ReLUs with ``min(c_in, c_out)`` hidden channels, added at weight 0.1 to the input, or to a
    bias-free 1x1 projection of it when the channel count changes."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        hidden = min(c_in, c_out)
        self.conv_0 = nn.Conv2d(c_in, hidden, 3, 1, 1)
        self.conv_1 = nn.Conv2d(hidden, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + 0.1 * self.conv_1(_leaky(self.conv_0(_leaky(x))))


class CubImageEncoder64(nn.Module):
    """CUB image encoder of MMVAE+ (Palumbo et al., 2023): a 3x3 convolution to ``width`` channels, a
    ResNet block, then five (average pool 3/2, ResNet block) stages doubling the channels up to
    ``4 width`` and halving 64x64 to 2x2, linear heads. Paper width 64 (channels 64 ... 256).
    Simplified: one trunk for shared and private latents (MMVAE+ has two identical ones)."""

    def __init__(self, shape=(3, 64, 64), latent_dim: int = 64, private_dim: int = 0, width: int = 64):
        super().__init__()
        _check_shape(type(self), shape, (None, 64, 64))
        nf, nf_max = width, 4 * width
        layers: list[nn.Module] = [nn.Conv2d(shape[0], nf, 3, 1, 1), _CubResBlock(nf, nf)]
        for i in range(5):  # 64 -> 32 -> 16 -> 8 -> 4 -> 2
            layers += [nn.AvgPool2d(3, 2, 1), _CubResBlock(min(nf * 2**i, nf_max), min(nf * 2 ** (i + 1), nf_max))]
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.heads = _Heads(nf_max * 4, latent_dim, private_dim)

    def forward(self, x: Tensor):
        """Images (B, 3, 64, 64) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(x))


class CubImageDecoder64(nn.Module):
    """CUB image decoder of MMVAE+ (Palumbo et al., 2023): linear layer to ``4 width`` x 2x2, five
    (ResNet block, nearest 2x upsampling) stages to 64x64, a ResNet block, leaky ReLU and a 3x3
    convolution to RGB. Simplified: sigmoid location with this project's Laplace scale (MMVAE+: an
    unbounded location with scale 0.01)."""

    likelihood = "laplace"

    def __init__(self, shape=(3, 64, 64), latent_dim: int = 64, width: int = 64):
        super().__init__()
        _check_shape(type(self), shape, (None, 64, 64))
        nf, nf_max = width, 4 * width
        self.nf0 = nf_max
        self.fc = nn.Linear(latent_dim, nf_max * 4)
        layers: list[nn.Module] = []
        for i in range(5):  # 2 -> 4 -> 8 -> 16 -> 32 -> 64
            layers += [_CubResBlock(min(nf * 2 ** (5 - i), nf_max), min(nf * 2 ** (4 - i), nf_max)),
                       nn.Upsample(scale_factor=2)]
        self.body = nn.Sequential(*layers, _CubResBlock(nf, nf))
        self.out = nn.Conv2d(nf, shape[0], 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> pixel means in (0, 1), (..., B, 3, 64, 64)."""
        flat, lead = _fold(z)
        h = self.body(self.fc(flat).view(-1, self.nf0, 2, 2))
        return _unfold(torch.sigmoid(self.out(_leaky(h))), lead)  # (..., B, 3, 64, 64)


def _cub_text_channels(who: str, length: int, embedding: int, width: int) -> int:
    """The base channel count ``f = width // 2`` of the CUB text networks, whose three stride-2 and two
    stride-(1, 2) layers need a caption length divisible by 8 and an embedding divisible by 32."""
    if length % 8 or embedding % 32:
        raise ValueError(f"{who} needs a length divisible by 8 and an embedding divisible by 32; "
                         f"got {length} and {embedding}")
    return max(width // 2, 1)


class CubTextEncoder(nn.Module):
    """CUB caption encoder of MMVAE+ (Palumbo et al., 2023), after MMVAE (Shi et al., 2019): the one-hot
    words (B, L, V) are embedded linearly to (1, L, E = 128) and read as an image by 2-D convolutions with
    batch norm and ReLU: three 4x4 stride-2 ones (f, 2f, 4f channels), then two (1x4) stride-(1, 2) ones
    (8f, 16f), down to (L/8) x (E/32) = 4x4 for L = 32; linear heads over the flattened features (their
    4x4 convolution heads are the same map). ``f = width // 2``: the paper's 32 at width 64. Simplified:
    one trunk for shared and private latents (MMVAE+ runs two)."""

    def __init__(self, shape=(32, 1590), latent_dim: int = 64, private_dim: int = 0, width: int = 64,
                 embedding: int = 128):
        super().__init__()
        length, vocab = shape
        f = _cub_text_channels("CubTextEncoder", length, embedding, width)
        self.embedding = nn.Linear(vocab, embedding)

        def block(c_in, c_out, k, s, p):
            return [nn.Conv2d(c_in, c_out, k, s, p), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, f, 4, 2, 1),  # (f, L/2, E/2)
            *block(f, 2 * f, 4, 2, 1),  # (2f, L/4, E/4)
            *block(2 * f, 4 * f, 4, 2, 1),  # (4f, L/8, E/8)
            *block(4 * f, 8 * f, (1, 4), (1, 2), (0, 1)),  # (8f, L/8, E/16)
            *block(8 * f, 16 * f, (1, 4), (1, 2), (0, 1)),  # (16f, L/8, E/32)
            nn.Flatten(),
        )
        self.heads = _Heads(16 * f * (length // 8) * (embedding // 32), latent_dim, private_dim)

    def forward(self, x: Tensor):
        """One-hot sentences (B, L, V) -> (mu, logvar), each (B, latent_dim + private_dim)."""
        return self.heads(self.body(self.embedding(x).unsqueeze(1)))  # (B, L, V) -> (B, 1, L, E) -> features


class CubTextDecoder(nn.Module):
    """CUB caption decoder of MMVAE+ (Palumbo et al., 2023), after MMVAE (Shi et al., 2019): the mirror of
    :class:`CubTextEncoder` - a linear map to (16f, L/8, E/32) (theirs: a 4x4 transposed convolution),
    transposed convolutions with batch norm and ReLU back to (1, L, E) with a 3x3 stride-1 layer after each
    of the two (1x4) ones, a ReLU, and a linear map from the embedding to vocabulary logits (..., B, L, V).
    Their softmax is the likelihood's log-softmax here. Simplified: one trunk (MMVAE+ decodes the shared
    and private latents in two and concatenates them)."""

    likelihood = "categorical"

    def __init__(self, shape=(32, 1590), latent_dim: int = 64, width: int = 64, embedding: int = 128):
        super().__init__()
        length, vocab = shape
        f = _cub_text_channels("CubTextDecoder", length, embedding, width)
        self.grid = (16 * f, length // 8, embedding // 32)
        self.fc = nn.Linear(latent_dim, math.prod(self.grid))

        def block(c_in, c_out, k, s, p):
            return [nn.ConvTranspose2d(c_in, c_out, k, s, p), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
            nn.BatchNorm2d(16 * f), nn.ReLU(),
            *block(16 * f, 8 * f, (1, 4), (1, 2), (0, 1)),  # (8f, L/8, E/16)
            *block(8 * f, 8 * f, 3, 1, 1),
            *block(8 * f, 4 * f, (1, 4), (1, 2), (0, 1)),  # (4f, L/8, E/8)
            *block(4 * f, 4 * f, 3, 1, 1),
            *block(4 * f, 2 * f, 4, 2, 1),  # (2f, L/4, E/4)
            *block(2 * f, f, 4, 2, 1),  # (f, L/2, E/2)
            nn.ConvTranspose2d(f, 1, 4, 2, 1), nn.ReLU(),  # (1, L, E)
        )
        self.to_vocab = nn.Linear(embedding, vocab)

    def forward(self, z: Tensor) -> Tensor:
        """Latents (..., B, D) -> word logits (..., B, L, V)."""
        flat, lead = _fold(z)
        h = self.body(self.fc(flat).view(-1, *self.grid))  # (N, 1, L, E)
        return _unfold(self.to_vocab(h[:, 0]), lead)  # (..., B, L, V)


# --------------------------------------------------------------------------------------------------
# Which networks a data set's modality gets
# --------------------------------------------------------------------------------------------------

#: Encoder/decoder families of the non-PolyMNIST data sets: family -> modality name -> (encoder, decoder).
FAMILIES: dict[str, dict[str, tuple[type, type]]] = {
    "sutter-mst": {"mnist": (MnistEncoderFC, MnistDecoderFC), "svhn": (SvhnEncoder32, SvhnDecoder32),
                   "text": (CharEncoder8, CharDecoder8)},
    "sutter-celeba": {"img": (CelebAImageEncoder64, CelebAImageDecoder64),
                      "text": (CelebATextEncoder256, CelebATextDecoder256)},
    "mmvaeplus-cub": {"img": (CubImageEncoder64, CubImageDecoder64), "text": (CubTextEncoder, CubTextDecoder)},
}
#: The default architecture of each data set (PolyMNIST may also use ``res28``, as at paper scale).
DATASET_ARCH = {"polymnist": "conv28", "polymnist-mini": "conv28", "mnist-svhn-text": "sutter-mst",
                "mnist-svhn-text-mini": "sutter-mst",  # the stand-in has the real one's shapes and networks
                "celeba": "sutter-celeba", "cub": "mmvaeplus-cub"}


def architectures_for(dataset: str) -> tuple[str, ...]:
    """The architectures that fit ``dataset``: ``conv28``/``res28`` for PolyMNIST, its family otherwise."""
    if dataset not in DATASET_ARCH:
        raise ValueError(f"no networks for data set {dataset!r}; valid: {', '.join(DATASET_ARCH)}")
    return tuple(ARCHITECTURES) if dataset.startswith("polymnist") else (DATASET_ARCH[dataset],)


def networks_for(modality, dataset: str, latent_dim: int, private_dim: int = 0, width: int = 32,
                 arch: str | None = None):
    """One (encoder, decoder) pair for ``modality`` (a :class:`poolvae.datasets.ModalitySpec`) of ``dataset``.

    ``arch`` defaults to :data:`DATASET_ARCH`; PolyMNIST goes through :func:`make_networks` unchanged. The
    decoder sees shared + private latents and must produce what the modality's likelihood reads.
    """
    arch = arch or DATASET_ARCH.get(dataset, "")
    valid = architectures_for(dataset)
    if arch not in valid:
        raise ValueError(f"architecture {arch!r} does not fit {dataset}; valid: {', '.join(valid)}")
    if arch in ARCHITECTURES:
        return make_networks(arch, latent_dim, private_dim, modality.shape[0], width)
    family = FAMILIES[arch]
    if modality.name not in family:
        raise ValueError(f"{arch} has no networks for modality {modality.name!r}; valid: {', '.join(family)}")
    enc_cls, dec_cls = family[modality.name]
    if dec_cls.likelihood != modality.likelihood:
        raise ValueError(f"{dec_cls.__name__} parameterises a {dec_cls.likelihood} likelihood, but {modality.name!r} "
                         f"has a {modality.likelihood} one")
    shape = tuple(modality.shape)
    return enc_cls(shape, latent_dim, private_dim, width), dec_cls(shape, latent_dim + private_dim, width)
