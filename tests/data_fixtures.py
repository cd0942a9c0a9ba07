"""Tiny data-set fixtures in each data set's released layout, shared by the data-set and training tests.

torchvision's MNIST idx files and SVHN .mat (:func:`make_mst_fixture`), CelebA's folder and text files
(:func:`make_celeba_fixture`), the CUB release's class folders and caption files (:func:`make_cub_fixture`).
Each fixture encodes the label in its pixels, so a test can check that the modalities of an item line up
with each other and with the label. Point a loader at one with ``root=`` or by monkeypatching
``poolvae.datasets.DATA_DIR`` to the folder the builder was given.
"""

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from poolvae import datasets as D


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as an uint8 idx file (MNIST's format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mst_fixture(root: Path) -> Path:
    """torchvision layouts: MNIST raw idx files and SVHN .mat files; pixel (0, 0) = 20 * label + 5."""
    rng = np.random.default_rng(0)
    for prefix, split, n_mnist, n_svhn in (("train", "train", 40, 30), ("t10k", "test", 25, 35)):
        y = rng.permutation(np.arange(n_mnist) % 10)
        x = rng.integers(0, 256, (n_mnist, 28, 28), dtype=np.uint8)
        x[:, 0, 0] = 20 * y + 5
        _write_idx(root / "MNIST" / "raw" / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(root / "MNIST" / "raw" / f"{prefix}-labels-idx1-ubyte", y)
        ys = rng.permutation(np.arange(n_svhn) % 10)
        xs = rng.integers(0, 256, (32, 32, 3, n_svhn), dtype=np.uint8)  # SVHN's (H, W, C, N)
        xs[0, 0, 0, :] = 20 * ys + 5
        (root / "SVHN").mkdir(exist_ok=True)
        scipy.io.savemat(root / "SVHN" / f"{split}_32x32.mat",
                         {"X": xs, "y": np.where(ys == 0, 10, ys).reshape(-1, 1)})  # SVHN labels 0 as 10
    return root


ATTRS = ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling", "Wearing_Hat"]


def make_celeba_fixture(root: Path, n: int = 6) -> Path:
    """torchvision's CelebA layout; image j is 178x218 with a centre of grey level 40 j + 20."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    present = rng.random((n, len(ATTRS))) < 0.5
    present[0] = False  # a face with no attribute: empty text
    lines = [str(n), " ".join(ATTRS)]
    for j in range(n):
        name = f"{j + 1:06d}.jpg"
        img = np.full((218, 178, 3), 250, np.uint8)  # border: cropped away
        img[35:183, 15:163] = 40 * j + 20  # the centre 148x148
        Image.fromarray(img).save(folder / "img_align_celeba" / name, quality=95)
        lines.append(name + "  " + " ".join("1" if p else "-1" for p in present[j]))
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    parts = [0, 0, 0, 1, 1, 2][:n]
    partition = "".join(f"{j + 1:06d}.jpg {p}\n" for j, p in enumerate(parts))
    (folder / "list_eval_partition.txt").write_text(partition)
    np.save(root / "present.npy", present)
    return folder


WORDS = ["this", "bird", "has", "a", "red", "crown", "and", "white", "belly", "wings"]


def make_cub_fixture(root: Path) -> Path:
    """The MMVAE release layout: class folders of jpgs and ten captions per image, one per line."""
    folder = root / "cub"
    layout = {"train": {"001.Black_footed_Albatross": 2, "003.Sooty_Albatross": 1},
              "test": {"002.Laysan_Albatross": 2}}
    for split, classes in layout.items():
        lines = []
        for cls, n in sorted(classes.items()):
            (folder / split / cls).mkdir(parents=True)
            label = int(cls[:3]) - 1
            for i in range(n):
                img = np.full((120, 90, 3), 30 * label + 10 * i, np.uint8)
                Image.fromarray(img).save(folder / split / cls / f"{cls[4:]}_{i:04d}.jpg", quality=95)
                for k in range(10):  # "rareword": 3 times in the training captions, too rare to keep
                    lines.append(f"{WORDS[(label + i + k) % 10]} Bird HAS a {WORDS[k]}, 2 wings."
                                 + (" Rareword!" if k == 0 else ""))
        (folder / D.CUB_TEXT_FILES[split]).write_text("\n".join(lines) + "\n")
    return folder
