"""The reproduction registry: run lists per scale, summaries over seeds, ranks and Kendall's tau,
the paper's numbers beside ours, and rendering, checked on evaluation files written by the test."""

import json

import pytest

from poolvae import experiments as X
from poolvae.train import run_path


def _evaluation(cond: float, uncond: float, fd_c: float, fd_u: float, ll: float = -100.0) -> dict:
    subsets = ["m0", "m1", "m0+m1"]
    return {"schema": "poolvae.evaluate/1", "subsets": subsets,
            "metrics": {"coherence": {"conditional": {"overall": cond, "by_size": {"1": {"mean": cond - 0.1},
                                                                                  "2": {"mean": cond}}},
                                      "unconditional": uncond},
                        "fd_classifier": {"conditional": {"mean": fd_c, "by_size": {"1": {"mean": fd_c}}},
                                          "unconditional": {"m0": fd_u, "m1": fd_u + 2.0}},
                        "log_likelihood": {"joint": ll, "by_size": {"1": {"mean": ll}}},
                        "latent": {"per_subset": {s: 0.5 for s in subsets}, "by_size": {"1": {"mean": 0.5}}}}}


def _write(root, cfg, ev):
    d = root / "runs" / run_path(cfg)
    d.mkdir(parents=True)
    (d / "evaluation.json").write_text(json.dumps(ev))


def test_run_lists_per_scale():
    e = X.get_experiment("hel-table8")
    cpu, paper = e.runs("cpu"), e.runs("paper")
    assert len(cpu) == 7 * 4 * 1 and len(paper) == 7 * 4 * 3
    assert {c.dataset for c in cpu} == {"polymnist-mini"} and {c.dataset for c in paper} == {"polymnist"}
    assert {c.beta for c in X.get_experiment("hel-fig6").runs("cpu")} == {3e-2, 3e-1, 1.0, 2.5, 5.0, 10.0}
    with pytest.raises(ValueError, match="valid: .*hel-table8"):
        X.get_experiment("hel-table99")


def test_ranks_and_kendall_tau():
    assert X.ranks({"a": 0.9, "b": 0.5, "c": 0.9, "d": None}, higher_is_better=True) == {"a": 1, "c": 1, "b": 3}
    assert X.ranks({"a": 10.0, "b": 5.0}, higher_is_better=False) == {"b": 1, "a": 2}
    assert X.kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}) == pytest.approx(1.0)
    assert X.kendall_tau({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1}) == pytest.approx(-1.0)
    assert X.kendall_tau({"a": 1, "b": 2}, {"a": 1, "b": 2}) is None


def test_summary_over_seeds_with_paper_values_and_render(tmp_path):
    e = X.get_experiment("hel-table7")
    # two seeds of helvae, one of helvae-learned, at the cpu scale's run paths
    cfgs = {(c.method, c.seed): c for c in e.runs("cpu")}
    helvae = cfgs[("helvae", 0)]
    _write(tmp_path, helvae, _evaluation(0.8, 0.3, 10.0, 12.0))
    seed1 = type(helvae)(**{**helvae.__dict__, "seed": 1})
    _write(tmp_path, seed1, _evaluation(0.6, 0.5, 14.0, 16.0))
    _write(tmp_path, cfgs[("helvae-learned", 0)], _evaluation(0.75, 0.4, 9.0, 11.0))
    s = X.summarise(e, "cpu", tmp_path)
    assert s["runs_found"] == 2  # only seed 0 belongs to the cpu run list
    cell = s["cells"]["5"]["coherence/conditional"]
    assert cell["helvae"]["ours"]["mean"] == pytest.approx(0.8)
    assert cell["helvae"]["ours_rank"] == 1 and cell["helvae-learned"]["ours_rank"] == 2
    # the paper's Table 7: uniform 0.887 +- 0.006, learned 0.886 +- 0.002
    assert cell["helvae"]["paper"] == {"mean": 0.887, "std": 0.006}
    assert cell["helvae"]["paper_rank"] == 1
    q = s["cells"]["5"]["quality/unconditional"]
    assert q["helvae"]["ours"]["mean"] == pytest.approx(13.0)  # mean over modalities of fd_classifier
    assert q["helvae-learned"]["ours_rank"] == 1  # lower is better
    summary = X.render("hel-table7", "cpu", tmp_path)
    md = (tmp_path / "hel-table7.md").read_text()
    assert "0.887 ± 0.006 (1)" in md and "0.800 (1)" in md and "fd_classifier" in md
    assert (tmp_path / "hel-table7.csv").read_text().count("\n") == 1 + 2 * 4
    assert "\\toprule" in (tmp_path / "hel-table7.tex").read_text()
    assert json.loads((tmp_path / "hel-table7.json").read_text())["runs_found"] == summary["runs_found"]


def test_seeds_are_averaged(tmp_path, monkeypatch):
    e = X.get_experiment("hel-table7")
    monkeypatch.setitem(e.seeds, "cpu", (0, 1))
    cfgs = {(c.method, c.seed): c for c in e.runs("cpu")}
    _write(tmp_path, cfgs[("helvae", 0)], _evaluation(0.8, 0.3, 10.0, 12.0))
    _write(tmp_path, cfgs[("helvae", 1)], _evaluation(0.6, 0.5, 14.0, 16.0))
    ours = X.summarise(e, "cpu", tmp_path)["cells"]["5"]["coherence/conditional"]["helvae"]["ours"]
    assert ours["mean"] == pytest.approx(0.7) and ours["std"] == pytest.approx(0.1414213562) and ours["n"] == 2


def test_curves_by_number_of_inputs(tmp_path):
    e = X.get_experiment("wb-fig3")
    for c in e.runs("cpu"):
        _write(tmp_path, c, _evaluation(0.7, 0.2, 5.0, 6.0))
    s = X.summarise(e, "cpu", tmp_path)
    assert s["curves"]["coherence"]["2.5"]["wbvae"]["1"]["mean"] == pytest.approx(0.6)
    assert s["curves"]["coherence"]["2.5"]["wbvae"]["2"]["mean"] == pytest.approx(0.7)
