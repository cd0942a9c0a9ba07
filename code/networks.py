"""Encoders, decoders and classifiers, one small class per architecture the papers cite.

Every encoder maps a modality batch (B, *shape) to ``(mu, logvar)`` of the shared latent, each (B, D),
and optionally a private latent (MMVAE+); every decoder maps latents (..., B, D [+ D_private]) to the
parameters of the modality's likelihood with the modality's shape. Architectures:

* :class:`ConvEncoder28` / :class:`ConvDecoder28` - the small convolutional PolyMNIST networks of MoPoE
  (Sutter et al., 2021), used by the barycentric paper and at ``cpu`` scale here;
* :class:`ResEncoder28` / :class:`ResDecoder28` - residual PolyMNIST networks in the spirit of
  Daunhawer et al. (2022) and MMVAE+ (Palumbo et al., 2023), used by the HELVAE paper;
* :class:`DigitClassifier28` - the per-modality digit classifier used for coherence.

Networks for CelebA, CUB and MNIST-SVHN-Text are added with their data sets.
"""

from __future__ import annotations

import torch
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
