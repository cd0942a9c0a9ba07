"""The evaluation pipeline: known answers through stub models, CUB captions, settings, and an end-to-end
`python -m poolvae.evaluate` on a ci-scale run that writes evaluation.json with the documented keys."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from poolvae import aggregators as agg
from poolvae import datasets as ds
from poolvae import evaluate as E
from poolvae import metrics as mt
from poolvae import train as T

# --------------------------------------------------------------------------------------------------
# Known answers through stub models and classifiers
# --------------------------------------------------------------------------------------------------


class BrightnessClassifier(nn.Module):
    """Reads the digit from an image's mean brightness (label / 10): perfect on the stub data."""

    def features_and_logits(self, x):
        v = x.mean((1, 2, 3))
        logits = -((torch.arange(10.0) / 10.0 - v[:, None]) ** 2) * 1e4
        return torch.stack([v, x.std((1, 2, 3))], 1), logits


class StubModel:
    """Generates every modality as a constant image of the conditioning data's brightness (``copy``)
    or of brightness 0.3 (``constant``); the prior gives constant 0.3 images."""

    def __init__(self, mode, M=3):
        self.mode, self.M = mode, M

    def conditional(self, xs, mask, subset_posterior="pool"):
        B = xs[0].shape[0]
        observed = torch.stack([x.mean((1, 2, 3)) for x in xs])  # (M, B)
        level = (observed * mask).sum(0) / mask.sum(0)
        if self.mode == "constant":
            level = torch.full((B,), 0.3)
        return [level.view(B, 1, 1, 1).expand(B, 3, 28, 28).clone() for _ in range(self.M)]

    def sample_prior(self, n):
        return [torch.full((n, 3, 28, 28), 0.3) for _ in range(self.M)]


def _stub_data(n=60):
    labels = torch.arange(n) % 10
    return [(tuple(torch.full((3, 28, 28), float(y) / 10.0) for _ in range(3)), y.view(1)) for y in labels]


@pytest.mark.parametrize("mode,expected", [("copy", 1.0), ("constant", 0.1)])
def test_generation_pipeline_perfect_and_constant(mode, expected):
    spec = ds.polymnist_spec(num_modalities=3)
    clfs = {n: BrightnessClassifier() for n in spec.names}
    settings = E.make_settings("ci", {"n_conditional": 0, "n_unconditional": 20, "batch_size": 16, "n_fid": 60})
    out, counts, _ = E.generation_sections(StubModel(mode), spec, _stub_data(), "multiclass", clfs, None, settings,
                                           "cpu", False, True, True)
    coh = out["coherence"]
    assert coh["conditional"]["overall"] == pytest.approx(expected)
    assert set(coh["conditional"]["per_subset"]) == {"m0", "m1", "m2", "m0+m1", "m0+m2", "m1+m2"}
    assert coh["conditional"]["per_pair"]["m0+m2"] == {"m1": pytest.approx(expected)}
    assert coh["conditional"]["by_size"]["1"]["mean"] == pytest.approx(expected)
    assert coh["unconditional"] == 1.0  # every prior sample is the same image for every modality
    assert counts["conditional"] == 60 and counts["quality_conditional"] == 60
    fd = out["fd_classifier"]["conditional"]
    if mode == "copy":  # generated images equal the real ones: distance 0
        assert fd["mean"] == pytest.approx(0.0, abs=1e-9)
    else:
        assert fd["mean"] > 1e-3
    assert set(fd["by_size_per_target"]["m0"]) == {"1", "2"} and fd["by_size_per_target"]["m0"]["1"]["n"] == 2


class AttributeClassifier(nn.Module):
    """Reads three binary attributes from the three channels' brightness."""

    def features_and_logits(self, x):
        v = x.mean((2, 3))  # (B, 3)
        return v, (v - 0.5) * 20.0


def _attribute_spec():
    """A toy data set of two PolyMNIST-shaped modalities with three binary attributes a, b, c."""
    return ds.DatasetSpec("toy", ds.polymnist_spec(num_modalities=2).modalities, ("a", "b", "c"), 2, "test")


