"""Per-modality classifiers that judge generated samples (coherence) and give features (``fd_classifier``).

HEL B.2: "we first train classifier networks on the training samples of each individual modality";
WB App. B: "a classifier (which has the same architectures as the unimodal encoders) for every
modality". One classifier per modality:

=====================  =========================================  ===========================
data set               modality -> classifier                     task
=====================  =========================================  ===========================
PolyMNIST(-mini)       m0..m4 -> :class:`~poolvae.networks.DigitClassifier28`   10 digits
MNIST-SVHN-Text        mnist -> DigitClassifier28 (1 channel);    10 digits
                       svhn -> :class:`ImageClassifier` (32x32);
                       text -> :class:`TextClassifier`
bimodal CelebA         img -> ImageClassifier (64x64); text ->    40 attributes, multi-label
                       TextClassifier
CUB                    none: colour coherence by HSV counts       (:mod:`poolvae.metrics`)
=====================  =========================================  ===========================

They are trained once per data set and scale on the full training split, saved under the git-ignored
``checkpoints/classifiers/<scale>/<dataset>/<modality>.pt``, their test accuracy written to
``results/classifiers/<scale>/<dataset>.json`` (at the ``ci`` scale to the git-ignored
``results/ci/classifiers/<dataset>.json``, like every ci artefact), and reused while the settings match::

    python -m poolvae.classifiers --dataset polymnist-mini --scale cpu

Features for the Fréchet distance (:func:`features_and_logits`) are the global average of the last
convolutional block, the analogue of Inception's pool features: 4 x width numbers (128 at width 32).
DigitClassifier28's own penultimate vector is that block flattened (16 times as many numbers); a
Fréchet distance needs a covariance estimated from the samples, and with 1,000 samples a
2,048-dimensional covariance is singular.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in every notebook

from . import datasets as ds
from .artefacts import REPO_ROOT, RESULTS_DIR, provenance, read_json, write_json
from .networks import DigitClassifier28

CLASSIFIER_DIR = REPO_ROOT / "checkpoints" / "classifiers"
CLASSIFIER_RESULTS_DIR = RESULTS_DIR / "classifiers"


@dataclass
class ClassifierSettings:
    """How the coherence classifiers of a data set are trained; defaults per scale in :data:`SETTINGS`."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    width: int = 32  # base channel count
    seed: int = 0


SETTINGS: dict[str, ClassifierSettings] = {
    "ci": ClassifierSettings(epochs=3, batch_size=32, width=8),  # seconds; plumbing, not accuracy
    # PolyMNIST-mini (4,000 training images): about 90-95 % test accuracy in a minute on two cores;
    # ten epochs gain less than a point
    "cpu": ClassifierSettings(epochs=5, batch_size=32, width=32),
    # our choice: the papers give no classifier schedule
    "paper": ClassifierSettings(epochs=10, batch_size=128, width=32),
}


# --------------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------------


class ImageClassifier(nn.Module):
    """Stride-2 convolutions down to 4x4, global average pooling, a linear head.

    For square images of side 28, 32 or 64 (SVHN, CelebA); ``outputs`` logits (classes, or one per
    binary attribute).
    """

    def __init__(self, channels: int, size: int, outputs: int, width: int = 32):
        super().__init__()
        layers, c_in, c_out, side = [], channels, width, size
        while side > 4:
            layers += [nn.Conv2d(c_in, c_out, 4 if side % 2 == 0 else 3, 2, 1), nn.ReLU()]
            side = (side + 1) // 2
            c_in, c_out = c_out, min(2 * c_out, 4 * width)
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(c_in, outputs))

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pooled features (B, 4 * width) and logits (B, outputs)."""
        h = self.body(x).mean((2, 3))
        return h, self.head(h)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, outputs) (:meth:`features_and_logits` without the features)."""
        return self.features_and_logits(x)[1]


