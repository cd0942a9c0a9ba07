"""Tests of poolvae.datasets: specs and weights, the registry, and each data set loaded from a tiny
fixture in its released layout (torchvision's MNIST idx files and SVHN .mat, CelebA's folder and text
files, the CUB release's class folders and caption files), written by ``tests/data_fixtures.py``.

Each fixture encodes the label in its pixels, so a test can check that the modalities of an item line
up with each other and with the label.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import ATTRS, make_celeba_fixture, make_cub_fixture, make_mst_fixture
from PIL import Image

from poolvae import datasets as D
from poolvae import polymnist as pm
from poolvae import text as tx

# ---------------------------------------------------------------------------- specs and registry


def test_dimensionality_and_likelihood_weights():
    mst = D.mnist_svhn_text_spec()
    assert [m.dimensionality for m in mst.modalities] == [784, 3072, 8]
    w = D.likelihood_weights(mst)
    assert w == pytest.approx({"mnist": 3072 / 784, "svhn": 1.0, "text": 384.0})
    assert D.likelihood_weights(D.polymnist_spec()) == {f"m{k}": 1.0 for k in range(5)}
    celeba = D.celeba_spec(["Smiling"])
    assert D.likelihood_weights(celeba) == {"img": 1.0, "text": 12288 / 256}
    assert mst.modality("text").symbols == tuple(tx.ALPHABET)
    with pytest.raises(KeyError, match="has no modality 'audio'"):
        mst.modality("audio")


def test_spec_validation():
    with pytest.raises(ValueError, match="likelihood"):
        D.ModalitySpec("x", "image", (1, 2, 2), "gaussian")
    with pytest.raises(ValueError, match="kind"):
        D.ModalitySpec("x", "audio", (1, 2, 2), "laplace")
    with pytest.raises(ValueError, match="symbols"):
        D.ModalitySpec("t", "text", (8, 3), "categorical", ("a", "b"))


def test_get_dataset_errors_list_the_valid_choices(tmp_path):
    valid = "valid names: polymnist, polymnist-mini, mnist-svhn-text, mnist-svhn-text-mini, celeba, cub"
    with pytest.raises(ValueError, match=valid):
        D.get_dataset("imagenet", "train", tmp_path)
    with pytest.raises(ValueError, match="valid: train, test"):
        D.get_dataset("cub", "validation", tmp_path)
    with pytest.raises(ValueError, match="valid: ci, cpu, paper"):
        D.get_dataset("cub", "train", tmp_path, scale="huge")


@pytest.mark.parametrize("name, source", [("polymnist", "zenodo.org/record/4899160"),
                                          ("mnist-svhn-text", "ossci-datasets"),
                                          ("celeba", "mmlab.ie.cuhk.edu.hk"),
                                          ("cub", "robots.ox.ac.uk/~yshi/mmdgm/datasets/cub.zip")])
def test_a_missing_data_set_says_what_where_to_get_it_and_where_to_put_it(tmp_path, name, source):
    with pytest.raises(FileNotFoundError) as err:
        D.get_dataset(name, "train", tmp_path, scale="paper")
    msg = str(err.value)
    title = {"polymnist": "PolyMNIST", "mnist-svhn-text": "MNIST-SVHN-Text", "celeba": "bimodal CelebA",
             "cub": "CUB Image-Captions"}[name]
    assert title in msg and source in msg
    assert {"polymnist": "data/PolyMNIST/", "mnist-svhn-text": "data/MNIST/raw/", "celeba": "data/celeba/",
            "cub": "data/cub/"}[name] in msg


# ---------------------------------------------------------------------------- PolyMNIST(-mini)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A data folder with a small PolyMNIST-mini (3/2 digits per class) built once."""
    root = tmp_path_factory.mktemp("data")
    pm.ensure_polymnist_mini(root / "polymnist-mini", 0, 3, 2)
    return root


