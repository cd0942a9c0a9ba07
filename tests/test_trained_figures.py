"""Trained figures are drawn from summaries written by poolvae.experiments (here from evaluation
files the test writes), to PNG and PDF, and a figure without runs is skipped with a message."""

import sys
from pathlib import Path

import pytest

from poolvae import experiments as X
from poolvae import figures as F

sys.path.insert(0, str(Path(__file__).parent))
from test_experiments import _evaluation, _write  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    """run_item keeps its figures open; close them so that many drawings do not pile up."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("item", ["hel-fig3", "hel-fig5", "hel-fig6", "wb-fig3"])
def test_trained_figure_is_drawn_from_its_summary(tmp_path, item):
    exp = X.get_experiment(item)
    for k, cfg in enumerate(exp.runs("cpu")):
        _write(tmp_path, cfg, _evaluation(0.1 * (k % 7), 0.05 * (k % 5), 1.0 + k % 3, 2.0 + k % 4, -50.0 - k))
    X.render(item, "cpu", tmp_path, figures_dir=tmp_path)
    for ext in ("png", "pdf"):
        assert (tmp_path / f"{item}.{ext}").stat().st_size > 1000


def test_trained_figure_without_results_is_skipped(tmp_path):
    drawn, message = F.run_item("hel-fig5", tmp_path, tmp_path, seed=0)
    assert not drawn and "not found" in message and "make reproduce-hel-fig5" in message


# --------------------------------------------------------------------------------------------------
# hel-fig4 and hel-fig9: drawn from each run's samples.npz (test fixtures written here, not by a model)
# --------------------------------------------------------------------------------------------------

def _fixture_samples(path: Path, level: int, n_columns: int = 3, n_draws: int = 2) -> None:
    """A samples.npz shaped like poolvae.evaluate.write_samples' (PolyMNIST: 5 modalities, 28x28x3)."""
    import json

    import numpy as np

    from poolvae.evaluate import SAMPLE_PLAN

    target, plan = SAMPLE_PLAN["polymnist"]
    rng = np.random.default_rng(level)
    arrays = {"rows": np.arange(n_columns), "inputs": rng.integers(0, 255, (5, n_columns, 28, 28, 3), dtype=np.uint8),
              "modalities": np.asarray([f"m{i}" for i in range(5)]), "target": np.asarray(target),
              "subsets": np.asarray(["+".join(s) for s in plan]), "meta": np.asarray(json.dumps({"seed": 0}))}
    for s in plan:
        arrays[f"given_{'+'.join(s)}"] = np.full((n_draws, n_columns, 28, 28, 3), level, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("item", ["hel-fig4", "hel-fig9"])
def test_sample_figure_is_drawn_from_fixture_arrays_and_names_runs_without_samples(tmp_path, item, capsys):
    exp = X.get_experiment(item)
    cfgs = exp.runs("cpu")
    for k, cfg in enumerate(cfgs[:-2]):  # the last two methods: one run without samples.npz, one still training
        _fixture_samples(tmp_path / "runs" / X.run_path(cfg) / "samples.npz", 40 * k)
    evaluated = tmp_path / "runs" / X.run_path(cfgs[-2])
    evaluated.mkdir(parents=True)
    (evaluated / "evaluation.json").write_text("{}")
    training = tmp_path / "runs" / X.run_path(cfgs[-1])  # a run still training counts as no run
    training.mkdir(parents=True)
    (training / "config.json").write_text("{}")
    s = X.render(item, "cpu", tmp_path, figures_dir=tmp_path)
    assert s["runs_found"] == len(cfgs) - 2 and set(s["samples"]) == {c.method for c in cfgs[:-2]}
    assert [(m["method"], m["why"]) for m in s["missing"]] == [(cfgs[-2].method, "the run has no samples.npz"),
                                                                (cfgs[-1].method, "no evaluated run")]
    out = capsys.readouterr().out
    assert f"{cfgs[-1].method} (beta 2.5, seed 0): no evaluated run" in out and "python -m poolvae.evaluate" in out
    for ext in ("png", "pdf"):
        assert (tmp_path / f"{item}.{ext}").stat().st_size > 1000


def test_sample_panel_layout():
    import numpy as np

    from poolvae import trained_figures as TF

    arrays = {"modalities": np.asarray([f"m{i}" for i in range(5)]),
              "inputs": np.stack([np.full((3, 28, 28, 3), 10 * i, np.uint8) for i in range(5)]),
              "given_m0+m2": np.full((2, 3, 28, 28, 3), 200, np.uint8)}
    panel = TF.sample_panel(arrays, "m0+m2", gap=2, rule=6)
    assert panel.shape == (2 * 28 + 2 + 6 + 2 * 28 + 2, 3 * 28 + 2 * 2, 3) and panel.dtype == np.uint8
    assert panel[0, 0, 0] == 0 and panel[30, 0, 0] == 20  # first row m0, second row m2
    assert (panel[58:64] == 255).all() and panel[64, 0, 0] == 200 and panel[-1, -1, 0] == 200


def test_sample_figure_without_any_samples_says_so(tmp_path):
    s = X.render("hel-fig9", "cpu", tmp_path, figures_dir=tmp_path)
    assert s["runs_found"] == 0 and len(s["missing"]) == 7
    assert (tmp_path / "hel-fig9.png").exists()


# --------------------------------------------------------------------------------------------------
# Panel figures (hel-fig10..13, wb-fig4, wb-figS5..S9, S12) from fixture arrays shaped like
# poolvae.evaluate.write_panels', and the CelebA per-attribute figures from fixture evaluations
# --------------------------------------------------------------------------------------------------

_SHAPES = {"polymnist": {f"m{i}": (28, 28, 3) for i in range(5)},
           "mnist-svhn-text": {"mnist": (28, 28, 1), "svhn": (32, 32, 3), "text": None},
           "celeba": {"img": (64, 64, 3), "text": None}, "cub": {"img": (64, 64, 3), "text": None}}


def _fixture_panels(path: Path, dataset: str, level: int, panels=None) -> None:
    """A sample file with every panel of poolvae.evaluate.PANELS[dataset] (or ``panels``), random contents."""
    import json

    import numpy as np

    from poolvae.evaluate import PANELS

    rng = np.random.default_rng(level)
    shapes = _SHAPES[dataset]
    chosen = [p for p in PANELS[dataset] if panels is None or p.name in panels]
    arrays = {"modalities": np.asarray(list(shapes)), "panels": np.asarray([p.name for p in chosen]),
              "meta": np.asarray(json.dumps({"seed": 0}))}

    def values(m, lead):
        if shapes[m] is None:
            return np.asarray([["five, smiling, a bird with a long red beak"[: 4 + (level + i) % 30]
                                for i in range(lead[-1])]] * (lead[0] if len(lead) > 1 else 1)).reshape(lead)
        return rng.integers(0, 255, (*lead, *shapes[m]), dtype=np.uint8)

    for p in chosen:
        n = 8 if p.captions else p.n_columns
        arrays[f"{p.name}__rows"] = np.arange(n)
        arrays[f"{p.name}__labels"] = np.arange(n)[:, None] % 10
        for m in (("text",) if p.captions else p.given):
            arrays[f"{p.name}__given__{m}"] = values(m, (n,))
        for t in p.targets:
            arrays[f"{p.name}__gen__{t}"] = values(t, (p.n_draws, n))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


PANEL_ITEMS = ["hel-fig10", "hel-fig11", "hel-fig12", "hel-fig13", "wb-fig4", "wb-figS5", "wb-figS6", "wb-figS7",
               "wb-figS8", "wb-figS9", "wb-figS12"]


@pytest.mark.parametrize("item", PANEL_ITEMS)
def test_panel_figure_is_drawn_from_fixture_arrays_and_names_runs_without_samples(tmp_path, item):
    exp = X.get_experiment(item)
    cfgs = exp.runs("cpu")
    name = X.sample_file(exp)
    with_samples = cfgs[:-2] if len(cfgs) > 2 else cfgs
    for k, cfg in enumerate(with_samples):
        _fixture_panels(tmp_path / "runs" / X.run_path(cfg) / name, exp.dataset, 40 * k)
    if len(cfgs) > 2:  # one run whose file lacks the item's panels, one without a run
        _fixture_panels(tmp_path / "runs" / X.run_path(cfgs[-2]) / name, exp.dataset, 1, panels=())
    s = X.render(item, "cpu", tmp_path, figures_dir=tmp_path)
    assert s["runs_found"] == len(with_samples) and s["panels"] == list(exp.panels)
    if len(cfgs) > 2:
        assert [(m["method"], m["why"]) for m in s["missing"]] == [
            (cfgs[-2].method, f"its {name} has no panel {', '.join(exp.panels)}"),
            (cfgs[-1].method, "no evaluated run")]
    for ext in ("png", "pdf"):
        assert (tmp_path / f"{item}.{ext}").stat().st_size > 1000


@pytest.mark.parametrize("item", ["hel-fig13", "wb-figS9"])
def test_panel_figure_without_any_samples_says_so(tmp_path, item):
    s = X.render(item, "cpu", tmp_path, figures_dir=tmp_path)
    assert s["runs_found"] == 0 and len(s["missing"]) == len(X.get_experiment(item).methods)
    assert (tmp_path / f"{item}.png").exists()


def test_image_grid_and_panel():
    import numpy as np

    from poolvae import trained_figures as TF

    imgs = np.stack([np.stack([np.full((4, 5, 1), 10 * i + j, np.uint8) for j in range(3)]) for i in range(2)])
    g = TF.image_grid(imgs, gap=1)
    assert g.shape == (2 * 4 + 1, 3 * 5 + 2, 3) and g[0, 0, 0] == 0 and g[5, 6, 0] == 11 and g[4, 0, 0] == 255
    arrays = {"a_given_b__given__b": 1, "a_given_b__gen__a": 2, "a_given_b__labels": 3, "c_given_b__gen__c": 4}
    assert TF.panel(arrays, "a_given_b") == {"given": {"b": 1}, "gen": {"a": 2}, "labels": 3, "rows": None}


def _attribute_evaluation(shift: float) -> dict:
    names = ["Smiling", "Male", "Wearing_Hat"]
    ap = [0.2 + shift, 0.5, 0.9 - shift]
    return {"schema": "poolvae.evaluate/1", "modalities": ["img", "text"], "subsets": ["img", "text", "img+text"],
            "metrics": {"latent": {"per_subset_per_attribute": {s: ap for s in ("img", "text", "img+text")},
                                   "attributes": names},
                        "coherence": {"conditional": {
                            "per_pair_per_attribute": {"img": {"text": ap}, "text": {"img": ap}},
                            "reconstruction_per_attribute": {"img": {"img": ap}, "text": {"text": ap},
                                                             "img+text": {"img": ap, "text": ap}},
                            "attributes": names}}}}


@pytest.mark.parametrize("item", ["hel-fig14", "hel-fig15", "wb-figS10", "wb-figS11"])
def test_attribute_figure_is_drawn_from_evaluations(tmp_path, item):
    import dataclasses

    exp = X.get_experiment(item)
    cfg = exp.runs("cpu")[0]
    _write(tmp_path, cfg, _attribute_evaluation(0.0))
    _write(tmp_path, dataclasses.replace(cfg, seed=1), _attribute_evaluation(0.1))  # not a cpu run: ignored
    s = X.render(item, "cpu", tmp_path, figures_dir=tmp_path)
    assert s["attributes"] == ["Smiling", "Male", "Wearing_Hat"] and list(s["panels"]) == ["img", "text", "img+text"]
    series = s["panels"]["img"]
    assert list(series) == (["latent"] if exp.per_attribute == "latent" else ["img", "text"])
    first = next(iter(series.values()))
    assert first["mean"] == pytest.approx([0.2, 0.5, 0.9]) and first["n"] == 1 and first["std"] is None
    for ext in ("png", "pdf"):
        assert (tmp_path / f"{item}.{ext}").stat().st_size > 1000


def test_attribute_figure_without_runs_says_so(tmp_path):
    s = X.render("hel-fig15", "cpu", tmp_path, figures_dir=tmp_path)
    assert s["runs_found"] == 0 and s["panels"] == {} and (tmp_path / "hel-fig15.png").exists()


def test_captions_say_how_many_seeds_each_point_has():
    from poolvae import trained_figures as TF

    def cell(n):
        return {"ours": {"mean": 0.5 if n else None, "std": 0.1 if n > 1 else None, "n": n},
                "paper": {"mean": 0.4, "std": 0.01, "n": 5}}  # the paper's cells never count

    one = {"cells": {"1": {"m": {"a": cell(1), "b": cell(0)}}}}
    assert TF.seeds_phrase(one) == "one seed per point (no spread shown)"
    three = {"cells": {"1": {"m": {"a": cell(3), "b": cell(3)}}}}
    assert TF.seeds_phrase(three) == "mean ± std over 3 seeds"
    mixed = {"curves": {"coherence": {"1": {"a": {"1": {"mean": 1.0, "std": None, "n": 1},
                                                  "2": {"mean": 1.0, "std": 0.2, "n": 3}}}}}}
    assert TF.seeds_phrase(mixed) == "mean ± std over 1 to 3 seeds per point (no spread where one)"
    assert TF.seeds_phrase({"cells": {"1": {"m": {"a": cell(0)}}}}) == "no runs found"


def test_hel_fig3_writes_each_points_beta_beside_it(tmp_path):
    exp = X.get_experiment("hel-fig3")
    for k, cfg in enumerate(exp.runs("cpu")):
        _write(tmp_path, cfg, _evaluation(0.1 * (k % 7), 0.05 * (k % 5), 1.0 + k % 3, 2.0 + k % 4, -50.0 - k))
    summary = X.summarise(exp, "cpu", tmp_path)
    from poolvae import trained_figures as TF

    fig = TF.draw_tradeoffs(summary)
    betas = {f"{b:g}" for b in summary["betas"]}
    for ax in fig.axes:
        texts = [t.get_text() for t in ax.texts]
        assert set(texts) == betas and len(texts) == len(betas) * len(exp.methods)  # one label per point
    footer = " ".join(t.get_text() for t in fig.texts)
    # three seeds at beta 2.5, one elsewhere (issue #18): the footer says so rather than "over seeds"
    assert "over 1 to 3 seeds per point (no spread where one)" in footer and "beside a point is its β" in footer


@pytest.mark.parametrize("item, draw", [("hel-fig3", "draw_tradeoffs"), ("hel-fig6", "draw_beta_sweep"),
                                        ("hel-fig5", "draw_curves")])
def test_points_that_rest_on_a_stale_run_are_hollow_and_the_footer_says_so(tmp_path, item, draw):
    from poolvae import trained_figures as TF

    exp = X.get_experiment(item)
    for k, cfg in enumerate(exp.runs("cpu")):
        _write(tmp_path, cfg, _evaluation(0.1 * (k % 7), 0.05 * (k % 5), 1.0 + k % 3, 2.0 + k % 4, -50.0 - k))
    summary = X.summarise(exp, "cpu", tmp_path)
    assert TF.stale_points(summary) == set()
    fresh = getattr(TF, draw)(summary)
    assert TF.STALE_NOTE not in " ".join(t.get_text() for t in fresh.texts)
    cfg = next(c for c in exp.runs("cpu") if c.method == "helvae" and c.beta == 2.5)
    stale = {**summary, "runs_stale": {str(X.run_path(cfg)): "epochs: 60 there, 65 now"}}
    assert TF.stale_points(stale) == {("helvae", "2.5")}
    fig = getattr(TF, draw)(stale)
    hollow = [c for ax in fig.axes for c in ax.collections
              if len(c.get_facecolors()) and tuple(c.get_facecolors()[0]) == (1.0, 1.0, 1.0, 1.0)]
    # one hollow point per panel (one beta), or the whole stale curve (every number of inputs)
    points = [len(stale["curves"][s]["2.5"]["helvae"]) for s in stale["curves"]] if draw == "draw_curves" else None
    assert [len(c.get_offsets()) for c in hollow] == (points or [1] * len(hollow)) and len(hollow) == len(fig.axes)
    assert TF.STALE_NOTE in " ".join(t.get_text() for t in fig.texts)
