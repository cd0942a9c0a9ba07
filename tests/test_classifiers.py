"""Coherence classifiers: architectures per modality, features consistent with logits, training on a
learnable toy task, and train-once-then-reuse storage."""

import json

import pytest
import torch

from poolvae import classifiers as C
from poolvae import datasets as ds
from poolvae.networks import DigitClassifier28


@pytest.mark.parametrize("size,channels", [(28, 3), (32, 3), (64, 3), (28, 1)])
def test_image_classifier_shapes_and_features(size, channels):
    clf = C.ImageClassifier(channels, size, outputs=7, width=4).eval()
    x = torch.rand(5, channels, size, size)
    f, logits = C.features_and_logits(clf, x)
    assert f.shape == (5, 16) and logits.shape == (5, 7)
    assert torch.allclose(logits, clf(x))


def test_digit_classifier_features_are_its_pooled_last_block():
    clf = DigitClassifier28(3, width=4).eval()
    x = torch.rand(6, 3, 28, 28)
    f, logits = C.features_and_logits(clf, x)
    assert f.shape == (6, 16)
    assert torch.allclose(logits, clf(x), atol=1e-6)  # same network, split at the last conv block
    assert torch.allclose(f, clf.net[:6](x).mean((2, 3)))


@pytest.mark.parametrize("length", [8, 256])
def test_text_classifier_on_one_hot_text(length):
    clf = C.TextClassifier(symbols=70, outputs=40, width=4).eval()
    x = torch.nn.functional.one_hot(torch.randint(0, 70, (3, length)), 70).float()
    f, logits = C.features_and_logits(clf, x)
    assert f.shape == (3, 16) and logits.shape == (3, 40)


def test_build_classifier_per_data_set():
    poly = ds.polymnist_spec()
    clf, arch = C.build_classifier(poly, poly.modalities[0], 8)
    assert isinstance(clf, DigitClassifier28) and arch["kwargs"]["classes"] == 10
    mst = ds.mnist_svhn_text_spec()
    kinds = [C.build_classifier(mst, m, 4)[1]["class"] for m in mst.modalities]
    assert kinds == ["DigitClassifier28", "ImageClassifier", "TextClassifier"]
    assert C.build_classifier(mst, mst.modalities[0], 4)[1]["kwargs"]["channels"] == 1
    celeba = ds.celeba_spec([f"a{i}" for i in range(40)])
    assert C.task(celeba) == "multilabel" and C.task(mst) == "multiclass"
    img, arch = C.build_classifier(celeba, celeba.modalities[0], 4)
    assert arch["class"] == "ImageClassifier" and img(torch.rand(2, 3, 64, 64)).shape == (2, 40)
    txt, arch = C.build_classifier(celeba, celeba.modalities[1], 4)
    assert arch["class"] == "TextClassifier" and txt(torch.rand(2, 256, 70)).shape == (2, 40)


def _toy(n, seed, multilabel=False):
    """Two modalities whose brightness encodes the label(s): a learnable task for a few steps."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        if multilabel:
            y = torch.randint(0, 2, (3,), generator=g)
            x = y.float().view(3, 1, 1).expand(3, 28, 28) * 0.8 + 0.1 * torch.rand(3, 28, 28, generator=g)
            items.append(((x, x.flip(0)), y))
        else:
            y = torch.randint(0, 3, (1,), generator=g)
            x = torch.full((3, 28, 28), float(y) / 3.0) + 0.05 * torch.rand(3, 28, 28, generator=g)
            items.append(((x, 1.0 - x), y))
    return items


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_training_learns_a_toy_task(kind):
    torch.manual_seed(0)
    multi = kind == "multilabel"
    clfs = [C.ImageClassifier(3, 28, 3, width=4) for _ in range(2)]
    settings = C.ClassifierSettings(epochs=15, batch_size=16, lr=3e-3, width=4)
    C.train_classifiers(clfs, _toy(160, 0, multi), kind, settings, progress=False)
    scores = C.test_classifiers(clfs, _toy(60, 1, multi), kind)
    for s in scores:
        assert s["accuracy"] > 0.9
        if multi:
            assert s["mean_ap"] > 0.9


def test_classifiers_are_trained_once_and_reused(tmp_path, monkeypatch):
    settings = C.ClassifierSettings(epochs=1, batch_size=64, width=4)
    kw = dict(checkpoint_dir=tmp_path / "ckpt", results_dir=tmp_path / "res", settings=settings, progress=False)
    clfs, record = C.get_classifiers("polymnist-mini", "ci", **kw)
    assert sorted(clfs) == ["m0", "m1", "m2", "m3", "m4"]
    folder, results_file = C.classifier_paths("polymnist-mini", "ci", tmp_path / "ckpt", tmp_path / "res")
    assert sorted(p.name for p in folder.iterdir()) == [f"m{i}.pt" for i in range(5)]
    saved = json.loads(results_file.read_text())
    assert set(saved["test"]) == set(clfs) and all(0.0 <= v["accuracy"] <= 1.0 for v in saved["test"].values())
    assert saved["n_train"] == 500 and saved["n_test"] == 100 and saved["scale"] == "ci"

    def no_training(*a, **k):
        raise AssertionError("classifiers were trained again")

    monkeypatch.setattr(C, "train_classifiers", no_training)
    again, record2 = C.get_classifiers("polymnist-mini", "ci", **kw)
    x = torch.rand(4, 3, 28, 28)
    assert torch.equal(again["m3"](x), clfs["m3"].eval()(x))
    assert record2["test"] == saved["test"]
    with pytest.raises(AssertionError, match="trained again"):  # other settings: trained anew
        C.get_classifiers("polymnist-mini", "ci", **dict(kw, settings=C.ClassifierSettings(epochs=2, width=4)))


def test_ci_classifier_results_go_to_the_ignored_ci_folder():
    # a ci run retrains its classifiers in seconds with other numbers: its file must not be a tracked one
    from poolvae.artefacts import RESULTS_DIR

    _, ci = C.classifier_paths("polymnist-mini", "ci")
    _, cpu = C.classifier_paths("polymnist-mini", "cpu")
    assert ci == RESULTS_DIR / "ci" / "classifiers" / "polymnist-mini.json"
    assert cpu == RESULTS_DIR / "classifiers" / "cpu" / "polymnist-mini.json"
    gitignore = (RESULTS_DIR.parent / ".gitignore").read_text().split()
    assert "results/ci/" in gitignore
