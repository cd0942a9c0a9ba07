"""The sweep's plan (poolvae.sweep_plan): epochs left per run, seconds estimated from runs already made or the
benchmark, and wall time on several workers, checked on run folders written here with known numbers."""

import dataclasses
import json

import pytest

from poolvae import convergence as C
from poolvae import sweep_plan as P
from poolvae.experiments import RunAction, _estimated_eta, sweep_plan_lines
from poolvae.train import checkpoint_file, make_config, run_path

ROWS = 256  # training rows the tests pretend every data set has


@pytest.fixture(autouse=True)
def _fake_rows(monkeypatch, tmp_path):
    """Every data set has ROWS training rows (ci PolyMNIST-mini: its first ROWS, as ``train_limit`` cuts it), and
    no convergence diagnostic exists."""
    monkeypatch.setattr(P, "_ROWS", {})
    monkeypatch.setattr(P, "load_data", lambda cfg, split: range(ROWS))
    monkeypatch.setattr(C, "ROOT", tmp_path / "diagnostic")
    monkeypatch.setattr(C, "CHECKPOINTS", tmp_path / "diagnostic-checkpoints")


def _cfg(method="helvae", beta=2.5, seed=0, **fields):
    """A ci-scale PolyMNIST-mini run (batch size 64: ROWS rows make 4 steps per epoch)."""
    return make_config("polymnist-mini", method, "ci", beta=beta, seed=seed, **fields)


def _run(runs, cfg, seconds=(), finished=False, evaluation_seconds=None):
    """A run folder with ``config.json`` and one epoch per entry of ``seconds`` (and an evaluation's time)."""
    d = runs / run_path(cfg)
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    epochs = [{"epoch": i, "seconds": s} for i, s in enumerate(seconds, 1)]
    (d / "metrics.json").write_text(json.dumps({"epochs": epochs, "finished": finished}))
    if evaluation_seconds is not None:
        (d / "evaluation.json").write_text(json.dumps({"seconds": {"total": evaluation_seconds}}))
    return d


def test_steps_per_epoch_counts_a_short_last_batch():
    assert P.steps_per_epoch(_cfg()) == 4  # 256 / 64
    assert P.steps_per_epoch(_cfg(batch_size=100)) == 3  # 100 + 100 + 56
    cpu = make_config("polymnist-mini", "helvae", "cpu")  # 16,000 tuples counted, not read: 500 batches of 32
    assert (cpu.tuples, cpu.batch_size, P.steps_per_epoch(cpu)) == (4, 32, 500)
    other = make_config("mnist-svhn-text-mini", "helvae", "ci", train_limit=0, batch_size=64)
    assert P.steps_per_epoch(other) == 4  # read (here: the ROWS rows the fixture gives every data set)


def test_epoch_seconds_are_the_median_epoch_of_runs_with_the_same_settings(tmp_path):
    runs = tmp_path / "runs"
    _run(runs, _cfg(beta=1.0), seconds=(10, 30))
    _run(runs, _cfg(beta=5.0, seed=1, epochs=7), seconds=(20,))  # beta, seed and epochs do not change a step
    _run(runs, _cfg(beta=10.0, width=4), seconds=(1000, 1000, 1000))  # other networks: not the same timing
    _run(runs, _cfg("mopoe", beta=1.0), seconds=(1000,))  # another method
    assert P.measured_epoch_seconds(_cfg(seed=2), runs) == 20
    assert P.measured_epoch_seconds(_cfg("mvae"), runs) is None


def test_the_benchmark_stands_in_only_for_the_same_networks_and_batch(tmp_path):
    cfg = _cfg()
    timed = {k: getattr(cfg, k) for k in ("arch", "width", "latent_dim", "private_dim", "batch_size", "K")}
    bench = {"settings": {"ci": {"dataset": "polymnist-mini", "methods": {"helvae": {"config": timed,
                                                                                      "step_seconds": 0.25}}}}}
    (tmp_path / "train-cpu.json").write_text(json.dumps(bench))
    assert P.bench_step_seconds(cfg, tmp_path) == 0.25
    assert P.bench_step_seconds(_cfg(width=cfg.width * 2), tmp_path) is None
    assert P.bench_step_seconds(_cfg("mopoe"), tmp_path) is None
    assert P.bench_step_seconds(cfg, tmp_path / "absent") is None
    plan = P.plan_run(cfg, tmp_path / "runs", tmp_path / "checkpoints", bench_dir=tmp_path)
    assert plan.source == "bench x1.00" and plan.train_seconds == pytest.approx(cfg.epochs * 4 * 0.25)


