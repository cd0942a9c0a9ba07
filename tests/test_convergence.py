"""The convergence diagnostic: part-way evaluations of a resumable run, and the calibration rule by hand."""

import json

import pytest

from poolvae import convergence as C
from poolvae.artefacts import read_json


def _points(values: list[float], objective: list[float] | None = None, every: int = 20) -> list[dict]:
    """Evaluated points with the given conditional coherences (and held-out objectives)."""
    objective = objective or [float(i) for i in range(len(values))]
    return [{"epoch": every * (i + 1), "conditional_coherence": v, "test_objective": o}
            for i, (v, o) in enumerate(zip(values, objective, strict=True))]


def test_budget_is_the_first_epoch_close_to_every_best_with_a_stable_ranking():
    points = {"a": _points([0.2, 0.5, 0.69, 0.70, 0.70]),  # within 0.02 of its best from epoch 60
              "b": _points([0.3, 0.4, 0.45, 0.50, 0.51])}  # from epoch 80; ranking a > b from epoch 40
    assert C.calibrated_budget(points)["epochs"] == 80


def test_budget_waits_for_the_ranking_to_settle():
    points = {"a": _points([0.50, 0.60, 0.60, 0.60]),
              "b": _points([0.59, 0.59, 0.61, 0.61])}  # b overtakes a at epoch 60 and stays ahead
    assert C.calibrated_budget(points)["epochs"] == 60


def test_methods_within_the_tie_may_swap_without_moving_the_budget():
    points = {"a": _points([0.50, 0.70, 0.705, 0.70, 0.706]),
              "b": _points([0.40, 0.69, 0.708, 0.699, 0.71])}  # a and b swap places within 0.01 from epoch 40
    assert C.calibrated_budget(points)["epochs"] == 40
    assert C.calibrated_budget(points, tie=0.0)["epochs"] is None  # counted strictly, the order never settles
    points["b"] = _points([0.40, 0.60, 0.72, 0.72, 0.72])  # b passes a by 0.015 at epoch 60: a real change
    assert C.calibrated_budget(points)["epochs"] == 60


def test_no_budget_when_a_curve_still_climbs():
    points = {"a": _points([0.1, 0.2, 0.3, 0.4])}
    b = C.calibrated_budget(points)
    assert b["epochs"] is None and "train longer" in b["why"]
    assert C.calibrated_budget({})["epochs"] is None


def test_plateau_needs_flat_coherence_and_a_past_peak_of_the_objective():
    flat = [0.5, 0.60, 0.605, 0.60, 0.606]
    assert C.plateaued(_points(flat, [1, 3, 2, 1, 0]))
    assert not C.plateaued(_points(flat, [0, 1, 2, 3, 4]))  # held-out objective still rising
    assert not C.plateaued(_points([0.5, 0.55, 0.6, 0.65, 0.7], [1, 3, 2, 1, 0]))  # coherence still rising
    # the threshold is tol / 2 (0.01 at the default tol 0.02): a gain of 0.015 over the best before is not flat
    assert C.TOL == 0.02
    assert not C.plateaued(_points([0.5, 0.6, 0.615, 0.6, 0.6], [1, 3, 2, 1, 0]))
    assert C.plateaued(_points([0.5, 0.6, 0.615, 0.6, 0.6], [1, 3, 2, 1, 0]), tol=0.04)
    assert C.plateaued(_points([0.5, 0.6, 0.609, 0.6, 0.6], [1, 3, 2, 1, 0]))


@pytest.mark.slow
def test_run_method_evaluates_every_epoch_and_resumes(tmp_path):
    run_dir = C.run_method("helvae", epochs=2, every=1, results=tmp_path / "r", checkpoints=tmp_path / "c",
                           scale="ci", stop_on_plateau=False)
    for e in (1, 2):
        ev = read_json(C.epoch_file(run_dir, e))
        assert ev["run"]["epochs"] == e and set(ev["metrics"]) == {"coherence", "latent"}
        p = C.read_point(run_dir, e)
        assert 0.0 <= p["conditional_coherence"] <= 1.0 and p["epoch"] == e
    assert read_json(run_dir / "metrics.json")["finished"]
    before = C.epoch_file(run_dir, 1).read_bytes()
    C.run_method("helvae", epochs=2, every=1, results=tmp_path / "r", checkpoints=tmp_path / "c", scale="ci",
                 stop_on_plateau=False)
    assert C.epoch_file(run_dir, 1).read_bytes() == before  # kept, not redone


