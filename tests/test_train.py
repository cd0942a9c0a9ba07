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
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, method, capsys):
    cfg = _cfg(method=method)
    T.train(cfg, tmp_path / "a" / "runs", tmp_path / "a" / "ckpt", progress=False)
    # interrupt after 4 of the 6 steps (inside the second epoch), then resume
    with pytest.raises(KeyboardInterrupt, match="resume"):
        T.train(cfg, tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False, stop_after_steps=4)
    metrics = tmp_path / "b" / "runs" / T.run_path(cfg) / "metrics.json"
    assert not json.loads(metrics.read_text())["finished"]
    capsys.readouterr()
    T.train(cfg, tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False)
    # resumed from the checkpoint (a restart from scratch would reach the same weights too: same seed)
    assert f"resume {T.run_path(cfg)} after epoch 1 at step 1" in capsys.readouterr().out
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


def test_extend_trains_a_finished_run_longer_along_the_same_trajectory(tmp_path, capsys):
    T.train(_cfg(epochs=2), tmp_path / "a" / "runs", tmp_path / "a" / "ckpt", progress=False)
    T.train(_cfg(epochs=1), tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False)
    run = T.train(_cfg(epochs=2), tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False, extend=True)
    assert "extend ci/polymnist-mini/helvae/beta=1/seed=0 from 1 to 2 epochs" in capsys.readouterr().out
    wa, wb = _weights(tmp_path / "a" / "ckpt", _cfg(epochs=2)), _weights(tmp_path / "b" / "ckpt", _cfg(epochs=2))
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6), k
    m = json.loads((run / "metrics.json").read_text())
    assert m["finished"] and [e["epoch"] for e in m["epochs"]] == [1, 2]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    with pytest.raises(ValueError, match="another config"):  # any other difference is still another run
        T.train(_cfg(epochs=3, lr=1e-2), tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False, extend=True)
    stored = T.make_config("polymnist-mini", "helvae", "ci", epochs=5)
    assert T.resumable(stored, T.make_config("polymnist-mini", "helvae", "ci", epochs=9), 5, extend=True)
    assert not T.resumable(stored, T.make_config("polymnist-mini", "helvae", "ci", epochs=4), 5, extend=True)
    assert not T.resumable(stored, T.make_config("polymnist-mini", "helvae", "ci", epochs=9), 5)


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


def test_more_tuples_is_a_polymnist_mini_setting_and_a_stored_run_without_it_had_one():
    assert T.make_config("polymnist", "helvae", "cpu", tuples=4).tuples == 4  # polymnist is the mini set at cpu
    for dataset, scale in (("polymnist", "paper"), ("mnist-svhn-text-mini", "cpu")):
        with pytest.raises(ValueError, match="PolyMNIST-mini only"):
            T.make_config(dataset, "mvae", scale, tuples=2)
    with pytest.raises(ValueError, match="tuples must be at least 1"):
        T.check_ranges(T.make_config("polymnist-mini", "helvae", "ci", tuples=0))
    stored = T.stored_config({"dataset": "polymnist-mini", "method": "helvae", "scale": "cpu"})
    assert stored.tuples == 1


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


# ---------------------------------------------------------------------------- devices, batched input, mixed precision


def _same_batches(a, b):
    """Two batch streams yield the same steps and bitwise equal tensors (values, dtypes and shapes)."""
    a, b = list(a), list(b)
    assert [s for s, _, _ in a] == [s for s, _, _ in b] and a
    for (_, ma, la), (_, mb, lb) in zip(a, b, strict=True):
        assert len(ma) == len(mb) and torch.equal(la, lb) and la.dtype == lb.dtype
        for x, y in zip(ma, mb, strict=True):
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)


@pytest.mark.parametrize("limit", [0, 200])
def test_batched_pipeline_yields_the_per_row_batches_bitwise(limit):
    cfg = T.make_config("polymnist-mini", "helvae", "ci", train_limit=limit)
    data = T.load_data(cfg, "train")
    assert getattr(data, "in_memory", None) or isinstance(data, torch.utils.data.Subset)
    for seed, epoch, start in [(0, 0, 0), (3, 1, 2), (3, 2, 0)]:
        _same_batches(T.batches(data, 48, seed, epoch, start=start, device="cpu"),
                      T.row_batches(data, 48, seed, epoch, start=start))
    _same_batches(T.batches(data, 64, 0, 0, shuffle=False), T.row_batches(data, 64, 0, 0, shuffle=False))
    # the order is a function of (seed, epoch): another epoch gives other batches
    first = next(T.batches(data, 48, 0, 0))[1][0]
    assert not torch.equal(first, next(T.batches(data, 48, 0, 1))[1][0])
    assert torch.equal(T.epoch_order(10, 3, 1), torch.randperm(10, generator=torch.Generator().manual_seed(300_010)))