def test_benchmark_estimates_are_scaled_by_how_much_longer_the_runs_made_took(tmp_path):
    runs = tmp_path / "runs"
    cfgs = [_cfg(m) for m in ("helvae", "mopoe", "mvae", "mmvae")]
    timed = {c.method: {"config": {k: getattr(c, k) for k in ("arch", "width", "latent_dim", "private_dim",
                                                                "batch_size", "K")}, "step_seconds": 1.0}
             for c in cfgs}
    (tmp_path / "train-cpu.json").write_text(json.dumps({"settings": {"ci": {"dataset": "polymnist-mini",
                                                                              "methods": timed}}}))
    _run(runs, _cfg("helvae", beta=1.0), seconds=(8, 8))  # bench: 4 steps of 1 s; made: 8 s, 2x
    _run(runs, _cfg("helvae", beta=5.0), seconds=(8,))  # the same method and settings count once
    _run(runs, _cfg("mopoe", beta=1.0), seconds=(12,))  # 3x
    _run(runs, _cfg("mvae", beta=1.0), seconds=(16,))  # 4x
    assert P.bench_factor(cfgs, runs, tmp_path) == 3.0  # the median of 2, 3 and 4
    assert P.bench_factor(cfgs, tmp_path / "none", tmp_path) == 1.0
    mmvae = next(p for p in P.plan(cfgs, runs, tmp_path / "ck", bench_dir=tmp_path) if p.cfg.method == "mmvae")
    assert mmvae.source == "bench x3.00" and mmvae.train_seconds == pytest.approx(mmvae.cfg.epochs * 4 * 1.0 * 3.0)


def test_a_new_a_resumed_and_a_finished_run(tmp_path):
    runs, checkpoints = tmp_path / "runs", tmp_path / "checkpoints"
    _run(runs, _cfg(beta=1.0), seconds=(8, 8), finished=True, evaluation_seconds=30.0)  # timing: 2 s per step
    new = P.plan_run(_cfg(beta=5.0, epochs=3), runs, checkpoints, bench_dir=tmp_path)
    assert (new.state, new.epochs_left, new.evaluates) == (RunAction.TRAIN, 3, True)
    assert new.source == "measured" and new.seconds == pytest.approx(3 * 4 * 2.0 + 30.0)

    half = _cfg(beta=10.0, epochs=3)
    _run(runs, half, seconds=(8,))
    checkpoint_file(half, checkpoints).parent.mkdir(parents=True)
    checkpoint_file(half, checkpoints).touch()
    resumed = P.plan_run(half, runs, checkpoints, bench_dir=tmp_path)
    assert resumed.state is RunAction.RESUME and resumed.epochs_left == 2
    assert resumed.seconds == pytest.approx(2 * 4 * 2.0 + 30.0)

    trained = _run(runs, _cfg(beta=0.3), seconds=(8, 8), finished=True)
    done = P.plan_run(_cfg(beta=0.3), runs, checkpoints, bench_dir=tmp_path)
    assert (done.state, done.epochs_left, done.source, done.seconds) == (RunAction.EVALUATE, 0, "-", 30.0)
    assert P.plan_run(_cfg(beta=0.3), runs, checkpoints, evaluate=False, bench_dir=tmp_path).busy is False
    (trained / "evaluation.json").write_text("{}")  # made with other settings, and no checkpoint to redo it: stale
    kept = P.plan_run(_cfg(beta=0.3), runs, checkpoints, bench_dir=tmp_path)
    assert kept.state is RunAction.KEEP and not kept.busy
    again = P.plan_run(_cfg(beta=0.3), runs, checkpoints, retrain_stale=True, bench_dir=tmp_path)
    assert again.state is RunAction.RETRAIN and again.epochs_left == 2
    assert again.seconds == pytest.approx(2 * 4 * 2.0 + 30.0)


def test_a_run_the_diagnostic_trained_has_only_the_epochs_after_its_snapshot_left(tmp_path):
    cfg = _cfg(epochs=5)
    results, checkpoints = C.roots(cfg.tuples)
    _run(results / "runs", dataclasses.replace(cfg, epochs=9))  # the diagnostic: the same run, trained longer
    for epoch in (2, 3, 7):
        C.snapshot_file(cfg, checkpoints, epoch).parent.mkdir(parents=True, exist_ok=True)
        C.snapshot_file(cfg, checkpoints, epoch).touch()
    plan = P.plan_run(cfg, tmp_path / "runs", tmp_path / "checkpoints", bench_dir=tmp_path)
    assert plan.epochs_left == 5 - 3 and plan.source == "none" and plan.seconds is None


def test_wall_time_gives_each_run_to_the_first_free_worker():
    assert P.wall_seconds([3, 1, 1, 1], 2) == 3
    assert P.wall_seconds([1, 1, 1], 2) == 2
    assert P.wall_seconds([1, 1, 1], 1) == 3
    assert P.wall_seconds([], 2) == 0