def _attribute_image(y):
    """Attributes ``y`` (3,) as a 3-channel image: channel k has brightness 0.9 if attribute k is set, else 0.1."""
    return y.float().view(3, 1, 1).expand(3, 28, 28) * 0.8 + 0.1


def test_generation_pipeline_multilabel_gives_average_precision():
    spec = _attribute_spec()
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (40, 3), generator=g)
    data = [(tuple(_attribute_image(y) for _ in range(2)), y) for y in labels]

    class Copy:
        def conditional(self, xs, mask, subset_posterior="pool"):
            src = xs[int(mask[:, 0].nonzero()[0])]
            return [src.clone(), src.clone()]

        def sample_prior(self, n):
            return [torch.full((n, 3, 28, 28), 0.9), torch.full((n, 3, 28, 28), 0.9)]

    clfs = {"m0": AttributeClassifier(), "m1": AttributeClassifier()}
    settings = E.make_settings("ci", {"n_conditional": 0, "n_unconditional": 10, "batch_size": 16})
    out, _, _ = E.generation_sections(Copy(), spec, data, "multilabel", clfs, None, settings, "cpu", False, True, False)
    coh = out["coherence"]
    assert coh["measure"] == "mean_average_precision" and coh["conditional"]["overall"] == pytest.approx(1.0)
    assert coh["conditional"]["per_pair_per_attribute"]["m0"]["m1"] == pytest.approx([1.0, 1.0, 1.0])
    assert coh["unconditional"]["mean"] == 1.0 and coh["unconditional"]["all_attributes"] == 1.0


class ProbeEncoder:
    """Encodes modality 0's content (an image's per-channel brightness) as its expert's mean, one-hot over ten
    digits (``multiclass``) or the three channels thresholded at 1/2 (``multilabel``); the other experts' means are 0.
    Subset posteriors are the PoE of the observed experts (equal variances: their average), as in MVAE."""

    def __init__(self, kind, M=3):
        self.kind, self.M = kind, M

    def encode(self, xs):
        v = xs[0].mean((2, 3))  # (B, 3)
        if self.kind == "multiclass":
            first = nn.functional.one_hot((v[:, 0] * 10).round().long(), 10).float()
        else:
            first = (v > 0.5).float()
        mu = torch.stack([first] + [torch.zeros_like(first)] * (self.M - 1))
        return mu, torch.zeros_like(mu), None, None

    def subset_posterior(self, mu, logvar, mask, how="pool"):
        return agg.poe(mu, logvar, mask)


def _probe_data(n, shift=0, M=3):
    """Ten balanced digits; modality 0 shows digit ``(y + shift) % 10`` and the others are blank."""
    labels = torch.arange(n) % 10
    return [(tuple([torch.full((3, 28, 28), float((y + shift) % 10) / 10.0)] + [torch.zeros(3, 28, 28)] * (M - 1)),
             y.view(1)) for y in labels]


@pytest.mark.parametrize("shift,with_m0", [(0, 1.0), (1, 0.0)])
def test_latent_probe_known_answers(shift, with_m0):
    """A probe fitted on the training rows reads the digit from every subset holding m0 (accuracy 1) and nothing
    from m1 or m2 (constant features, balanced test digits: accuracy 1/10 whatever class it predicts). If the
    test rows show the next digit (``shift=1``) the fitted probe is wrong on every one of them: it is fitted on
    one set and scored on the other (fitting and scoring on the same rows would give 1)."""
    spec = ds.polymnist_spec(num_modalities=3)
    settings = E.make_settings("ci", {"n_latent_train": 0, "n_latent_test": 0, "batch_size": 16})
    out, counts = E.latent_section(ProbeEncoder("multiclass"), spec, _probe_data(60), _probe_data(50, shift),
                                   "multiclass", settings, "cpu", False)
    per = out["per_subset"]
    assert out["measure"] == "accuracy" and counts == {"latent_train": 60, "latent_test": 50}
    assert set(per) == {"m0", "m1", "m2", "m0+m1", "m0+m2", "m1+m2", "m0+m1+m2"}
    for name, value in per.items():
        assert value == pytest.approx(with_m0 if "m0" in name else 0.1), name
    assert out["by_size"]["1"] == {"mean": pytest.approx((with_m0 + 0.2) / 3), "std": pytest.approx(
        np.std([with_m0, 0.1, 0.1])), "n": 3}
    assert out["by_size"]["2"]["mean"] == pytest.approx((2 * with_m0 + 0.1) / 3)
    assert out["by_size"]["3"] == {"mean": pytest.approx(with_m0), "std": 0.0, "n": 1}