def test_batched_pipeline_on_mnist_svhn_text_and_the_data_loader_path(fixture_data_root):
    mst = T.load_data(T.make_config("mnist-svhn-text", "helvae", "ci"), "train")
    assert mst.in_memory
    _same_batches(T.batches(mst, 7, 1, 2), T.row_batches(mst, 7, 1, 2))
    cub = T.load_data(T.make_config("cub", "helvae", "ci", overrides={"train_limit": 12}), "train")
    assert not cub.in_memory  # read from disk: a DataLoader with workers, the same batches
    _same_batches(T.batches(cub, 5, 2, 1, start=1, workers=1), T.row_batches(cub, 5, 2, 1, start=1))
    state = torch.get_rng_state()
    list(T.batches(cub, 5, 2, 1))
    assert torch.equal(state, torch.get_rng_state())  # the loader's seeded generator leaves the global one alone


def test_batched_pipeline_on_mnist_svhn_text_mini():
    data = T.load_data(T.make_config("mnist-svhn-text-mini", "helvae", "ci"), "train")  # a Subset of the ci build
    _same_batches(T.batches(data, 32, 4, 1), T.row_batches(data, 32, 4, 1))


def test_devices_resolve_and_bad_names_say_what_to_pass(monkeypatch):
    monkeypatch.delenv(T.DEVICE_ENV, raising=False)
    assert T.resolve_device("cpu") == torch.device("cpu")
    assert T.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'; valid: auto, cpu, cuda, cuda:N"):
        T.resolve_device("gpu")
    monkeypatch.setenv(T.DEVICE_ENV, "cpu")  # make's DEVICE=cpu
    assert T.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv(T.DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match=r"unknown \$POOLVAE_DEVICE 'tpu'"):
        T.resolve_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device here; use auto or cpu"):
            T.resolve_device("cuda:0")
        with pytest.raises(SystemExit):  # the command line refuses it with argparse's one-line error
            T.main(["--device", "cuda", "--scale", "ci"])


def test_execution_fields_are_not_identity_but_amp_is():
    base = _cfg()
    for field, value in [("device", "cpu"), ("compile", True), ("workers", 3), ("threads", 2)]:
        assert field in T.EXECUTION_FIELDS and not T.config_differences(base, _cfg(**{field: value}))
    assert T.config_differences(base, _cfg(amp="bf16")) == {"amp": ("off", "bf16")}
    # a config.json written before amp existed was float32
    stored = {k: v for k, v in T.dataclasses.asdict(base).items() if k not in ("amp", "device", "compile", "workers")}
    assert T.stored_config(stored).amp == "off" and not T.config_differences(T.stored_config(stored), base)
    with pytest.raises(ValueError, match="unknown amp 'fp8'; valid: off, bf16, fp16"):
        T.build_model(_cfg(amp="fp8"), D.polymnist_spec("polymnist-mini"))


def test_an_explicit_cpu_device_is_recorded_and_checkpoints_load_with_map_location(tmp_path, monkeypatch):
    cfg = _cfg(method="mopoe", device="cpu")
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False, stop_after_steps=2)
    state = torch.load(tmp_path / "ckpt" / T.run_path(cfg) / "last.pt", map_location="cpu", weights_only=False)
    assert state["device"] == "cpu" and state["rng_device"] is None and state["scaler"] is None
    header = T.checkpoint_header(T.checkpoint_file(cfg, tmp_path / "ckpt"))  # its bookkeeping, read without weights
    assert (header["epoch"], header["step"]) == (0, 2) and T.stored_config(header["config"]) == cfg
    model = T.build_model(cfg, D.polymnist_spec("polymnist-mini"))
    model.load_state_dict(state["model"])  # a checkpoint written by one run loads into another model
    loads = []
    real_load = torch.load
    monkeypatch.setattr(T.torch, "load", lambda *a, **k: loads.append(k.get("map_location")) or real_load(*a, **k))
    # resumed with device "auto" (an execution field: the same run) to the weights of an uninterrupted run
    T.train(_cfg(method="mopoe", device="auto"), tmp_path / "runs", tmp_path / "ckpt", progress=False)
    assert loads == ["cpu"]
    T.train(_cfg(method="mopoe"), tmp_path / "a" / "runs", tmp_path / "a" / "ckpt", progress=False)
    wa, wb = _weights(tmp_path / "a" / "ckpt", cfg), _weights(tmp_path / "ckpt", cfg)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    env = json.loads((tmp_path / "runs" / T.run_path(cfg) / "environment.json").read_text())
    assert env["device"] == "cpu" and env["accelerator"] is None and env["torch"] == torch.__version__
    assert env["amp"] == "off" and env["compile"] is False and env["workers"] == 0
    assert json.loads((tmp_path / "runs" / T.run_path(cfg) / "config.json").read_text())["device"] == "auto"


