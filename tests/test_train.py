"""Runs are resumable and idempotent: an interrupted run resumes to the same weights as an
uninterrupted one, a finished run is skipped, bad configs and non-finite losses stop with clear errors."""

import json

import pytest
import torch

from poolvae import train as T


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
