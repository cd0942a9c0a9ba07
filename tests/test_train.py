"""Runs are resumable and idempotent: an interrupted run resumes to the same weights as an
uninterrupted one, a finished run is skipped, bad configs and non-finite losses stop with clear errors.
Every method trains on MNIST-SVHN-Text, bimodal CelebA and CUB (tiny fixtures in their released layouts)
with each data set's own networks; PolyMNIST models build exactly as before."""

import json
import math

import pytest
import torch

from poolvae import datasets as D
from poolvae import networks as N
from poolvae import train as T
from poolvae.models import METHODS, Modality, MultimodalVAE
from poolvae.networks import make_networks


def _cfg(**kw):
    base = dict(epochs=2, train_limit=96, test_limit=32, batch_size=32, latent_dim=4, width=4, threads=1)
    base.update(kw)
    return T.make_config("polymnist-mini", kw.pop("method", "helvae"), "ci", overrides=None,
                         **{k: v for k, v in base.items() if k != "method"})


def _weights(ckpt_root, cfg):
    return torch.load(ckpt_root / T.run_path(cfg) / "last.pt", weights_only=False)["model"]


@pytest.mark.parametrize("method", ["helvae", "mmvae"])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, method):
    cfg = _cfg(method=method)
    T.train(cfg, tmp_path / "a" / "runs", tmp_path / "a" / "ckpt", progress=False)
    # interrupt after 4 of the 6 steps (inside the second epoch), then resume
    with pytest.raises(KeyboardInterrupt, match="resume"):
        T.train(cfg, tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False, stop_after_steps=4)
    metrics = tmp_path / "b" / "runs" / T.run_path(cfg) / "metrics.json"
    assert not json.loads(metrics.read_text())["finished"]
    T.train(cfg, tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False)
    wa, wb = _weights(tmp_path / "a" / "ckpt", cfg), _weights(tmp_path / "b" / "ckpt", cfg)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6), k
    ma = json.loads((tmp_path / "a" / "runs" / T.run_path(cfg) / "metrics.json").read_text())
    mb = json.loads(metrics.read_text())
    assert mb["finished"] and len(mb["epochs"]) == 2
    assert ma["final"]["test_objective"] == pytest.approx(mb["final"]["test_objective"], rel=1e-5)


def test_a_finished_run_of_another_config_is_not_reused(tmp_path, capsys):
    cfg = _cfg(epochs=1)
    T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    longer = _cfg(epochs=2)  # same folder (method, beta, seed), more epochs: must not pass for the finished run
    with pytest.raises(ValueError, match=r"another config \(epochs: 1 there, 2 here\).*delete"):
        T.train(longer, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    # threads only changes how the run executes: the finished run is still this run
    T.train(_cfg(epochs=1, threads=2), tmp_path / "runs", tmp_path / "ckpt", progress=False)
    assert "skip" in capsys.readouterr().out


def test_finished_run_is_skipped(tmp_path, capsys):
    cfg = _cfg(epochs=1)
    run = T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    before = (run / "metrics.json").read_bytes()
    T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    assert "skip" in capsys.readouterr().out
    assert (run / "metrics.json").read_bytes() == before
    for name in ("config.json", "environment.json"):
        assert (run / name).exists()
    env = json.loads((run / "environment.json").read_text())
    assert env["scale"] == "ci" and env["seed"] == 0 and "torch" in env["versions"]


def test_config_errors_list_the_valid_choices():
    with pytest.raises(ValueError, match="valid keys: .*latent_dim"):
        T.make_config("polymnist-mini", "helvae", "ci", overrides={"latnet_dim": "3"})
    with pytest.raises(ValueError, match="expects int"):
        T.make_config("polymnist-mini", "helvae", "ci", overrides={"epochs": "two"})
    with pytest.raises(ValueError, match="valid: .*mopoe"):
        T.make_config("polymnist-mini", "nope", "ci")
    with pytest.raises(ValueError, match="valid: .*polymnist"):
        T.make_config("mnist", "helvae", "ci")
    cfg = T.make_config("polymnist-mini", "helvae", "ci", overrides={"lr": "1e-3", "dreg": "false"})
    assert cfg.lr == 1e-3 and cfg.dreg is False


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = _cfg(epochs=2)
    calls = {"n": 0}
    original = T.MultimodalVAE.forward

    def poisoned(self, xs, mask=None):
        out = original(self, xs, mask)
        calls["n"] += 1
        if calls["n"] > 4:  # after the first epoch (3 steps + 1 evaluation batch)
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(T.MultimodalVAE, "forward", poisoned)
    with pytest.raises(T.NonFiniteLoss, match="last good checkpoint"):
        T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    state = torch.load(tmp_path / "ckpt" / T.run_path(cfg) / "last.pt", weights_only=False)
    floats = [v for v in state["model"].values() if v.is_floating_point()]
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in floats)


