"""bench-train's structure on tiny settings (no timed assertions): every method beside its floor, ratios computed
from the medians it reports, the floor free of pooling, memory that grows with the decodes, the targets computed."""

import json

import pytest
import torch

from poolvae import bench_train as B
from poolvae import datasets as D
from poolvae.likelihoods import laplace_log_prob
from poolvae.models import METHODS
from poolvae.train import build_model, make_config

TINY = dict(dataset="polymnist-mini", scale="ci", overrides={"batch_size": 16, "latent_dim": 4, "width": 4},
            data=[("polymnist", "paper"), ("polymnist-mini", "ci")], description="tiny")


def test_decoder_passes_per_modality():
    passes = {m: B.decoder_passes_per_modality(m, 5) for m in METHODS}
    assert passes == {"mvae": 2, "mmvae": 5, "mopoe": 1, "mmvaeplus": 5, "codevae": 31, "wbvae": 1, "mwbvae": 1,
                      "helvae": 1, "helvae-learned": 1, "mohelvae": 1}


@pytest.mark.parametrize("method", ["helvae", "mmvaeplus"])
def test_the_floor_passes_one_expert_through_and_trains_every_network(method, monkeypatch):
    cfg = make_config("polymnist-mini", method, "ci", latent_dim=4, width=4)
    model = build_model(cfg, D.polymnist_spec("polymnist-mini"))
    monkeypatch.setattr(model, "posterior", lambda *a: pytest.fail("the floor must not pool"))
    xs = [torch.rand(6, 3, 28, 28) for _ in range(5)]
    loss = B.floor_loss(model, xs)
    loss.backward()
    for net in (*model.encoders, *model.decoders):
        assert sum(float(p.grad.abs().sum()) for p in net.parameters()) > 0, type(net).__name__
    if method != "helvae":
        return
    # an independent computation: expert 0's sample decoded by every decoder, every expert's KL to N(0, I)
    torch.manual_seed(1)
    got = B.floor_loss(model, xs)
    torch.manual_seed(1)
    with torch.no_grad():
        mu, logvar, _, _ = model.encode(xs)
        z = mu[0] + torch.randn_like(mu[0]) * torch.exp(0.5 * logvar[0])
        rec = sum(laplace_log_prob(x, dec(z)) for x, dec in zip(xs, model.decoders, strict=True))
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum((0, 2))
    assert float(got.detach()) == pytest.approx(float(-(rec - kl).mean()), rel=1e-5)


def test_the_benchmark_reports_every_method_beside_its_floor():
    res = B.run("cpu", ["tiny"], steps=1, rounds=2, variants=("bf16",), settings={"tiny": TINY})
    assert res["schema"] == B.SCHEMA and res["device"]["device"] == "cpu"
    assert res["clock"] == ("thread_time" if torch.get_num_threads() == 1 else "perf_counter")
    block = res["settings"]["tiny"]
    assert block["data"] == "polymnist-mini"  # PolyMNIST is not here: the stand-in with the same shapes
    assert set(block["methods"]) == set(METHODS)
    cfgs = {m: make_config("polymnist-mini", m, "ci", TINY["overrides"]) for m in METHODS}
    assert set(block["floors"]) == {B.floor_key(c) for c in cfgs.values()} == {"conv28-w4-D4-P0-B16",
                                                                               "conv28-w4-D4-P8-B16"}
    for m, r in block["methods"].items():
        floor = block["floors"][r["floor"]]
        assert r["floor"] == B.floor_key(cfgs[m]) and r["timed_steps"] == 2
        assert r["ratio_to_floor"] == pytest.approx(r["step_seconds"] / floor["step_seconds"])
        assert r["seconds_per_step"] == pytest.approx(r["step_seconds"] + r["data_seconds"])
        assert r["samples_per_second"] == pytest.approx(16 / r["seconds_per_step"])
        assert 0 < r["data_share"] < 1 and r["peak_memory_mib"] is None  # no per-step allocator peak on a CPU
        assert r["config"]["method"] == m and r["persistent_mib"] > 0
    # memory, not time: what autograd keeps grows with the decodes (CoDEVAE 31 per modality, MVAE 2)
    saved = {m: r["saved_for_backward_mib"] for m, r in block["methods"].items()}
    floor0 = block["floors"]["conv28-w4-D4-P0-B16"]["saved_for_backward_mib"]
    assert saved["codevae"] > 5 * floor0 and saved["mvae"] > 1.2 * floor0 and saved["mmvae"] > 2 * floor0
    assert block["floors"]["conv28-w4-D4-P0-B16"]["config"]["method"] == "floor"
    v = block["variants"]["helvae+bf16"]
    assert v["config"]["amp"] == "bf16" and v["speedup"] == pytest.approx(
        block["methods"]["helvae"]["step_seconds"] / v["step_seconds"])
    assert block["pipeline"]["speedup"] == pytest.approx(
        block["pipeline"]["per_row_seconds_per_batch"] / block["pipeline"]["batched_seconds_per_batch"])
    assert res["targets"] == {}  # the tiny setting is neither cpu nor paper
    assert all(line for line in B.summary_lines(res))


