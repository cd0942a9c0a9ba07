"""End to end on fixtures: the items whose data sets are not here (MNIST-SVHN-Text, CelebA, CUB) train,
evaluate and render at ci scale from tiny files in each data set's released layout, so the whole pipeline
(loader -> networks -> objective -> classifiers -> metrics -> table) is exercised without the real data."""

import json

import pytest

from poolvae import experiments as E


@pytest.mark.parametrize("item, methods, column", [
    ("wb-table1", ["wbvae", "mopoe"], "latent/M,S,T"),
    ("hel-table2", ["helvae", "mvae"], "coherence/conditional"),
    ("hel-table1", ["helvae"], "colour_coherence"),
])
def test_item_runs_end_to_end_at_ci_scale_on_fixtures(fixture_data_root, tmp_path, item, methods, column):
    kwargs = {"classifier_dir": tmp_path / "clf", "classifier_results_dir": tmp_path / "clf-results",
              }
    summary = E.reproduce(item, "ci", results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ckpt",
                          evaluate_kwargs=kwargs, methods=methods)
    written = json.loads((tmp_path / "results" / "ci" / f"{item}.json").read_text())  # ci renders: results/ci
    assert written["scale"] == "ci"
    md = (tmp_path / "results" / "ci" / f"{item}.md").read_text()
    for m in methods:
        assert m in md
    # every requested run was trained and evaluated, and the column holds a number computed from it
    evals = sorted((tmp_path / "results" / "runs" / "ci").rglob("evaluation.json"))
    assert len(evals) == len(methods)
    cells = summary["cells"]
    assert cells, "no beta has results"
    for beta_cells in cells.values():
        assert column in beta_cells, sorted(beta_cells)
        for m in methods:
            ours = beta_cells[column][m]["ours"]
            assert ours["n"] == 1 and isinstance(ours["mean"], float), (column, m, ours)


def test_celeba_figures_run_end_to_end_at_ci_scale_on_fixtures(fixture_data_root, tmp_path):
    """hel-fig15 trains and evaluates its run on the CelebA fixture, writes per-attribute coherence of every
    modality from every subset and the run's sample panels, and draws the figure; wb-fig4-style panels are there."""
    import numpy as np

    from poolvae import evaluate as EV

    kwargs = {"classifier_dir": tmp_path / "clf", "classifier_results_dir": tmp_path / "clf-results"}
    s = E.reproduce("hel-fig15", "ci", results_dir=tmp_path / "results", checkpoint_dir=tmp_path / "ckpt",
                    evaluate_kwargs=kwargs, figures_dir=tmp_path / "fig")
    assert s["runs_found"] == 1 and list(s["panels"]) == ["img", "text", "img+text"]
    assert list(s["panels"]["img+text"]) == ["img", "text"] and len(s["attributes"]) == 4
    assert (tmp_path / "fig" / "hel-fig15.png").stat().st_size > 1000
    run = next((tmp_path / "results" / "runs" / "ci").rglob("evaluation.json")).parent
    with np.load(run / EV.SAMPLES_FILE) as z:
        assert [str(p) for p in z["panels"]] == [p.name for p in EV.PANELS["celeba"]]