def test_more_tuples_runs_live_beside_the_main_diagnostic_and_count_equivalent_epochs():
    results, checkpoints = C.roots(4)
    assert results == C.ROOT / "tuples=4" and checkpoints == C.CHECKPOINTS / "tuples=4"
    assert C.roots(1) == (C.ROOT, C.CHECKPOINTS)
    assert C.config("helvae", 50, tuples=1).tuples == 1 and C.config("helvae").tuples == C.default_tuples() == 4
    assert C.span(4) == (75, 5) and C.span(1) == (300, 20)  # 300 and 20 epochs' worth of steps of 4,000 tuples
    assert C.config("helvae").epochs == 75 and C.config("codevae").epochs == 75  # CoDEVAE's own budget is lifted


def _fake_run(root, method, tuples, epochs, every, coherence, objective, finished=False):
    """A diagnostic run folder with evaluations every ``every`` epochs (coherence(e)) and objective(e) per epoch;
    ``finished``: it trained its whole span."""
    from poolvae.artefacts import write_json
    from poolvae.train import run_path

    run_dir = root / "runs" / run_path(C.config(method, epochs, tuples=tuples))
    write_json(run_dir / "metrics.json", {"finished": finished, "epochs": [
        {"epoch": e, "test_objective": objective(e)} for e in range(1, epochs + 1)]})
    for e in range(every, epochs + 1, every):
        write_json(C.epoch_file(run_dir, e), {"metrics": {
            "coherence": {"conditional": {"overall": coherence(e)}, "unconditional": 0.0},
            "latent": {"per_subset": {"m0": 0.5}}}})


def test_more_tuples_are_compared_at_equal_steps_and_early_stopping_reads_the_objective_peak(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "ROOT", tmp_path)
    _fake_run(tmp_path, "helvae", 1, 300, 20, lambda e: min(e, 200) / 250, lambda e: -abs(e - 60))  # peak at 60
    _fake_run(tmp_path / "tuples=4", "helvae", 4, 75, 5, lambda e: min(4 * e, 200) / 240, lambda e: -abs(e - 40))
    c = C.tuples_comparison(4)["methods"]["helvae"]
    assert [r["equivalent_epoch"] for r in c["matched"]] == list(range(20, 301, 20))
    row = c["matched"][0]  # 5 epochs of 16,000 tuples = 20 of 4,000: the same number of steps
    assert row["more"]["epoch"] == 5 and row["base"]["epoch"] == 20
    assert row["more"]["conditional_coherence"] == pytest.approx(20 / 240)
    assert c["objective_peak"]["base"]["equivalent_epoch"] == 60 and c["objective_peak"]["more"]["epoch"] == 40
    assert c["objective_peak"]["more"]["equivalent_epoch"] == 160
    s = C.summary(tuples=1)
    stop = s["early_stopping"]["helvae"]
    assert stop["objective_peak_epoch"] == 60 and stop["evaluated_epoch"] == 60
    assert stop["conditional_coherence"] == pytest.approx(60 / 250) and stop["best_conditional_coherence"] == 0.8
    assert s["own_budget"] == ["codevae"] and "codevae" in s["missing"] and "mopoe" in s["missing"]
    assert not s["final"]  # mopoe and the others without a budget of their own have no points
    s4 = C.summary(tuples=4)
    assert s4["tuples"] == 4 and s4["epochs_max"] == 75 and s4["every"] == 5
    assert (tmp_path / "tuples=4" / "summary.json").exists()


def test_the_budget_is_final_only_once_every_calibrated_curve_is_complete(tmp_path, monkeypatch):
    from poolvae.train import run_path

    monkeypatch.setattr(C, "ROOT", tmp_path)
    root = tmp_path / "tuples=4"
    calibrated = [m for m in C.METHODS if m not in C.own_budget_methods()]
    for m in calibrated:  # every method has points, but mvae only up to epoch 30 of 75
        _fake_run(root, m, 4, 30 if m == "mvae" else 75, 5, lambda e: min(e, 40) / 50, lambda e: -abs(e - 40),
                  finished=m != "mvae")
    s = C.summary(tuples=4)
    assert s["missing"] == ["codevae"] and s["unfinished"] == ["mvae"] and not s["final"]
    mvae_dir = root / "runs" / run_path(C.config("mvae", 75, tuples=4))
    (mvae_dir / "plateau.json").write_text('{"epoch": 30}')  # stopped on a plateau: complete
    s = C.summary(tuples=4)
    assert s["unfinished"] == [] and s["final"]
    assert s["budget"]["epochs"] == 40  # every curve is at its best from epoch 40 on


