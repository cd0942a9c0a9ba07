"""Rank and seed charts: the long frame holds exactly the table's cells, and both charts are written."""

import json

from poolvae import rank_charts as R


def _summary() -> dict:
    cells = {}
    for beta, order in (("1", ("a", "b", "c")), ("2.5", ("b", "a", "c"))):
        cells[beta] = {"coherence/conditional": {
            m: {"ours": {"mean": 0.9 - 0.1 * i, "std": 0.01 if beta == "1" else None, "n": 2 if beta == "1" else 1},
                "ours_rank": i + 1, "paper_rank": ("a", "b", "c").index(m) + 1, "paper": None}
            for i, m in enumerate(order)}}
    return {"item": "toy", "scale": "cpu", "cells": cells,
            "kendall_tau": {"1": {"coherence/conditional": 1.0}, "2.5": {"coherence/conditional": 1 / 3}},
            "kendall_tau_interval": {"1": {"coherence/conditional": [0.33, 1.0]}, "2.5": {}}}


def test_rank_frame_has_one_row_per_cell_with_both_ranks():
    df = R.rank_frame(_summary())
    assert len(df) == 6
    row = df[(df["block"] == "2.5") & (df["method"] == "a")].iloc[0]
    assert row["ours_rank"] == 2 and row["paper_rank"] == 1 and row["ours"] == 0.8 and row["beta"] == 2.5
    assert "β=1: +1.00 [+0.33, +1.00]" in R._tau_title(_summary(), "coherence/conditional")


def test_draw_writes_both_charts(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "method_colour", lambda m: {"a": "red", "b": "green", "c": "blue"}[m])
    (tmp_path / "toy.json").write_text(json.dumps(_summary()))
    paths = R.draw("toy", tmp_path, tmp_path / "fig")
    names = sorted(p.name for p in paths)
    assert names == ["toy-ranks.pdf", "toy-ranks.png", "toy-seeds.pdf", "toy-seeds.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_cells_resting_on_a_stale_run_are_flagged_and_drawn_hollow(tmp_path, monkeypatch):
    summary = {**_summary(), "dataset": "polymnist-mini",
               "runs_stale": {"cpu/polymnist-mini/b/beta=2.5/seed=1": "epochs: 60 there, 65 now"}}
    df = R.rank_frame(summary)
    assert set(df[df["stale"]][["block", "method"]].itertuples(index=False)) == {("2.5", "b")}
    assert not R.rank_frame(_summary())["stale"].any()
    monkeypatch.setattr(R, "method_colour", lambda m: {"a": "red", "b": "green", "c": "blue"}[m])
    for make in (R.rank_chart, R.seed_chart):
        fig = make(summary)
        hollow = [c for ax in fig.axes for c in ax.collections
                  if len(c.get_facecolors()) and tuple(c.get_facecolors()[0]) == (1.0, 1.0, 1.0, 1.0)]
        assert len(hollow) == 1 and R.STALE_NOTE in fig._suptitle.get_text()
        assert R.STALE_NOTE not in make(_summary())._suptitle.get_text()