# ---------------------------------------------------------------------------- MNIST-SVHN-Text, CelebA, CUB

OTHER = ("mnist-svhn-text", "celeba", "cub")
ENCODERS = {"mnist-svhn-text": ("MnistEncoderFC", "SvhnEncoder32", "CharEncoder8"),
            "celeba": ("CelebAImageEncoder64", "CelebATextEncoder256"), "cub": ("CubImageEncoder64", "CubTextEncoder")}


def _norm(module) -> float:
    """Sum of the absolute gradients of a module's parameters."""
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("dataset", OTHER)
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_trains_on_every_data_set(fixture_data_root, dataset, method):
    cfg = T.make_config(dataset, method, "ci", overrides={"batch_size": 6, "train_limit": 12})
    data = T.load_data(cfg, "train")
    spec = data.spec
    model = T.build_model(cfg, spec)
    assert tuple(type(e).__name__ for e in model.encoders) == ENCODERS[dataset]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    before = [[p.detach().clone() for p in net.parameters()] for net in (*model.encoders, *model.decoders)]
    torch.manual_seed(0)
    steps = 0
    for epoch in (0, 1):  # two steps at least: CelebA's fixture has only 3 training rows
        for step, mods, _ in T.batches(data, cfg.batch_size, cfg.seed, epoch):
            assert [tuple(x.shape[1:]) for x in mods] == [m.shape for m in spec.modalities]
            out = model(mods)
            assert all(torch.isfinite(out[k]) for k in ("loss", "objective", "rec", "kl")), (epoch, step, out)
            opt.zero_grad()
            out["loss"].backward()
            for net in (*model.encoders, *model.decoders):  # every encoder and decoder gets a finite, non-zero gradient
                assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
                assert _norm(net) > 0, type(net).__name__
            opt.step()
            steps += 1
    assert steps >= 2
    for net, old in zip((*model.encoders, *model.decoders), before, strict=True):
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), old, strict=True)), type(net).__name__