def test_latent_probe_multilabel_known_answers():
    """Three binary attributes in modality 0's channels: average precision 1 on every subset holding m0; on
    constant features every score ties, and the average precision is each attribute's test prevalence."""
    spec = _attribute_spec()
    g = torch.Generator().manual_seed(0)

    def data(n):
        labels = torch.randint(0, 2, (n, 3), generator=g)
        return [((_attribute_image(y), torch.zeros(3, 28, 28)), y) for y in labels]

    train, test = data(80), data(40)
    settings = E.make_settings("ci", {"n_latent_train": 0, "n_latent_test": 0, "batch_size": 16})
    out, _ = E.latent_section(ProbeEncoder("multilabel", M=2), spec, train, test, "multilabel", settings, "cpu", False)
    prevalence = torch.stack([y for _, y in test]).float().mean(0).tolist()
    assert out["measure"] == "mean_average_precision" and out["attributes"] == ["a", "b", "c"]
    assert out["per_subset_per_attribute"]["m0"] == pytest.approx([1.0, 1.0, 1.0])
    assert out["per_subset_per_attribute"]["m0+m1"] == pytest.approx([1.0, 1.0, 1.0])
    assert out["per_subset_per_attribute"]["m1"] == pytest.approx(prevalence)
    assert out["per_subset"]["m1"] == pytest.approx(np.mean(prevalence))


class StubVocabulary:
    words = ("<unk>", "<pad>", "<eos>", "this", "bird", "is", "completely") + mt.CUB_COLOURS

    @property
    def index(self):
        return {w: i for i, w in enumerate(self.words)}

    def one_hot(self, caption, max_length=32):
        idx = [self.index.get(w, 0) for w in caption.split()] + [2]
        idx += [1] * (max_length - len(idx))
        return nn.functional.one_hot(torch.tensor(idx), len(self.words)).float()


class ColourModel:
    """Paints the caption's colour (``faithful``) or always red."""

    RGB = {"white": (1, 1, 1), "yellow": (1, 0.9, 0.1), "red": (0.9, 0.1, 0.1), "blue": (0.1, 0.1, 0.9),
           "green": (0.1, 0.8, 0.1), "gray": (0.4, 0.4, 0.4), "brown": (0.8, 0.47, 0.0), "black": (0, 0, 0)}

    def __init__(self, faithful):
        self.faithful = faithful

    def conditional(self, xs, mask, subset_posterior="pool"):
        assert mask[1].all() and not mask[0].any()  # text only
        words = StubVocabulary.words
        colour = words[int(xs[1][0, 4].argmax())] if self.faithful else "red"  # the fifth word
        img = torch.tensor(self.RGB[colour]).view(1, 3, 1, 1).expand(xs[1].shape[0], 3, 64, 64)
        return [img, xs[1]]


@pytest.mark.parametrize("faithful,expected", [(True, 1.0), (False, 1.0 / 8.0)])
def test_cub_colour_section_with_captions(faithful, expected):
    spec = ds.cub_spec(ds.tx.Vocabulary(StubVocabulary.words), max_length=8)
    data = type("D", (), {"vocabulary": StubVocabulary(), "max_length": 8})()
    out = E.cub_colour_section(ColourModel(faithful), spec, data, E.make_settings("ci", {"n_colour": 3}), "cpu")
    assert out["overall"] == pytest.approx(expected)
    assert out["captions"]["gray"] == "this bird is completely gray" and out["images_per_colour"] == 3