def test_a_method_over_the_memory_budget_is_skipped_with_its_reason():
    block = B.run("cpu", ["tiny"], ["helvae", "codevae"], steps=1, rounds=1, settings={"tiny": TINY},
                  max_gib=0.01)["settings"]["tiny"]
    assert "step_seconds" in block["methods"]["helvae"]
    assert block["methods"]["codevae"]["skipped"].startswith("skipped: about 0.0")
    assert "31 decoder passes" in block["methods"]["codevae"]["skipped"]


def test_targets_are_computed_from_the_measurements():
    def row(ratio, passes, share=0.01):
        return {"ratio_to_floor": ratio, "decoder_passes_per_modality": passes, "data_share": share}

    settings = {"cpu": {"methods": {"helvae": row(1.0, 1, share=0.07)}},
                "paper": {"methods": {"helvae": row(1.10, 1), "mopoe": row(1.31, 1), "mmvae": row(4.0, 5),
                                      "codevae": {"skipped": "too big", "decoder_passes_per_modality": 31}}}}
    t = B.targets(settings)
    assert t["input_pipeline_share_of_cpu_helvae_step"] == {"value": 0.07, "target": 0.05, "met": False}
    assert t["helvae_paper_ratio_to_floor"] == {"value": 1.10, "target": 1.15, "met": True}
    assert t["single_decode_paper_ratio_to_floor"] == {"helvae": {"value": 1.10, "target": 1.3, "met": True},
                                                       "mopoe": {"value": 1.31, "target": 1.3, "met": False}}


def test_command_line_writes_the_file(tmp_path, monkeypatch):
    monkeypatch.setitem(B.SETTINGS, "cpu", TINY)
    out = tmp_path / "train-cpu.json"
    B.main(["--device", "cpu", "--scales", "cpu", "--methods", "helvae", "wbvae", "--steps", "1", "--rounds", "1",
            "--out", str(out)])
    res = json.loads(out.read_text())
    assert set(res["settings"]["cpu"]["methods"]) == {"helvae", "wbvae"}
    assert res["targets"]["input_pipeline_share_of_cpu_helvae_step"]["target"] == 0.05
    assert B.default_path("cuda:0").name == "train-cuda.json" and B.default_path("cpu").name == "train-cpu.json"
    with pytest.raises(SystemExit):
        B.main(["--device", "cpu", "--scales", "cpu", "--variants", "fp8"])
    with pytest.raises(ValueError, match="unknown variant"):
        B.run("cpu", ["cpu"], variants=("fp8",))
    with pytest.raises(ValueError, match="unknown setting"):
        B.run("cpu", ["laptop"])