@pytest.mark.slow
def test_a_run_of_the_calibrated_budget_starts_from_the_diagnostics_snapshot(tmp_path, monkeypatch):
    import torch

    from poolvae import experiments as X
    from poolvae.train import checkpoint_file, run_path

    monkeypatch.setattr(C, "ROOT", tmp_path / "diag")
    monkeypatch.setattr(C, "CHECKPOINTS", tmp_path / "diag-ckpt")
    C.run_method("helvae", epochs=2, every=1, scale="ci", stop_on_plateau=False)
    diag = C.config("helvae", 2, scale="ci")
    for e in (1, 2):
        assert C.snapshot_file(diag, tmp_path / "diag-ckpt", e).exists()
    # the sweep's run of one epoch is the diagnostic's first epoch: same weights, and it comes last in the sweep
    cfg = X.make_config("polymnist-mini", "helvae", "ci", beta=2.5, seed=0, epochs=1)
    assert C.diagnostic_run(cfg) is not None
    runs, ckpt = tmp_path / "runs", tmp_path / "ckpt"
    X.run_one(cfg, runs, ckpt)
    snap = torch.load(C.snapshot_file(diag, tmp_path / "diag-ckpt", 1), weights_only=False)["model"]
    mine = torch.load(checkpoint_file(cfg, ckpt), weights_only=False)["model"]
    assert all(torch.equal(snap[k], mine[k]) for k in snap)
    run_dir = runs / run_path(cfg)
    assert json.loads((run_dir / "metrics.json").read_text())["finished"]
    assert json.loads((run_dir / "evaluation.json").read_text())["run"]["epochs"] == 1
    assert "from_convergence_diagnostic" in json.loads((run_dir / "environment.json").read_text())
    assert X.stale_reason(cfg, run_dir, ckpt) is None
    # trained directly, the same run has the same weights (the diagnostic's trajectory is the run's)
    X.train(cfg, tmp_path / "direct", tmp_path / "direct-ckpt", progress=False)
    direct = torch.load(checkpoint_file(cfg, tmp_path / "direct-ckpt"), weights_only=False)["model"]
    assert all(torch.allclose(direct[k].float(), mine[k].float(), atol=1e-6) for k in mine)


@pytest.mark.slow
def test_a_run_longer_than_its_diagnostic_trains_on_from_the_last_snapshot(tmp_path, monkeypatch):
    import torch

    from poolvae import experiments as X
    from poolvae.train import checkpoint_file, run_path

    monkeypatch.setattr(C, "ROOT", tmp_path / "diag")
    monkeypatch.setattr(C, "CHECKPOINTS", tmp_path / "diag-ckpt")
    cfg = X.make_config("polymnist-mini", "helvae", "ci", beta=2.5, seed=0, epochs=3)
    C.run_method("helvae", epochs=2, every=2, scale="ci", stop_on_plateau=False)  # stops after 2 of the run's 3
    assert C.diagnostic_complete(cfg) and C.latest_snapshot(cfg, tmp_path / "diag-ckpt") == 2
    other = X.make_config("polymnist-mini", "mopoe", "ci", beta=2.5, seed=1, epochs=3)  # no diagnostic of its own
    assert [c.method for c in X.sweep_order([other, cfg])] == ["helvae", "mopoe"]  # the cheap one first
    runs, ckpt = tmp_path / "runs", tmp_path / "ckpt"
    X.run_one(cfg, runs, ckpt, evaluate=False)
    run_dir = runs / run_path(cfg)
    seeded = json.loads((run_dir / "seeded.json").read_text())
    assert seeded["epoch"] == 2 and seeded["epochs"] == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["finished"] and [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    # the diagnostic's two epochs and one more are the run trained directly for three
    X.train(cfg, tmp_path / "direct", tmp_path / "direct-ckpt", progress=False)
    direct = torch.load(checkpoint_file(cfg, tmp_path / "direct-ckpt"), weights_only=False)["model"]
    mine = torch.load(checkpoint_file(cfg, ckpt), weights_only=False)["model"]
    assert all(torch.allclose(direct[k].float(), mine[k].float(), atol=1e-6) for k in mine)
    # while a diagnostic still trains, its runs wait until last
    (C.ROOT / "runs" / run_path(C.config("helvae", 2, scale="ci")) / "metrics.json").write_text(
        json.dumps({"finished": False, "epochs": []}))
    assert not C.diagnostic_complete(cfg)
    assert [c.method for c in X.sweep_order([cfg, other])] == ["mopoe", "helvae"]
