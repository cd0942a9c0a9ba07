"""Generative quality: the Fréchet distance, FID through torch-fidelity, and its offline stand-in.

The Fréchet distance between two Gaussians fitted to feature sets (Heusel et al., 2017),

    FD = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}),                                  (FD)

is computed here from features of any extractor:

* ``fid`` - torch-fidelity's Inception-v3 (``inception-v3-compat``, 2048-d pool features), the FID
  that the papers report. The weights file :data:`INCEPTION_WEIGHTS_FILE` is never downloaded: it is
  read from a path given explicitly or from the torch hub cache, and its absence is an error that
  names the file and where it goes (:func:`inception_weights_path`).
* ``fd_classifier`` - the same distance in the features of the coherence classifiers (global
  average of their last convolutional block, :func:`poolvae.classifiers.features_and_logits`). It is
  what the ``cpu`` and ``ci`` scales report where no Inception weights exist; it lives under its own
  metric name and is never comparable with FID values.

:func:`frechet_distance` implements (FD) with ``scipy.linalg.sqrtm`` (``method="sqrtm"``, the
reference) or with two symmetric eigendecompositions (``method="eigh"``, the default: the same
number, ``tr (S_1 S_2)^{1/2} = tr (S_1^{1/2} S_2 S_1^{1/2})^{1/2}``, several times faster and never
complex). The tests compare both with the closed form for Gaussian samples and with torch-fidelity.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

#: torch-fidelity's FID Inception weights (converted from the TensorFlow graph of the original FID code).
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
INCEPTION_EXTRACTOR = "inception-v3-compat"
INCEPTION_LAYER = "2048"


# --------------------------------------------------------------------------------------------------
# The Fréchet distance
# --------------------------------------------------------------------------------------------------


def gaussian_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and unbiased covariance (F, F) of features (N, F), in float64."""
    f = np.asarray(features.detach().cpu() if torch.is_tensor(features) else features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, F); got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues -> 0)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "eigh") -> float:
    """(FD) between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``method="sqrtm"`` follows the reference implementation of Heusel et al. (``scipy.linalg.sqrtm``
    of ``sigma1 @ sigma2``, a small diagonal offset if the product is singular, the real part);
    ``method="eigh"`` uses ``tr (S1 S2)^{1/2} = tr (S1^{1/2} S2 S1^{1/2})^{1/2}``, whose matrix is
    symmetric positive semi-definite.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shapes do not match: {mu1.shape}, {mu2.shape}, {s1.shape}, {s2.shape}")
    diff = mu1 - mu2
    if method == "sqrtm":
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():  # singular product: offset the diagonals (Heusel et al.)
            offset = np.eye(s1.shape[0]) * 1e-6
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        tr_covmean = float(np.trace(np.real(covmean)))
    elif method == "eigh":
        r = _psd_sqrt(s1)
        tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum())
    else:
        raise ValueError(f"unknown method {method!r}; valid: eigh, sqrtm")
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_features(f1: Tensor | np.ndarray, f2: Tensor | np.ndarray, method: str = "eigh") -> float:
    """(FD) between Gaussians fitted to two feature sets (N1, F) and (N2, F)."""
    return frechet_distance(*gaussian_statistics(f1), *gaussian_statistics(f2), method=method)


# --------------------------------------------------------------------------------------------------
# Features through torch-fidelity
# --------------------------------------------------------------------------------------------------


def to_uint8_rgb(images: Tensor) -> Tensor:
    """Images (N, C, H, W) in [0, 1] -> uint8 (N, 3, H, W), the input torch-fidelity extractors take;
    one channel is repeated to three."""
    x = (images.detach().float().clamp(0, 1) * 255.0 + 0.5).floor().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels; got images of shape {tuple(images.shape)}")
    return x.contiguous()


def inception_weights_path(path: str | os.PathLike | None = None) -> Path:
    """The Inception weights file: ``path`` if given, else the torch hub cache; never downloaded.

    Raises ``FileNotFoundError`` naming the file, where to get it and where to put it.
    """
    hub = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    candidate = Path(path).expanduser() if path else hub
    if candidate.is_dir():
        candidate = candidate / INCEPTION_WEIGHTS_FILE
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(
        f"FID needs torch-fidelity's Inception-v3 weights {INCEPTION_WEIGHTS_FILE} (about 91 MB); not found "
        f"at {candidate}. Nothing is downloaded at run time. On a machine with internet get it from "
        f"{INCEPTION_WEIGHTS_URL} and put it at {hub} (the torch hub cache, $TORCH_HOME/hub/checkpoints/), "
        f"or anywhere and pass its path: `python -m poolvae.evaluate RUN_DIR --inception-weights PATH`. "
        f"Without it, the cpu and ci scales report `fd_classifier` instead of FID.")


class FeatureExtractor:
    """A torch-fidelity feature extractor, created once and applied to image tensors in batches.

    Args:
        name: a name in torch-fidelity's registry (``inception-v3-compat``, or one registered with
            ``torch_fidelity.register_feature_extractor``).
        layer: the feature layer (``"2048"`` for Inception's FID features).
        weights_path: weights file; for Inception, resolved by :func:`inception_weights_path` so that
            torch-fidelity never downloads.
        device: ``"cuda"`` or ``"cpu"`` (default: cuda if available).
    """

    def __init__(self, name: str = INCEPTION_EXTRACTOR, layer: str = INCEPTION_LAYER,
                 weights_path: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 64):
        from torch_fidelity.utils import create_feature_extractor

        self.name, self.layer, self.batch_size = name, layer, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs = {"verbose": False}
        if name == INCEPTION_EXTRACTOR:
            weights_path = inception_weights_path(weights_path)
        if weights_path is not None:
            kwargs["feature_extractor_weights_path"] = str(weights_path)
        self.weights = str(weights_path) if weights_path is not None else None
        self.module = create_feature_extractor(name, [layer], cuda=self.device == "cuda", **kwargs)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """Features (N, F) in float64 on the CPU of images (N, C, H, W) in [0, 1]."""
        out = []
        for i in range(0, images.shape[0], self.batch_size):
            x = to_uint8_rgb(images[i:i + self.batch_size]).to(self.device)
            out.append(self.module(x)[0].double().cpu())
        return torch.cat(out)

    def describe(self) -> dict:
        """What goes into evaluation.json about this extractor."""
        return {"name": self.name, "layer": self.layer, "weights": self.weights, "library": "torch-fidelity"}


def fid_from_features(f1: Tensor, f2: Tensor) -> float:
    """FID exactly as torch-fidelity computes it from two feature sets (its statistics and formula)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    s1, s2 = fid_features_to_statistics(f1.double().cpu()), fid_features_to_statistics(f2.double().cpu())
    return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])