def test_settings_are_typed_and_checked():
    s = E.make_settings("cpu", {"K": "20", "fid": "false", "ll_subsets": "joint"})
    assert s.K == 20 and s.fid is False and s.n_conditional == 0 and s.n_fid == 1000
    assert E.make_settings("paper").fid and E.make_settings("paper").n_fid == 10000
    with pytest.raises(ValueError, match="valid keys"):
        E.make_settings("cpu", {"kk": 3})
    with pytest.raises(ValueError, match="expects int"):
        E.make_settings("cpu", {"K": "many"})
    with pytest.raises(ValueError, match="section"):
        E.make_settings("cpu", {"sections": "coherence,fun"})
    assert E.sample_rows(10, 0, 0) == list(range(10))
    rows = E.sample_rows(100, 7, 3)
    assert rows == sorted(rows) and len(set(rows)) == 7 and rows == E.sample_rows(100, 7, 3)


def test_decoder_outputs_become_samples():
    loc = torch.tensor([-0.1, 0.5, 1.2])
    assert E.as_sample("laplace", loc).tolist() == [0.0, 0.5, 1.0]
    assert torch.allclose(E.as_sample("bernoulli", torch.zeros(2)), torch.full((2,), 0.5))
    text = E.as_sample("categorical", torch.tensor([[[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]]]))
    assert text.tolist() == [[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]


# --------------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------------

TOP_KEYS = {"schema", "scale", "run", "settings", "modalities", "subsets", "samples", "classifiers",
            "feature_extractors", "metrics", "seconds", "provenance"}


def test_end_to_end_cli_on_a_ci_run(tmp_path):
    cfg = T.make_config("polymnist-mini", "helvae", "ci", overrides=dict(
        epochs=1, train_limit=64, test_limit=24, batch_size=32, latent_dim=4, width=4, threads=1))
    run = T.train(cfg, results_dir=tmp_path / "runs", checkpoint_dir=tmp_path / "ckpt", progress=False)
    cmd = [sys.executable, "-m", "poolvae.evaluate", str(run), "--K", "3", "--n-fid", "24",
           "--checkpoint-dir", str(tmp_path / "ckpt"), "--classifier-dir", str(tmp_path / "clf"),
           "--classifier-results-dir", str(tmp_path / "clf-results"), "--no-progress",
           "--set", "n_ll=6", "n_conditional=24", "batch_size=24"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    r = json.loads((run / "evaluation.json").read_text())
    assert set(r) == TOP_KEYS and r["schema"] == E.SCHEMA and r["scale"] == "ci"
    assert r["run"]["method"] == "helvae" and r["run"]["scale"] == "ci" and len(r["run"]["checkpoint_sha256"]) == 16
    assert r["modalities"] == [f"m{i}" for i in range(5)] and len(r["subsets"]) == 31 and r["subsets"][5] == "m0+m1"
    assert r["settings"]["K"] == 3 and r["settings"]["n_fid"] == 24 and r["settings"]["n_unconditional"] == 24
    assert r["samples"]["conditional"] == 24 and r["samples"]["log_likelihood"] == 6
    assert set(r["metrics"]) == {"coherence", "latent", "log_likelihood", "fd_classifier"}  # no FID at ci
    assert set(r["feature_extractors"]) == {"fd_classifier"}
    coh = r["metrics"]["coherence"]
    assert len(coh["conditional"]["per_subset"]) == 30 and set(coh["conditional"]["by_size"]) == {"1", "2", "3", "4"}
    assert 0.0 <= coh["conditional"]["overall"] <= 1.0 and 0.0 <= coh["unconditional"] <= 1.0
    assert set(coh["conditional"]["per_pair"]["m0+m1+m2"]) == {"m3", "m4"}
    lat = r["metrics"]["latent"]
    assert len(lat["per_subset"]) == 31 and lat["by_size"]["5"]["n"] == 1
    ll = r["metrics"]["log_likelihood"]
    assert ll["joint"] == ll["per_subset"]["m0+m1+m2+m3+m4"] and np.isfinite(ll["joint"]) and ll["K"] == 3
    fd = r["metrics"]["fd_classifier"]
    assert set(fd["unconditional"]) == set(r["modalities"]) and set(fd["conditional"]["by_size_per_target"]) == \
        set(r["modalities"])
    assert set(r["classifiers"]["test"]) == set(r["modalities"])
    assert (tmp_path / "clf" / "ci" / "polymnist-mini" / "m4.pt").exists()
    assert (tmp_path / "clf-results" / "ci" / "polymnist-mini.json").exists()
    with np.load(run / E.SAMPLES_FILE) as z:  # written with the evaluation, from the same checkpoint
        assert z["given_m0+m2+m3+m4"].shape[:2] == (2, 6) and json.loads(str(z["meta"]))["checkpoint_sha256"] == \
            r["run"]["checkpoint_sha256"]
    # unchanged settings and checkpoint: skipped; other settings: redone in process
    before = (run / "evaluation.json").read_bytes()
    common = dict(checkpoint_dir=tmp_path / "ckpt", classifier_dir=tmp_path / "clf",
                  classifier_results_dir=tmp_path / "clf-results", progress=False)
    same = {"K": 3, "n_fid": 24, "n_unconditional": 24, "n_ll": 6, "n_conditional": 24, "batch_size": 24}
    (run / E.SAMPLES_FILE).unlink()  # an evaluation made before samples.npz existed: only the samples are written
    E.evaluate_run(run, overrides=same, **common)
    assert (run / "evaluation.json").read_bytes() == before and (run / E.SAMPLES_FILE).exists()
    E.evaluate_run(run, overrides=dict(same, sections="log_likelihood", ll_subsets="joint"), **common)
    r2 = json.loads((run / "evaluation.json").read_text())
    assert set(r2["metrics"]) == {"log_likelihood"} and list(r2["metrics"]["log_likelihood"]["per_subset"]) == \
        ["m0+m1+m2+m3+m4"]
    # a committed run in a clone has no checkpoint: an evaluation with the same settings is kept as it is ...
    after, elsewhere = (run / "evaluation.json").read_bytes(), dict(common, checkpoint_dir=tmp_path / "no-ckpt")
    E.evaluate_run(run, overrides=dict(same, sections="log_likelihood", ll_subsets="joint"), **elsewhere)
    assert (run / "evaluation.json").read_bytes() == after
    # ... one with other settings cannot be redone without it, and the error says what to do
    with pytest.raises(FileNotFoundError, match="other evaluation settings.*--checkpoint-dir"):
        E.evaluate_run(run, overrides=same, **elsewhere)
    assert (run / "evaluation.json").read_bytes() == after


def test_missing_checkpoint_and_unfinished_runs_are_clear_errors(tmp_path):
    cfg = T.make_config("polymnist-mini", "helvae", "ci", overrides=dict(epochs=1, train_limit=32, test_limit=8,
                                                                          latent_dim=2, width=2, batch_size=32))
    run = T.train(cfg, results_dir=tmp_path / "runs", checkpoint_dir=tmp_path / "ckpt", progress=False)
    with pytest.raises(FileNotFoundError, match="finished run.*delete.*python -m poolvae.train"):
        E.load_run(run, tmp_path / "elsewhere")  # training would skip a finished run: the error says so
    with pytest.raises(FileNotFoundError, match="config.json"):
        E.load_run(tmp_path, tmp_path / "ckpt")
    (run / "metrics.json").write_text(json.dumps({"finished": False}))
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*python -m poolvae.train"):
        E.load_run(run, tmp_path / "elsewhere", allow_unfinished=True)  # unfinished: training resumes or restarts
    with pytest.raises(RuntimeError, match="not finished"):
        E.load_run(run, tmp_path / "ckpt")
    assert E.load_run(run, tmp_path / "ckpt", allow_unfinished=True)[0] == cfg


# --------------------------------------------------------------------------------------------------
# samples.npz for the qualitative figures (hel-fig4, hel-fig9)
# --------------------------------------------------------------------------------------------------


def test_write_samples_from_a_tiny_untrained_model(tmp_path):
    spec = ds.polymnist_spec()
    cfg = T.make_config("polymnist-mini", "helvae", "ci", overrides=dict(latent_dim=4, width=4))
    model = T.build_model(cfg, spec).eval()
    g = torch.Generator().manual_seed(0)
    data = [(tuple(torch.rand(3, 28, 28, generator=g) for _ in range(5)), torch.tensor([i % 10])) for i in range(20)]
    f = E.write_samples(model, spec, data, tmp_path, seed=3, n_columns=6, n_draws=2, record={"run": "x"})
    assert f == tmp_path / E.SAMPLES_FILE and f.stat().st_size < 78 * 28 * 28 * 3  # at most the raw bytes
    with np.load(f) as z:
        a = {k: z[k] for k in z.files}
    assert list(a["subsets"]) == ["m0", "m0+m2", "m0+m2+m3", "m0+m2+m3+m4"] and str(a["target"]) == "m1"
    assert a["inputs"].shape == (5, 6, 28, 28, 3) and a["inputs"].dtype == np.uint8
    rows = [int(r) for r in a["rows"]]
    assert rows == E.sample_rows(20, 6, 3, salt=6)
    expected = (data[rows[0]][0][2].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(a["inputs"][2, 0], expected)  # the test examples, as uint8 (H, W, C)
    for s in a["subsets"]:
        g_ = a[f"given_{s}"]
        assert g_.shape == (2, 6, 28, 28, 3) and g_.dtype == np.uint8
    assert json.loads(str(a["meta"])) == {"run": "x", "seed": 3, "n_columns": 6, "n_draws": 2}
    # seeded: the same seed gives the same arrays, another seed other generations
    again = E.write_samples(model, spec, data, tmp_path / "again", seed=3, n_columns=6, n_draws=2, record={"run": "x"})
    assert again.read_bytes() == f.read_bytes()
    with np.load(E.write_samples(model, spec, data, tmp_path / "other", seed=4, n_columns=6, n_draws=2)) as z:
        assert not np.array_equal(z["given_m0"], a["given_m0"])
    assert not E.samples_up_to_date(tmp_path, "abc") and not E.samples_up_to_date(tmp_path / "none", "abc")
    E.write_samples(model, spec, data, tmp_path, seed=3, n_columns=6, record={"checkpoint_sha256": "abc"})
    assert E.samples_up_to_date(tmp_path, "abc")
    # PolyMNIST's WB panels (Figs. S5-S7) go beside samples.npz, whose layout above is unchanged
    with np.load(tmp_path / E.PANELS_FILE["polymnist"]) as z:
        assert [str(p) for p in z["panels"]] == ["m0_given_m2", "m0_given_m1+m2+m3", "m0_given_m1+m2+m3+m4"]
        assert z["m0_given_m1+m2+m3__gen__m0"].shape == (4, 6, 28, 28, 3)
        assert [int(r) for r in z["m0_given_m2__rows"]] == E.sample_rows(20, 6, 3, salt=6)
    assert E.run_samples_up_to_date(tmp_path, "polymnist-mini", "abc")
    # data sets without a plan get no file
    assert E.write_samples(model, dataclasses.replace(spec, name="other"), data, tmp_path / "other2") is None
    assert not (tmp_path / "other2").exists()


@pytest.mark.parametrize("dataset", ["mnist-svhn-text", "celeba", "cub"])
def test_write_samples_panels_on_fixtures(fixture_data_root, tmp_path, dataset):
    """MNIST-SVHN-Text, CelebA and CUB: every panel of E.PANELS with uint8 images and decoded text, seeded."""
    from poolvae import text as tx

    data = ds.get_dataset(dataset, "test", scale="ci")
    spec = data.spec
    model = T.build_model(T.make_config(dataset, "mwbvae", "ci", overrides=dict(latent_dim=4)), spec).eval()
    f = E.write_samples(model, spec, data, tmp_path, seed=1, record={"checkpoint_sha256": "abc"})
    assert f == tmp_path / E.SAMPLES_FILE and E.run_samples_up_to_date(tmp_path, dataset, "abc")
    with np.load(f) as z:
        a = {k: z[k] for k in z.files}
    assert [str(p) for p in a["panels"]] == [p.name for p in E.PANELS[dataset]]
    for p in E.PANELS[dataset]:
        n = 8 if p.captions else len(a[f"{p.name}__rows"])
        for t in p.targets:
            g = a[f"{p.name}__gen__{t}"]
            mod = spec.modality(t)
            if mod.kind == "image":
                assert g.shape == (p.n_draws, n, *mod.shape[1:], mod.shape[0]) and g.dtype == np.uint8
            else:
                assert g.shape == (p.n_draws, n) and g.dtype.kind == "U"
        for m in p.given:  # the test examples themselves: decoded text equals the data set's string
            x = a[f"{p.name}__given__{m}"]
            rows = [int(r) for r in a[f"{p.name}__rows"]]
            if spec.modality(m).kind == "text":
                want = [data.decode_text(m, data[r][0][spec.names.index(m)]) for r in rows]
                assert list(x) == [w.strip(tx.MST_PAD + tx.CELEBA_PAD) for w in want]
            else:
                assert x.shape == (len(rows), *spec.modality(m).shape[1:], spec.modality(m).shape[0])
    if dataset == "mnist-svhn-text":  # one column per digit, in order; the text names the digit
        labels = [int(y[0]) for y in a["mnist_given_text__labels"]]
        assert labels == sorted(set(labels)) and list(a["mnist_given_text__given__text"]) == \
            [tx.DIGIT_WORDS[d] for d in labels]
    if dataset == "cub":
        assert str(a["img_given_colours__given__text"][0]) == "this bird is completely white"
    meta = json.loads(str(a["meta"]))
    assert meta["checkpoint_sha256"] == "abc" and meta["layout"] == "panels/1" and meta["seed"] == 1
    again = E.write_samples(model, spec, data, tmp_path / "again", seed=1, record={"checkpoint_sha256": "abc"})
    assert again.read_bytes() == f.read_bytes()
    assert not E.run_samples_up_to_date(tmp_path, dataset, "other")


def test_a_sample_file_without_the_panels_is_stale(tmp_path):
    np.savez(tmp_path / E.SAMPLES_FILE, meta=np.asarray(json.dumps({"checkpoint_sha256": "abc"})),
             panels=np.asarray(["img_given_text"]))
    assert E.samples_up_to_date(tmp_path, "abc") and not E.run_samples_up_to_date(tmp_path, "celeba", "abc")


@pytest.mark.parametrize("args, message", [
    (["{tmp}/nowhere"], "run folder {tmp}/nowhere does not exist"),
    (["{tmp}", "--K", "0"], "argument --K: must be at least 1; got 0"),
    (["{tmp}", "--n-fid", "x"], "argument --n-fid: expected a whole number"),
    (["{tmp}", "--set", "nosuch=1"], "unknown evaluation setting(s) ['nosuch']"),
    (["{tmp}", "--set", "K=-2"], "evaluation setting K must be at least 1; got -2"),
    (["{tmp}", "--set", "n_ll=x"], "n_ll"),
    (["{tmp}", "--set", "device=tpu"], "unknown device 'tpu'"),
    (["{tmp}", "--scale", "huge"], "argument --scale: invalid choice"),
])
def test_bad_arguments_are_one_line_errors_before_the_run_is_read(tmp_path, args, message, capsys, monkeypatch):
    monkeypatch.setattr(E, "evaluate_run", lambda *a, **k: pytest.fail("evaluated despite a bad argument"))
    with pytest.raises(SystemExit) as err:
        E.main([a.replace("{tmp}", str(tmp_path)) for a in args])
    assert err.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("python -m poolvae.evaluate: error: ") and message.replace("{tmp}", str(tmp_path)) in last


def test_ci_evaluation_is_small():
    # the ci scale checks the pipeline in seconds (#19): a few conditioned points, tiny K, no Inception FID
    s = E.make_settings("ci")
    assert s.n_conditional == 16 and s.K == 2 and s.n_ll == 4 and not s.fid
    assert E.make_settings("cpu").K == 50 and E.make_settings("cpu").n_ll == 100  # the cpu scale is unchanged