class TextClassifier(nn.Module):
    """1-D convolutions over one-hot text (B, length, symbols), global average pooling, a linear head."""

    def __init__(self, symbols: int, outputs: int, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(symbols, 2 * width, 3, 1, 1), nn.ReLU(),
            nn.Conv1d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv1d(4 * width, 4 * width, 3, 2, 1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(4 * width, outputs))

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pooled features (B, 4 * width) and logits (B, outputs)."""
        h = self.body(x.transpose(1, 2)).mean(-1)  # (B, symbols, length) -> (B, 4w)
        return h, self.head(h)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, outputs) (:meth:`features_and_logits` without the features)."""
        return self.features_and_logits(x)[1]


def features_and_logits(clf: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Features for the Fréchet distance and logits of any coherence classifier.

    For :class:`~poolvae.networks.DigitClassifier28` the features are its last convolutional block
    (``net[:6]``, after the ReLU) averaged over the 4x4 positions; the logits are the rest of its
    network applied to the same block, so they equal ``clf(x)``.
    """
    if isinstance(clf, DigitClassifier28):
        h = clf.net[:6](x)  # (B, 4w, 4, 4)
        return h.mean((2, 3)), clf.net[6:](h)
    return clf.features_and_logits(x)


def task(spec: ds.DatasetSpec) -> str:
    """``"multiclass"`` (one label: digit) or ``"multilabel"`` (several binary attributes: CelebA)."""
    return "multilabel" if len(spec.label_names) > 1 else "multiclass"


def build_classifier(spec: ds.DatasetSpec, modality: ds.ModalitySpec, width: int) -> tuple[nn.Module, dict]:
    """The classifier of one modality and its (class, kwargs) record for rebuilding it."""
    if spec.name == "cub":
        raise ValueError("CUB has no coherence classifiers: its coherence is the colour protocol "
                         "(poolvae.metrics.colour_coherence)")
    outputs = spec.num_classes if task(spec) == "multiclass" else len(spec.label_names)
    if modality.kind == "text":
        cls, kwargs = TextClassifier, dict(symbols=modality.shape[-1], outputs=outputs, width=width)
    elif modality.shape[1:] == (28, 28) and task(spec) == "multiclass":
        cls, kwargs = DigitClassifier28, dict(channels=modality.shape[0], width=width, classes=outputs)
    else:
        cls, kwargs = ImageClassifier, dict(channels=modality.shape[0], size=modality.shape[1], outputs=outputs,
                                            width=width)
    return cls(**kwargs), {"class": cls.__name__, "kwargs": kwargs}


_CLASSES = {c.__name__: c for c in (DigitClassifier28, ImageClassifier, TextClassifier)}


# --------------------------------------------------------------------------------------------------
# Training, testing, storing
# --------------------------------------------------------------------------------------------------


def _loss(logits: Tensor, y: Tensor, kind: str) -> Tensor:
    return F.cross_entropy(logits, y[:, 0]) if kind == "multiclass" else \
        F.binary_cross_entropy_with_logits(logits, y.float())


def train_classifiers(classifiers: list[nn.Module], data, kind: str, settings: ClassifierSettings,
                      device: str = "cpu", progress: bool = True) -> None:
    """Train one classifier per modality in the same passes over ``data`` (items ``(modalities, labels)``)."""
    gen = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=settings.batch_size, shuffle=True, generator=gen)
    opts = [torch.optim.Adam(c.parameters(), lr=settings.lr) for c in classifiers]
    for c in classifiers:
        c.to(device).train()
    for epoch in range(settings.epochs):
        bar = tqdm(loader, desc=f"classifiers epoch {epoch + 1}/{settings.epochs}", disable=not progress, leave=False)
        for xs, y in bar:
            y = y.to(device)
            for c, opt, x in zip(classifiers, opts, xs, strict=True):
                loss = _loss(c(x.to(device)), y, kind)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    for c in classifiers:
        c.eval()


@torch.no_grad()
def test_classifiers(classifiers: list[nn.Module], data, kind: str, batch_size: int = 256,
                     device: str = "cpu") -> list[dict[str, float]]:
    """Per modality: test accuracy (multiclass), or mean per-attribute accuracy and mean AP (multilabel)."""
    from .metrics import average_precision_per_attribute

    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    logits: list[list[Tensor]] = [[] for _ in classifiers]
    labels = []
    for xs, y in loader:
        labels.append(y)
        for m, (c, x) in enumerate(zip(classifiers, xs, strict=True)):
            logits[m].append(c.eval()(x.to(device)).cpu())
    y = torch.cat(labels)
    out = []
    for lg in logits:
        lg = torch.cat(lg)
        if kind == "multiclass":
            out.append({"accuracy": float((lg.argmax(1) == y[:, 0]).float().mean())})
        else:
            ap = average_precision_per_attribute(torch.sigmoid(lg).numpy(), y.numpy())
            out.append({"accuracy": float(((lg > 0).long() == y).float().mean()), "mean_ap": float(np.nanmean(ap))})
    return out


#: Where the ``ci`` scale's results files go when the default results folder is asked for: ci classifiers are
#: retrained in seconds with other numbers each time, so their files must not be tracked (``results/ci`` is ignored).
CI_CLASSIFIER_RESULTS_DIR = RESULTS_DIR / "ci" / "classifiers"


def classifier_paths(dataset: str, scale: str, checkpoint_dir: str | os.PathLike = CLASSIFIER_DIR,
                     results_dir: str | os.PathLike = CLASSIFIER_RESULTS_DIR) -> tuple[Path, Path]:
    """(folder of the checkpoints, results file) of a data set's classifiers at a scale: the results file is
    ``<results_dir>/<scale>/<dataset>.json``, except at scale ``ci`` with the default ``results_dir``, where it is
    ``results/ci/classifiers/<dataset>.json`` (:data:`CI_CLASSIFIER_RESULTS_DIR`)."""
    if scale == "ci" and Path(results_dir).resolve() == CLASSIFIER_RESULTS_DIR.resolve():
        return Path(checkpoint_dir) / scale / dataset, CI_CLASSIFIER_RESULTS_DIR / f"{dataset}.json"
    return Path(checkpoint_dir) / scale / dataset, Path(results_dir) / scale / f"{dataset}.json"


def get_classifiers(dataset: str, scale: str, checkpoint_dir: str | os.PathLike = CLASSIFIER_DIR,
                    results_dir: str | os.PathLike = CLASSIFIER_RESULTS_DIR, settings: ClassifierSettings | None = None,
                    device: str = "cpu", progress: bool = True) -> tuple[dict[str, nn.Module], dict]:
    """The coherence classifiers of ``dataset`` at ``scale`` (eval mode, by modality name) and their record.

    Loaded from ``checkpoint_dir`` when every modality's checkpoint exists with the same settings;
    otherwise trained on the training split, tested on the test split and saved. The record (also
    written to the results file) holds the settings, sample counts and test accuracy per modality.
    """
    settings = settings or SETTINGS[scale]
    folder, results_file = classifier_paths(dataset, scale, checkpoint_dir, results_dir)
    spec = ds.get_dataset(dataset, "test", scale=scale).spec
    kind = task(spec)
    wanted = dataclasses.asdict(settings)
    files = {m.name: folder / f"{m.name}.pt" for m in spec.modalities}
    states = {k: torch.load(f, map_location="cpu", weights_only=False) for k, f in files.items() if f.exists()}
    if len(states) == len(files) and all(s["settings"] == wanted for s in states.values()) \
            and results_file.exists():
        clfs = {}
        for name, s in states.items():
            clf = _CLASSES[s["architecture"]["class"]](**s["architecture"]["kwargs"])
            clf.load_state_dict(s["state_dict"])
            clfs[name] = clf.to(device).eval()
        return clfs, read_json(results_file)
    t0 = time.perf_counter()
    train, test = ds.get_dataset(dataset, "train", scale=scale), ds.get_dataset(dataset, "test", scale=scale)
    torch.manual_seed(settings.seed)
    built = [build_classifier(spec, m, settings.width) for m in spec.modalities]
    clfs_list = [b[0] for b in built]
    train_classifiers(clfs_list, train, kind, settings, device, progress)
    scores = test_classifiers(clfs_list, test, kind, device=device)
    folder.mkdir(parents=True, exist_ok=True)
    for m, (clf, arch) in zip(spec.modalities, built, strict=True):
        tmp = files[m.name].with_suffix(".tmp")
        torch.save({"state_dict": clf.state_dict(), "architecture": arch, "settings": wanted}, tmp)
        tmp.replace(files[m.name])
    record = {
        "dataset": dataset, "scale": scale, "task": kind, "settings": wanted,
        "n_train": len(train), "n_test": len(test),
        "test": {m.name: s for m, s in zip(spec.modalities, scores, strict=True)},
        "architectures": {m.name: arch for m, (_, arch) in zip(spec.modalities, built, strict=True)},
        "checkpoints": {k: os.path.relpath(f, REPO_ROOT) for k, f in files.items()},
        "seconds": time.perf_counter() - t0,
        "provenance": provenance(seed=settings.seed, scale=scale),
    }
    write_json(results_file, record)
    return {m.name: c for m, c in zip(spec.modalities, clfs_list, strict=True)}, record


def main(argv=None) -> None:
    """Command line: train (or load) the coherence classifiers of one data set and print their accuracy."""
    p = argparse.ArgumentParser(description="Train the coherence classifiers of a data set (once per scale).")
    p.add_argument("--dataset", default="polymnist-mini", help=f"one of: {', '.join(ds.DATASETS)}")
    p.add_argument("--scale", default="cpu", choices=tuple(SETTINGS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    _, record = get_classifiers(a.dataset, a.scale, device=a.device, progress=not a.no_progress)
    for name, s in record["test"].items():
        print(f"{a.dataset} {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in s.items()))


if __name__ == "__main__":
    main()