def test_the_plan_in_words_counts_runs_without_an_estimate(tmp_path):
    runs = tmp_path / "runs"
    done = _cfg("mopoe", beta=1.0)
    _run(runs, done, seconds=(4000, 4000), finished=True, evaluation_seconds=20.0)
    checkpoint_file(done, tmp_path / "ck").parent.mkdir(parents=True)
    checkpoint_file(done, tmp_path / "ck").touch()  # its evaluation can be checked: not stale
    lines = sweep_plan_lines(("hel-table8",), "ci", jobs=2, results_dir=tmp_path, checkpoint_dir=tmp_path / "ck")
    assert lines[0] == "28 runs: 1 done or kept, 27 to train or evaluate"
    mopoe = [x for x in lines if "/mopoe/" in x]
    assert len(mopoe) == 3 and all("2 of 2 epochs to train" in x and "(measured)" in x for x in mopoe)
    total = next(x for x in lines if x.startswith("about"))
    each = 2 * 4 * 1000.0 + 20.0  # 2 epochs of 4 steps of 1,000 s, then 20 s of evaluation
    assert total == f"about {3 * each / 3600:.1f} core hours; about 4 h 27 min on 2 workers"  # 2 x 8,020 s
    assert "24 runs have no estimate" in lines[-1]


def test_the_eta_of_runs_side_by_side():
    assert _estimated_eta({}, 2) == ""
    assert _estimated_eta({"a": 3600.0, "b": 1800.0, "c": 1800.0}, 2) == "; ETA 1 h 00 min"
    assert _estimated_eta({"a": 90.0, "b": None}, 1) == "; ETA 1 min 30 s and 1 runs without an estimate"


def _checkpoint(path, cfg, epoch):
    """A checkpoint of ``cfg`` after ``epoch`` epochs, with a tensor beside its bookkeeping."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "step": 0, "config": dataclasses.asdict(cfg), "model": {"w": torch.ones(64, 64)}},
               path)


def test_a_stale_run_whose_epochs_grew_trains_only_the_new_epochs(tmp_path):
    runs, checkpoints = tmp_path / "runs", tmp_path / "checkpoints"
    short, longer = _cfg(epochs=2), _cfg(epochs=5)
    _run(runs, short, seconds=(8, 8), finished=True, evaluation_seconds=30.0)
    _checkpoint(checkpoint_file(longer, checkpoints), short, epoch=2)
    kept = P.plan_run(longer, runs, checkpoints, bench_dir=tmp_path)
    assert (kept.state, kept.epochs_left, kept.busy) == (RunAction.KEEP, 0, False)
    extended = P.plan_run(longer, runs, checkpoints, retrain_stale=True, bench_dir=tmp_path)
    assert (extended.state, extended.epochs_left, extended.evaluates) == (RunAction.EXTEND, 3, True)
    assert extended.seconds == pytest.approx(3 * 4 * 2.0 + 30.0)


def test_a_resumed_run_without_metrics_counts_the_epochs_in_its_checkpoint(tmp_path):
    cfg = _cfg(epochs=6)
    _checkpoint(checkpoint_file(cfg, tmp_path / "ck"), cfg, epoch=4)
    resumed = P.plan_run(cfg, tmp_path / "runs", tmp_path / "ck", bench_dir=tmp_path)
    assert (resumed.state, resumed.epochs_left) == (RunAction.RESUME, 2)


def test_the_plan_reads_each_methods_run_files_once(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    _run(runs, _cfg(beta=1.0), seconds=(8,), finished=True, evaluation_seconds=30.0)
    reads = []
    for name in ("measured_epoch_seconds", "measured_evaluation_seconds"):
        real = getattr(P, name)
        monkeypatch.setattr(P, name, lambda c, d, real=real, name=name: reads.append((name, c.method)) or real(c, d))
    cfgs = [_cfg(m, beta=b, seed=s) for m in ("helvae", "mopoe") for b in (2.5, 5.0) for s in (0, 1, 2)]
    plans = P.plan(cfgs, runs, tmp_path / "ck", bench_dir=tmp_path)
    assert sorted(reads) == [("measured_epoch_seconds", "helvae"), ("measured_epoch_seconds", "mopoe"),
                             ("measured_evaluation_seconds", "helvae"), ("measured_evaluation_seconds", "mopoe")]
    helvae = [p for p in plans if p.cfg.method == "helvae"]
    assert all(p.seconds == pytest.approx(p.cfg.epochs * 8.0 + 30.0) for p in helvae)


def test_an_unreadable_checkpoint_costs_the_eta_not_the_sweep(tmp_path, capsys):
    from poolvae.experiments import _estimates

    cfg = _cfg(epochs=3)
    checkpoint_file(cfg, tmp_path / "ck").parent.mkdir(parents=True)
    checkpoint_file(cfg, tmp_path / "ck").write_bytes(b"not a checkpoint")  # resumed from it: its epoch is asked
    assert _estimates([cfg], tmp_path / "runs", tmp_path / "ck", False, True) == {run_path(cfg): None}
    assert "no ETA: the plan could not be made (RuntimeError" in capsys.readouterr().out
    _checkpoint(checkpoint_file(cfg, tmp_path / "ck"), cfg, epoch=1)
    whole = checkpoint_file(cfg, tmp_path / "ck").read_bytes()
    checkpoint_file(cfg, tmp_path / "ck").write_bytes(whole[: len(whole) // 2])  # cut off mid-write
    assert _estimates([cfg], tmp_path / "runs", tmp_path / "ck", False, True) == {run_path(cfg): None}
    assert "no ETA: the plan could not be made" in capsys.readouterr().out
