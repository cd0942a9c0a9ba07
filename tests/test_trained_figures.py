"""Trained figures are drawn from summaries written by poolvae.experiments (here from evaluation
files the test writes), to PNG and PDF, and a figure without runs is skipped with a message."""

import sys
from pathlib import Path

import pytest

from poolvae import experiments as X
from poolvae import figures as F

sys.path.insert(0, str(Path(__file__).parent))
from test_experiments import _evaluation, _write  # noqa: E402


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
    for k, cfg in enumerate(cfgs[:-2]):  # the last two methods: one run without samples.npz, one without a run
        _fixture_samples(tmp_path / "runs" / X.run_path(cfg) / "samples.npz", 40 * k)
    (tmp_path / "runs" / X.run_path(cfgs[-2])).mkdir(parents=True)
    s = X.render(item, "cpu", tmp_path, figures_dir=tmp_path)
    assert s["runs_found"] == len(cfgs) - 2 and set(s["samples"]) == {c.method for c in cfgs[:-2]}
    assert [(m["method"], m["why"]) for m in s["missing"]] == [(cfgs[-2].method, "the run has no samples.npz"),
                                                                (cfgs[-1].method, "no run")]
    out = capsys.readouterr().out
    assert f"{cfgs[-1].method} (beta 2.5, seed 0): no run" in out and "python -m poolvae.evaluate" in out
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