def _cpu_autocast_works(dtype) -> bool:
    """Whether torch runs a convolution in ``dtype`` under CPU autocast here."""
    try:
        with torch.autocast("cpu", dtype=dtype):
            return torch.nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2)).dtype == dtype
    except (RuntimeError, TypeError):
        return False


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_finite_steps_with_the_pooling_in_float32(tmp_path, amp, monkeypatch):
    dtype = T.AMP_DTYPES[amp]
    if not _cpu_autocast_works(dtype):
        pytest.skip(f"torch {torch.__version__} does not run convolutions in {dtype} under CPU autocast")
    seen = {"net": set(), "pool": set()}
    model_pool = T.MultimodalVAE.posterior

    def posterior(self, mu, logvar, mask):
        seen["pool"].add(mu.dtype)
        return model_pool(self, mu, logvar, mask)

    monkeypatch.setattr(T.MultimodalVAE, "posterior", posterior)
    real_build = T.build_model

    def build(cfg, spec):
        model = real_build(cfg, spec)
        for net in model.encoders:
            first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
            first.register_forward_hook(lambda mod, inp, out: seen["net"].add(out.dtype))
        return model

    monkeypatch.setattr(T, "build_model", build)
    cfg = _cfg(epochs=1, amp=amp)
    run = T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    metrics = json.loads((run / "metrics.json").read_text())
    final = metrics["final"]
    assert metrics["finished"] and all(math.isfinite(v) for k, v in final.items() if k.startswith(("train", "test")))
    assert seen["net"] == {dtype} and seen["pool"] == {torch.float32}  # networks low, pooling float32
    state = torch.load(tmp_path / "ckpt" / T.run_path(cfg) / "last.pt", weights_only=False)
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    assert (state["scaler"] is not None) == (amp == "fp16")  # fp16 trains with a gradient scaler, kept for resuming
    off = T.train(_cfg(epochs=1), tmp_path / "off" / "runs", tmp_path / "off" / "ckpt", progress=False)
    ref = json.loads((off / "metrics.json").read_text())["final"]["train_objective"]
    assert metrics["final"]["train_objective"] == pytest.approx(ref, rel=0.02)  # close to float32, not equal
    assert metrics["final"]["train_objective"] != ref


def test_command_line_device_amp_and_compile(tmp_path):
    argv = ["--method", "helvae", "--scale", "ci", "--no-progress", "--device", "cpu", "--amp", "bf16",
            "--runs-dir", str(tmp_path / "runs"), "--checkpoint-dir", str(tmp_path / "ckpt"),
            "--set", "epochs=1", "train_limit=64", "test_limit=32", "batch_size=32", "latent_dim=4", "width=4"]
    T.main(argv)
    run = next((tmp_path / "runs").rglob("config.json")).parent
    config = json.loads((run / "config.json").read_text())
    assert (config["device"], config["amp"], config["compile"]) == ("cpu", "bf16", False)
    assert json.loads((run / "metrics.json").read_text())["finished"]
    with pytest.raises(SystemExit):
        T.main(["--amp", "fp8"])


@pytest.mark.slow
def test_a_compiled_model_trains_the_same_run(tmp_path):
    """``compile`` changes how the step executes, not what it computes: the same objective to rounding."""
    eager = T.train(_cfg(epochs=1), tmp_path / "e" / "runs", tmp_path / "e" / "ckpt", progress=False)
    compiled = T.train(_cfg(epochs=1, compile=True), tmp_path / "c" / "runs", tmp_path / "c" / "ckpt", progress=False)
    a, b = (json.loads((r / "metrics.json").read_text())["final"] for r in (eager, compiled))
    assert b["train_objective"] == pytest.approx(a["train_objective"], rel=1e-4)
    assert json.loads((compiled / "environment.json").read_text())["compile"] is True


# ---------------------------------------------------------------------------- the command line's checks (#19)