def test_polymnist_items_match_the_files(data_root, monkeypatch):
    monkeypatch.setitem(D.MINI_PER_CLASS, "cpu", (3, 2))
    ds = D.get_dataset("polymnist", "test", data_root, scale="cpu")  # cpu scale -> the mini set
    assert ds.spec.name == "polymnist-mini" and len(ds) == 20
    assert ds.spec.names == ("m0", "m1", "m2", "m3", "m4")
    for n in (0, 7, 19):
        (xs, label) = ds[n]
        i, c = ds.keys[n]
        assert label.tolist() == [c] and label.dtype == torch.long
        for k, x in enumerate(xs):
            assert x.shape == (3, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
            with Image.open(data_root / "polymnist-mini" / "test" / f"m{k}" / f"{i}.{c}.png") as im:
                pixels = (x * 255).round().byte().permute(1, 2, 0).numpy()
                np.testing.assert_array_equal(pixels, np.asarray(im))
    assert [ds[n][1].item() for n in range(10)] == list(range(10))  # (index, label) order
    with pytest.raises(IndexError):
        ds[20]


def test_ci_scale_uses_the_small_mini_and_limit_subsets(tmp_path, monkeypatch):
    monkeypatch.setitem(D.MINI_PER_CLASS, "ci", (2, 1))
    ds = D.get_dataset("polymnist", "train", tmp_path, scale="ci", limit=7)
    assert (tmp_path / "polymnist-mini-ci" / "manifest.json").exists() and len(ds) == 7
    assert not (tmp_path / "polymnist-mini").exists()
    # the subset: seeded, without repeats, in the original order, and its items are the full set's rows
    full = D.get_dataset("polymnist", "train", tmp_path, scale="ci")
    assert len(full) > 7 and np.all(np.diff(ds._rows) > 0) and ds._rows[-1] < len(full)
    assert np.array_equal(ds._rows, D.get_dataset("polymnist", "train", tmp_path, scale="ci", limit=7)._rows)
    for i in (0, 3, 6):
        (xs, label), (full_xs, full_label) = ds[i], full[int(ds._rows[i])]
        assert label == full_label and all(torch.equal(a, b) for a, b in zip(xs, full_xs, strict=True))


# ---------------------------------------------------------------------------- MNIST-SVHN-Text


def test_mnist_svhn_text_pairs_line_up(tmp_path, monkeypatch):
    root = make_mst_fixture(tmp_path)
    ds = D.get_dataset("mnist-svhn-text", "train", root, scale="paper", check_md5=False,
                       data_multiplication=3)
    # Per class n = min(#mnist, #svhn) = 3 (4 MNIST and 3 SVHN digits per class), times 3.
    assert len(ds) == 10 * 3 * 3
    for n in range(len(ds)):
        (mnist, svhn, text), label = ds[n]
        c = label.item()
        assert mnist.shape == (1, 28, 28) and svhn.shape == (3, 32, 32) and text.shape == (8, 70)
        assert round(mnist[0, 0, 0].item() * 255) == 20 * c + 5 == round(svhn[0, 0, 0].item() * 255)
        s = ds.decode_text("text", text)
        assert s.strip() == tx.DIGIT_WORDS[c] and len(s) == 8 and not s.endswith(tx.DIGIT_WORDS[c])
    counts = np.bincount(ds.mnist_idx, minlength=40)
    assert set(counts[counts > 0]) == {3}  # each paired MNIST digit has 3 SVHN partners
    assert len({ds[n][1].item() for n in range(10)}) > 3  # stored in a shuffled order
    # The pair file is written once and reused; a new seed draws new pairs.
    files = list((root / "MNIST-SVHN-Text").glob("train-pairs-*.npz"))
    assert len(files) == 1
    monkeypatch.setattr(D, "pair_indices", lambda *a, **k: pytest.fail("pairs drawn again"))
    again = D.MnistSvhnText(root, "train", check_md5=False, data_multiplication=3)
    assert np.array_equal(again.mnist_idx, ds.mnist_idx) and np.array_equal(again.text_start, ds.text_start)
    monkeypatch.undo()
    other = D.MnistSvhnText(root, "train", seed=1, check_md5=False, data_multiplication=3)
    assert not np.array_equal(other.mnist_idx, ds.mnist_idx)
    test = D.MnistSvhnText(root, "test", check_md5=False, data_multiplication=2)
    assert len(test) == 2 * (5 * 3 + 5 * 2)  # n = min(#MNIST, #SVHN) per class: 3 for 0-4, 2 for 5-9


def test_pair_indices_follow_rand_match_on_idx():
    la = np.array([0, 1, 0, 1, 0, 1, 0])
    lb = np.array([1, 1, 0, 0, 0, 1, 1, 1])
    ia, ib = D.pair_indices(la, lb, np.random.default_rng(0), data_multiplication=4, max_per_class=10)
    assert np.array_equal(la[ia], lb[ib])
    # class 0: n = min(4, 3) = 3, the first three MNIST indices of the class; class 1: n = 3.
    assert sorted(set(ia[la[ia] == 0].tolist())) == [0, 2, 4]
    assert len(ia) == 4 * (3 + 3) and np.bincount(ia).tolist() == [4, 4, 4, 4, 4, 4]
    ia, _ = D.pair_indices(la, lb, np.random.default_rng(0), data_multiplication=1, max_per_class=1)
    assert sorted(ia.tolist()) == [0, 1]


def test_mnist_svhn_text_missing_and_corrupt_files(tmp_path):
    root = make_mst_fixture(tmp_path)
    (root / "SVHN" / "test_32x32.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"MNIST-SVHN-Text: SVHN not found at .*test_32x32\.mat.*"
                                                r"ufldl\.stanford\.edu.*data/SVHN/"):
        D.MnistSvhnText(root, "test", check_md5=False)
    with pytest.raises(ValueError, match=r"train_32x32\.mat fails its MD5 check"):
        D.MnistSvhnText(root, "train", check_md5=True)  # a fixture cannot match the real file's MD5
    mat = root / "SVHN" / "train_32x32.mat"
    mat.write_bytes(mat.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cannot read .*train_32x32\.mat"):
        D.MnistSvhnText(root, "train", check_md5=False)
    images = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte has \d+ bytes, its header promises"):
        D.MnistSvhnText(root, "test")
    images.unlink()
    with pytest.raises(FileNotFoundError, match="MNIST-SVHN-Text: MNIST not found"):
        D.MnistSvhnText(root, "test")


# ---------------------------------------------------------------------------- bimodal CelebA

def test_celeba_items_line_up_and_text_round_trips(tmp_path):
    folder = make_celeba_fixture(tmp_path)
    present = np.load(tmp_path / "present.npy")
    train = D.get_dataset("celeba", "train", tmp_path, scale="paper")
    assert len(train) == 3 and train.spec.label_names == tuple(ATTRS)
    for j in range(3):
        (img, text), labels = train[j]
        assert img.shape == (3, 64, 64) and text.shape == (256, 70)
        assert abs(img.mean().item() * 255 - (40 * j + 20)) < 3  # centre crop, border gone
        assert labels.tolist() == present[j].astype(int).tolist()
        s = train.decode_text("text", text)
        assert len(s) == 256 and tx.strip_padding(s, "*") == tx.attribute_text(ATTRS, present[j])
    assert set(train.decode_text("text", train[0][0][1])) == {"*"}
    # Starts are fixed by the seed: the same on reload, different for another seed.
    assert D.BimodalCelebA(folder, "train").texts == train.texts
    reseeded = D.BimodalCelebA(folder, "train", seed=5).texts
    assert any(a != b for a, b in zip(reseeded, train.texts, strict=True) if tx.strip_padding(a, "*"))
    # "test" is the validation partition by default (as the original code), the test partition on request.
    assert D.BimodalCelebA(folder, "test").image_names == ["000004.jpg", "000005.jpg"]
    assert D.BimodalCelebA(folder, "test", test_partition="test").image_names == ["000006.jpg"]


def test_celeba_start_is_independent_of_the_split(tmp_path):
    folder = make_celeba_fixture(tmp_path)
    val = D.BimodalCelebA(folder, "test")
    (folder / "list_eval_partition.txt").write_text("".join(f"{j + 1:06d}.jpg 1\n" for j in range(6)))
    everything = D.BimodalCelebA(folder, "test")
    assert everything.texts[3:5] == val.texts


def test_celeba_errors_name_the_file(tmp_path):
    folder = make_celeba_fixture(tmp_path)
    attr = folder / "list_attr_celeba.txt"
    good = attr.read_text()
    attr.write_text("\n".join(good.splitlines()[:-2]))  # truncated
    with pytest.raises(ValueError, match=r"list_attr_celeba\.txt announces 6 rows but has 4"):
        D.BimodalCelebA(folder, "train")
    attr.write_text(good)
    (folder / "img_align_celeba" / "000002.jpg").unlink()
    with pytest.raises(ValueError, match=r"do not line up: image .*000002\.jpg"):
        D.BimodalCelebA(folder, "train")
    jpg = folder / "img_align_celeba" / "000003.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    ds = D.BimodalCelebA(folder, "test", test_partition="test")  # 000006 only: fine
    assert len(ds) == 1
    make_celeba_fixture(tmp_path / "b")
    bad = tmp_path / "b" / "celeba" / "img_align_celeba" / "000002.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cannot decode .*000002\.jpg \(corrupt or truncated"):
        D.BimodalCelebA(tmp_path / "b" / "celeba", "train")[1]
    (tmp_path / "b" / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(ValueError, match=r"000002\.jpg of .*list_attr_celeba\.txt is not in"):
        D.BimodalCelebA(tmp_path / "b" / "celeba", "train")


# ---------------------------------------------------------------------------- CUB Image-Captions

def test_cub_pairs_ten_captions_per_image_and_round_trips(tmp_path):
    folder = make_cub_fixture(tmp_path)
    train = D.get_dataset("cub", "train", tmp_path, scale="paper")
    assert len(train) == 30 and train.spec.modalities[1].shape == (32, len(train.vocabulary))
    assert train.vocabulary.words[:3] == ("<unk>", "<pad>", "<eos>")
    assert "rareword" not in train.vocabulary.words and "wings" in train.vocabulary.words
    images = [(0, 0), (0, 1), (2, 0)]  # (class, image in class) in ImageFolder order
    for j in (0, 9, 10, 19, 20, 29):
        (img, text), label = train[j]
        cls, i = images[j // 10]
        assert label.tolist() == [cls] and img.shape == (3, 64, 64)
        assert abs(img.mean().item() * 255 - (30 * cls + 10 * i)) < 3
        decoded = train.decode_text("text", text)
        assert decoded == " ".join(w if w in train.vocabulary.index else "<unk>"
                                   for w in tx.tokenize(train.captions[j]))
        assert decoded.endswith("<unk>") == (j % 10 == 0)
    test = D.CUBImageCaptions(folder, "test")
    assert len(test) == 20 and test.vocabulary == train.vocabulary  # vocabulary from training captions
    assert test[15][1].tolist() == [1]


def test_cub_errors(tmp_path):
    folder = make_cub_fixture(tmp_path)
    text = folder / D.CUB_TEXT_FILES["test"]
    text.write_text("\n".join(text.read_text().splitlines()[:-1]))
    with pytest.raises(ValueError, match=r"do not line up: .*testclasses\.txt has 19 captions for 2 images"):
        D.CUBImageCaptions(folder, "test")
    jpg = next((folder / "train" / "003.Sooty_Albatross").iterdir())
    jpg.write_bytes(jpg.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cannot decode .*Sooty_Albatross_0000\.jpg"):
        D.CUBImageCaptions(folder, "train")[25]
    (folder / D.CUB_TEXT_FILES["train"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"CUB Image-Captions not found at .*text_trainvalclasses"):
        D.CUBImageCaptions(folder, "test")


def test_status_reports_presence_without_building(tmp_path):
    make_cub_fixture(tmp_path)
    make_mst_fixture(tmp_path)
    state = D.status(tmp_path)
    assert state["cub"] == "present" and state["mnist-svhn-text"] == "present"
    assert "zenodo" in state["polymnist"] and "mmlab" in state["celeba"]
    assert state["polymnist-mini"].startswith("not built yet")
    assert not (tmp_path / "MNIST-SVHN-Text").exists() and not (tmp_path / "polymnist-mini").exists()


# ---------------------------------------------------------------------------- hel-fig8


def test_hel_fig8_draws_what_is_present_and_records_what_is_skipped(data_root, tmp_path):
    make_celeba_fixture(data_root)
    out = tmp_path / "out"
    record = D.hel_fig8(data_root, n_columns=4, figures_dir=out, results_path=out / "hel-fig8.json",
                        mini_per_class=(3, 2), mst_per_class=(2, 1))
    assert [d["dataset"] for d in record["drawn"]] == ["polymnist-mini", "mnist-svhn-text-mini", "celeba"]
    skipped = {s["dataset"]: s["reason"] for s in record["skipped"]}
    assert set(skipped) == {"polymnist", "cub"} and "zenodo" in skipped["polymnist"]
    assert record["drawn"][0]["labels"] == [[0], [1], [2], [3]]
    assert (out / "hel-fig8.png").stat().st_size > 1000 and (out / "hel-fig8.pdf").exists()
    assert '"item": "hel-fig8"' in (out / "hel-fig8.json").read_text()