@pytest.mark.parametrize("dataset", OTHER)
def test_a_ci_run_on_each_data_set_finishes_and_learns(fixture_data_root, tmp_path, dataset):
    cfg = T.make_config(dataset, "helvae", "ci", overrides={"threads": 1})
    assert cfg.arch == N.DATASET_ARCH[dataset] and (cfg.latent_dim, cfg.width) == (8, 4)
    run = T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and len(metrics["epochs"]) == cfg.epochs
    assert all(math.isfinite(e[k]) for e in metrics["epochs"] for k in ("train_objective", "test_objective"))
    assert json.loads((run / "config.json").read_text())["arch"] == cfg.arch
    # the same model, trained on one fixed batch with fixed noise, improves its objective
    data = T.load_data(cfg, "train")
    model = T.build_model(cfg, data.spec)
    _, mods, _ = next(T.batches(data, 6, 0, 0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        torch.manual_seed(0)
        return model(mods)["loss"]

    first = loss().item()
    for _ in range(10):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first


def test_other_data_sets_keep_a_seeded_random_subset(fixture_data_root):
    # CUB's fixture: 20 captions of class 0, then 10 of class 2. The first 12 rows would all be class 0.
    cfg = T.make_config("cub", "helvae", "ci", overrides={"train_limit": 12})
    data = T.load_data(cfg, "train")
    labels = [int(data[i][1]) for i in range(len(data))]
    assert len(data) == 12 and set(labels) == {0, 2}
    again = T.load_data(T.make_config("cub", "helvae", "ci", seed=5, overrides={"train_limit": 12}), "train")
    assert [int(again[i][1]) for i in range(12)] == labels  # the same rows whatever the run seed


def test_a_last_batch_of_one_row_is_refused_on_celeba(fixture_data_root, tmp_path):
    cfg = T.make_config("celeba", "helvae", "ci", overrides={"batch_size": 2})  # 3 training rows: 2 + 1
    with pytest.raises(ValueError, match="last batch of one row"):
        T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)


def test_configs_of_the_other_data_sets():
    for dataset in OTHER:
        for scale in T.SCALES:
            assert (dataset, scale) in T.SCALE_DEFAULTS
            cfg = T.make_config(dataset, "mmvaeplus", scale)
            assert cfg.arch == N.DATASET_ARCH[dataset] and cfg.private_dim > 0  # MMVAE+ always has private latents
        with pytest.raises(ValueError, match=f"arch 'conv28' for {dataset}; valid: {N.DATASET_ARCH[dataset]}"):
            T.make_config(dataset, "helvae", "ci", overrides={"arch": "conv28"})
    with pytest.raises(ValueError, match="valid: conv28, res28"):
        T.make_config("polymnist-mini", "helvae", "ci", overrides={"arch": "sutter-mst"})
    # the appendices: WB B.2 (MNIST-SVHN-Text), HEL B.3 (CelebA, CUB)
    mst = T.make_config("mnist-svhn-text", "mwbvae", "paper")
    assert (mst.latent_dim, mst.epochs, mst.batch_size, mst.lr) == (20, 150, 256, 1e-3)
    celeba = T.make_config("celeba", "helvae", "paper")
    assert (celeba.latent_dim, celeba.epochs, celeba.batch_size, celeba.lr, celeba.width) == (32, 200, 256, 1e-4, 128)
    assert T.make_config("celeba", "mmvaeplus", "paper").private_dim == 32
    cub = T.make_config("cub", "mopoe", "paper")
    assert (cub.latent_dim, cub.epochs, cub.batch_size, cub.lr) == (64, 150, 128, 5e-4)
    cub_plus = T.make_config("cub", "mmvaeplus", "paper")
    assert (cub_plus.latent_dim, cub_plus.private_dim, cub_plus.epochs, cub_plus.K, cub_plus.batch_size) == \
        (48, 16, 50, 10, 32)


@pytest.mark.parametrize("scale, method", [("ci", "helvae"), ("cpu", "mmvaeplus"), ("paper", "mmvae")])
def test_polymnist_models_build_as_before(scale, method):
    """A PolyMNIST model is the conv28/res28 pair per modality, initialised in the same order from the seed."""
    dataset = "polymnist" if scale == "paper" else "polymnist-mini"
    cfg = T.make_config(dataset, method, scale, seed=3)
    assert cfg.arch == ("res28" if scale == "paper" else "conv28")
    spec = D.polymnist_spec(dataset)
    model = T.build_model(cfg, spec)
    torch.manual_seed(3)
    nets = [make_networks(cfg.arch, cfg.latent_dim, cfg.private_dim, 3, cfg.width) for _ in spec.modalities]
    mods = [Modality(m.name, m.likelihood, 1.0) for m in spec.modalities]
    ref = MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], mods, method, cfg.latent_dim, cfg.private_dim)
    a, b = model.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_command_line_puts_a_run_under_the_given_folders(tmp_path):
    # a longer budget than the scale's goes to a folder of its own; nothing lands in results/ or checkpoints/
    argv = ["--dataset", "polymnist-mini", "--method", "mopoe", "--beta", "2.5", "--scale", "ci", "--no-progress",
            "--runs-dir", str(tmp_path / "runs"), "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--set", "epochs=2", "train_limit=64", "test_limit=32", "batch_size=32", "latent_dim=4", "width=4",
            "threads=1"]
    T.main(argv)
    cfg = T.make_config("polymnist-mini", "mopoe", "ci", T.parse_overrides(argv[-7:]), beta=2.5, seed=0)
    metrics = json.loads((tmp_path / "runs" / T.run_path(cfg) / "metrics.json").read_text())
    assert metrics["finished"] and len(metrics["epochs"]) == 2
    assert (tmp_path / "ckpt" / T.run_path(cfg) / "last.pt").exists()