@pytest.mark.parametrize("args, names", [
    (["--beta", "-1"], "--beta"), (["--beta", "0"], "--beta"), (["--beta", "nan"], "--beta"),
    (["--beta", "inf"], "--beta"), (["--beta", "x"], "--beta"), (["--method", "nosuch"], "--method"),
    (["--dataset", "nosuch"], "--dataset"), (["--seed", "-1"], "--seed"), (["--scale", "huge"], "--scale"),
    (["--set", "beta=-1"], "beta must be finite"), (["--set", "lr=nan"], "lr must be finite"),
    (["--set", "nosuch=1"], "unknown config key"), (["--set", "epochs=x"], "epochs"), (["--set", "epochs"], "epochs"),
])
def test_bad_arguments_are_argparse_errors_before_anything_runs(args, names, capsys, monkeypatch):
    monkeypatch.setattr(T, "train", lambda *a, **k: pytest.fail("trained despite a bad argument"))
    with pytest.raises(SystemExit) as err:
        T.main(["--scale", "ci", *args])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("python -m poolvae.train: error: ") and names in lines[-1]
    assert "Traceback" not in "\n".join(lines)


def test_beta_argument_accepts_finite_positive_numbers():
    assert T.beta_argument("2.5") == 2.5 and T.beta_argument("1e-3") == 1e-3
    for bad in ("-1", "0", "nan", "inf", "-inf", ""):
        with pytest.raises(Exception, match="beta must be"):
            T.beta_argument(bad)


def test_data_errors_end_in_one_line_and_exit_1(capsys, monkeypatch):
    def missing(*a, **k):
        raise FileNotFoundError("PolyMNIST-mini at data/polymnist-mini is incomplete; rebuild it with `make data-mini`")

    monkeypatch.setattr(T, "train", missing)
    with pytest.raises(SystemExit) as err:
        T.main(["--scale", "ci", "--no-progress"])
    assert err.value.code == 1
    assert capsys.readouterr().out.strip() == ("error: PolyMNIST-mini at data/polymnist-mini is incomplete; rebuild "
                                               "it with `make data-mini`")


def test_non_finite_loss_message_names_what_is_kept_and_the_causes(tmp_path):
    cfg = _cfg(epochs=3)
    ckpt = tmp_path / "last.pt"
    text = T.non_finite_message(cfg, float("nan"), 0, 2, ckpt)
    assert "at epoch 1/3, step 3" in text and "no checkpoint yet" in text and "nothing is kept" in text
    assert "last good checkpoint" not in text
    assert "learning rate (lr=" in text and f"beta ({cfg.beta:g}" in text and "the data" in text
    torch.save({"epoch": 2, "step": 0}, ckpt)
    text = T.non_finite_message(cfg, float("inf"), 2, 0, ckpt)
    assert f"the last good checkpoint {ckpt} (end of epoch 2) is kept" in text and "at epoch 3/3, step 1" in text
    torch.save({"epoch": 1, "step": 5}, ckpt)  # written by an interruption inside epoch 2
    assert "(epoch 2, step 5, saved when it was interrupted)" in T.non_finite_message(cfg, 1e40, 1, 7, ckpt)


def test_non_finite_loss_in_the_first_epoch_says_no_checkpoint_exists(tmp_path, monkeypatch):
    cfg = _cfg(epochs=2)
    original = T.MultimodalVAE.forward

    def poisoned(self, xs, mask=None):
        out = original(self, xs, mask)
        out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(T.MultimodalVAE, "forward", poisoned)
    with pytest.raises(T.NonFiniteLoss, match=r"at epoch 1/2, step 1; no checkpoint yet"):
        T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False)
    assert not (tmp_path / "ckpt" / T.run_path(cfg) / "last.pt").exists()


def test_interrupt_message_counts_epochs_from_1(tmp_path):
    cfg = _cfg(epochs=2)  # 96 rows, batch 32: 3 steps an epoch; stop in the second epoch after its first step
    with pytest.raises(KeyboardInterrupt, match=r"at epoch 2/2, step 1/3; run the same command again"):
        T.train(cfg, tmp_path / "runs", tmp_path / "ckpt", progress=False, stop_after_steps=4)


