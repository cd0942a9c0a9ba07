"""Pairs of methods tested over seeds: the exact Mann-Whitney p-value against scipy and hand-counted splits, the
pair verdicts on toy values, and the per-seed reading of a table item against the item's own means."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from poolvae import seed_pairs as S
from poolvae.artefacts import RESULTS_DIR, read_json
from poolvae.experiments import HEADLINE_BETA, HEADLINE_SEEDS
from poolvae.train import make_config, run_path


@pytest.mark.parametrize("sizes", [(3, 3), (2, 4), (1, 3), (4, 5), (1, 1), (5, 2)])
def test_exact_p_value_matches_scipy_without_ties(sizes):
    rng = np.random.default_rng(sum(sizes))
    for _ in range(5):
        a, b = rng.normal(size=sizes[0]), rng.normal(0.5, size=sizes[1])
        want = stats.mannwhitneyu(a, b, alternative="greater", method="exact").pvalue
        assert S.mann_whitney_p(a, b) == pytest.approx(want, abs=1e-12)


def test_exact_p_value_closed_forms():
    assert S.mann_whitney_p([4, 5, 6], [1, 2, 3]) == pytest.approx(1 / math.comb(6, 3))  # complete separation
    assert S.mann_whitney_p([1, 2, 3], [4, 5, 6]) == 1.0
    assert S.mann_whitney_p([9.0], [1.0, 2.0, 3.0]) == pytest.approx(1 / 4)  # one seed: never below 1/4
    assert S.mann_whitney_p([2.0], [1.0]) == 0.5
    assert S.mann_whitney_p([1.0, 1.0], [1.0, 1.0]) == 1.0  # all tied: every split has U = 2


def test_exact_p_value_with_ties_counts_splits_by_hand():
    # pooled 2, 3, 1, 2 into groups of two: U of the six splits is 3.5 ({2,3} twice), 2, 2, 0.5, 0.5 -> 2 of 6
    assert S.mann_whitney_p([2.0, 3.0], [1.0, 2.0]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("a, b, match", [([], [1.0], "both sides"), (list(range(9)), list(range(8)), "too many"),
                                         ([float("nan")], [1.0], "finite")])
def test_exact_p_value_refuses_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        S.mann_whitney_p(a, b)


def test_pair_table_verdicts():
    values = {"a": [0.70, 0.71, 0.72], "b": [0.80, 0.81, 0.82], "c": [0.50, 0.51, 0.52], "d": [0.9], "e": []}
    paper = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    rows = {(r["better_in_paper"], r["worse_in_paper"]): r for r in S.pair_table(values, paper)}
    assert set(rows) == {("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")}  # e: no values
    assert rows["a", "b"]["verdict"] == S.REVERSED and rows["a", "b"]["p_reversed"] == pytest.approx(0.05)
    assert rows["a", "c"]["verdict"] == S.AGREES and rows["a", "c"]["seeds"] == (3, 3)
    assert rows["c", "d"]["verdict"] == S.NOT_SEPARATED and rows["c", "d"]["p_reversed"] == pytest.approx(0.25)
    assert rows["a", "b"]["mean_worse_in_paper"] == pytest.approx(0.81)
    lower = {(r["better_in_paper"], r["worse_in_paper"]): r["verdict"]
             for r in S.pair_table(values, paper, higher=False)}
    assert lower["a", "b"] == S.AGREES and lower["a", "c"] == S.REVERSED  # smaller is better: the other way
    tied = S.pair_table({"a": [1.0], "b": [2.0]}, {"a": 1, "b": 1})
    assert tied == []  # the paper's tie orders nothing


def _toy_results(tmp_path, values: dict[str, list[float]], stale_method: str | None = None):
    """A results folder with evaluation.json for hel-table8's beta 2.5 seeds and its rendered item's ranks."""
    stale = {}
    for method, vals in values.items():
        for seed, v in zip(HEADLINE_SEEDS["cpu"][:len(vals)], vals, strict=True):
            path = run_path(make_config("polymnist-mini", method, "cpu", beta=HEADLINE_BETA, seed=seed))
            folder = tmp_path / "runs" / path
            folder.mkdir(parents=True)
            (folder / "evaluation.json").write_text(json.dumps(
                {"metrics": {"coherence": {"conditional": {"overall": v}}}}))
            if method == stale_method:
                stale[str(path)] = "epochs: 60 there, 65 now"
    cells = {m: {"ours": {"mean": float(np.mean(v)), "interval": [min(v), max(v)]}, "paper_rank": i + 1,
                 "paper": {"mean": 0.9 - 0.1 * i}} for i, (m, v) in enumerate(values.items())}
    (tmp_path / "hel-table8.json").write_text(json.dumps(
        {"scale": "cpu", "cells": {"2.5": {"coherence/conditional": cells}}, "runs_stale": stale}))
    return tmp_path


def test_pairs_of_item_reads_every_seed_and_flags_stale_runs(tmp_path, monkeypatch):
    res = _toy_results(tmp_path, {"helvae": [0.5, 0.51, 0.52], "mopoe": [0.8, 0.81, 0.82], "mvae": [0.3]},
                       stale_method="mvae")
    values, stale = S.seed_values("hel-table8", "2.5", "coherence/conditional", "cpu", res)
    assert values == {"helvae": [0.5, 0.51, 0.52], "mopoe": [0.8, 0.81, 0.82], "mvae": [0.3]}
    assert stale == {"helvae": False, "mopoe": False, "mvae": True}
    rows = {(r["better_in_paper"], r["worse_in_paper"]): r for r in S.pairs_of_item(
        "hel-table8", "2.5", "coherence/conditional", "cpu", res)}
    assert rows["helvae", "mopoe"]["verdict"] == S.REVERSED and not rows["helvae", "mopoe"]["stale"]
    assert rows["helvae", "mvae"]["stale"] and rows["helvae", "mvae"]["verdict"] == S.NOT_SEPARATED
    monkeypatch.setattr(S, "method_colour", lambda m: {"helvae": "red", "mopoe": "green", "mvae": "blue"}[m])
    fig = S.strip_chart("hel-table8", "2.5", "coherence/conditional", "cpu", res)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["helvae", "mopoe", "mvae"]  # the paper's order
    hollow = [c for c in ax.collections
              if len(c.get_facecolors()) and tuple(c.get_facecolors()[0]) == (1.0, 1.0, 1.0, 1.0)]
    assert len(hollow) == 1 and len(hollow[0].get_offsets()) == 1  # mvae's stale seed
    assert "stale" in ax.get_title()


def test_bad_item_block_or_column_is_named(tmp_path):
    res = _toy_results(tmp_path, {"helvae": [0.5]})
    with pytest.raises(ValueError, match="no column 'coherence/sideways'"):
        S.seed_values("hel-table8", "2.5", "coherence/sideways", "cpu", res)
    with pytest.raises(ValueError, match="no block '7'"):
        S.seed_values("hel-table8", "7", "coherence/conditional", "cpu", res)


def test_committed_seeds_give_the_rendered_items_means():
    """The per-seed reading and the rendered hel-table8 are two paths to the same runs: their means agree."""
    summary = read_json(RESULTS_DIR / "hel-table8.json")
    values, _ = S.seed_values("hel-table8", "2.5", "coherence/conditional")
    assert values, "hel-table8 has no committed runs at beta 2.5"
    for method, vals in values.items():
        ours = summary["cells"]["2.5"]["coherence/conditional"][method]["ours"]
        assert ours["n"] == len(vals) and ours["mean"] == pytest.approx(float(np.mean(vals)), abs=1e-9)


def test_readme_section_names_the_reversed_and_confirmed_pairs(tmp_path):
    from poolvae import report

    res = _toy_results(tmp_path, {"helvae": [0.5, 0.51, 0.52], "mopoe": [0.8, 0.81, 0.82], "mvae": [0.3, 0.31, 0.32]})
    text = "\n".join(report._seed_pair_lines(res))
    assert "Of the 3 pairs" in text and "seeds per method: mvae 3, mopoe 3, helvae 3" in text
    assert "reverse 1 (helvae > mopoe)" in text and "confirm 2 (helvae > mvae; mopoe > mvae)" in text
    assert report._seed_pair_lines(tmp_path / "nothing") == []