def test_a_damaged_mini_set_stops_training_with_one_line_that_says_how_to_rebuild_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(D, "DATA_DIR", tmp_path / "data")
    monkeypatch.setitem(D.MINI_PER_CLASS, "ci", (2, 1))
    D.get_dataset("polymnist-mini", "train", scale="ci")  # built on first use
    png = tmp_path / "data" / "polymnist-mini-ci" / "train" / "m2" / "1.3.png"
    png.write_bytes(png.read_bytes()[:50])  # truncated
    with pytest.raises(SystemExit) as err:
        T.main(["--scale", "ci", "--no-progress", "--runs-dir", str(tmp_path / "runs"),
                "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert err.value.code == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error: PolyMNIST-mini: ") and "`make data-mini`" in out[0]
    assert "extract" not in out[0]


def _interrupted_task():
    raise KeyboardInterrupt("stopped")


def test_an_interrupted_pool_worker_exits_instead_of_taking_the_next_run():
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1) as pool:
        first = pool.submit(T.in_worker, _interrupted_task)
        second = pool.submit(T.in_worker, int, "7")  # queued behind it: must not run in the stopped worker
        with pytest.raises(BrokenProcessPool):
            first.result()
        with pytest.raises(BrokenProcessPool):
            second.result()
    with ProcessPoolExecutor(max_workers=1) as pool:  # without an interrupt it is the plain call
        assert pool.submit(T.in_worker, int, "7").result() == 7


@pytest.mark.parametrize("beta", [0.03, 1.0, 2.5, 10.0])
def test_a_run_path_reads_back_as_what_it_names(beta):
    cfg = T.make_config("polymnist-mini", "mmvaeplus", "cpu", beta=beta, seed=2)
    key = T.parse_run_path(T.run_path(cfg))
    assert (key.scale, key.dataset, key.method, key.beta, key.seed) == ("cpu", "polymnist-mini", "mmvaeplus", beta, 2)
    assert T.parse_run_path(str(T.run_path(cfg))) == key  # as stored in a summary's runs_stale: a string
    for bad in ("cpu/polymnist-mini/helvae/beta=1", "cpu/polymnist-mini/helvae/b=1/seed=0", "a/b/c/beta=1/s=0"):
        with pytest.raises(ValueError, match="is not a run path <scale>/<dataset>/<method>/beta=<b>/seed=<s>"):
            T.parse_run_path(bad)


def test_kl_weight_rises_linearly_over_the_warm_up_then_stays_at_beta():
    # 2 epochs of warm-up, 4 steps each: step k (from 0, counted across epochs) has weight beta * (k + 1) / 8
    assert [T.kl_weight(4.0, 2, 4, e, s) for e in range(3) for s in range(4)] == \
        [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert T.kl_weight(2.5, 0, 4, 0, 0) == 2.5  # no warm-up: beta from the first step


def test_a_warmed_up_run_trains_on_its_schedule_and_resumes_on_it(tmp_path, monkeypatch):
    cfg = _cfg(kl_warmup=2)  # 2 epochs of 3 steps: weights beta/6, 2 beta/6, ..., beta
    seen = []
    real_forward = T.MultimodalVAE.forward
    monkeypatch.setattr(T.MultimodalVAE, "forward", lambda self, *a, **k: (self.training and seen.append(self.beta))
                        or real_forward(self, *a, **k))  # the weight of every training step (not the test passes)
    T.train(cfg, tmp_path / "a" / "runs", tmp_path / "a" / "ckpt", progress=False)
    assert seen == pytest.approx([cfg.beta * k / 6 for k in range(1, 7)])
    seen.clear()
    with pytest.raises(KeyboardInterrupt, match="resume"):
        T.train(cfg, tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False, stop_after_steps=4)
    T.train(cfg, tmp_path / "b" / "runs", tmp_path / "b" / "ckpt", progress=False)
    # 4 steps, then the 2 left on the schedule: a restart would train 6 more, from beta / 6
    assert seen == pytest.approx([cfg.beta * k / 6 for k in range(1, 7)])
    wa, wb = _weights(tmp_path / "a" / "ckpt", cfg), _weights(tmp_path / "b" / "ckpt", cfg)
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)
    T.train(_cfg(), tmp_path / "c" / "runs", tmp_path / "c" / "ckpt", progress=False)  # beta from the first step
    wc = _weights(tmp_path / "c" / "ckpt", _cfg())
    assert not all(torch.allclose(wa[k].float(), wc[k].float(), atol=1e-6) for k in wa)
    with pytest.raises(ValueError, match="kl_warmup .3 epochs. is longer than the run"):
        T.train(_cfg(kl_warmup=3), tmp_path / "d" / "runs", tmp_path / "d" / "ckpt", progress=False)
    with pytest.raises(ValueError, match="recompile"):
        T.check_ranges(_cfg(kl_warmup=1, compile=True))
    # a run committed before the field existed had no warm-up: it is the same run as kl_warmup=0, not this one
    stored = {k: v for k, v in T.dataclasses.asdict(_cfg()).items() if k != "kl_warmup"}
    assert not T.config_differences(T.stored_config(stored), _cfg())
    assert T.config_differences(T.stored_config(stored), cfg) == {"kl_warmup": (0, 2)}
