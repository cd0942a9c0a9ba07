"""Calibrate the cpu budget by measurement: train long, evaluate every few epochs, apply a stated rule.

    python -m poolvae.convergence train --jobs 2        # resumable; hours on two cores
    python -m poolvae.convergence summary               # curves + the rule's budget
    python -m poolvae.convergence train --tuples 1      # the same on the 4,000 tuples (the first diagnostic)

Each PolyMNIST method of HEL Table 8 trains at beta 2.5, seed 0, on PolyMNIST-mini with the cpu scale's settings
except ``epochs`` (300 by default), into ``results/diagnostics/convergence/runs/...`` (checkpoints under
``checkpoints/diagnostics/convergence/``). After every ``every`` epochs its checkpoint is evaluated with the cpu
protocol's coherence and latent sections into ``evaluation-epoch=<e>.json`` beside the run (the log-likelihood and
the quality sections are left out: they cost most of an evaluation and the rule is about coherence); the held-out
objective of every epoch is ``metrics.json``'s ``test_objective``. A run resumes where it stopped and an epoch
that has its evaluation file is not evaluated again. A run stops early once its curve has plateaued
(:func:`plateaued`).

The rule (:func:`calibrated_budget`): the smallest evaluated epoch E at which every method's conditional
coherence is within ``tol`` (0.02) of the best it reaches in the whole diagnostic, and the methods' ranking by
conditional coherence is the same at E as at every later evaluated epoch, where two methods within ``tie`` (0.01)
of each other count as tied (a single run's conditional coherence has a 95% test-point interval of about
+-0.0035, results/hel-table8.json, and seeds differ by more: the paper's standard deviations over seeds at beta 2.5
are 0.004 to 0.053); at least one later evaluation must confirm E. The best is the best within the diagnostic's
length: a curve still rising slowly at its end sets the budget where it came within ``tol`` of its last value, and
one that rises by more than ``tol`` in its last step gives no budget. ``summary`` writes
``results/diagnostics/convergence/summary.json`` (``.../tuples=<R>/`` for R training tuples per digit) with the
curves, the rule, its inputs and the budget it gives.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from .artefacts import RESULTS_DIR, provenance, read_json, repo_relative, write_json
from .train import (
    CHECKPOINT_DIR,
    METHOD_AT_SCALE,
    TrainConfig,
    checkpoint_file,
    checkpoint_header,
    config_differences,
    in_worker,
    make_config,
    run_path,
    stored_config,
    train,
)

ROOT = RESULTS_DIR / "diagnostics" / "convergence"
CHECKPOINTS = CHECKPOINT_DIR / "diagnostics" / "convergence"
METHODS = ("mvae", "mmvae", "mopoe", "mmvaeplus", "mwbvae", "helvae", "codevae")
SECTIONS = "coherence,latent"
TOL = 0.02  # a method is converged within TOL of its best conditional coherence
EQUIVALENT_EPOCHS = 300  # the diagnostic's length, in epochs of the 4,000-tuple PolyMNIST-mini (125 steps each)
EVERY_EQUIVALENT = 20  # evaluated every 20 such epochs (2,500 steps)
TIE = 0.01  # methods closer than this in conditional coherence are tied for the ranking (a seed's noise)
PLATEAU_PATIENCE = 3  # evaluations without a gain of more than TOL / 2 that count as a plateau


def default_tuples(scale: str = "cpu") -> int:
    """The training tuples per digit of PolyMNIST-mini at ``scale`` (what the diagnostic calibrates by default)."""
    return make_config("polymnist-mini", "helvae", scale).tuples


def span(tuples: int | None = None) -> tuple[int, int]:
    """(epochs, every) of the diagnostic on ``tuples`` x the 4,000 training tuples: up to 300 epochs' worth of steps
    of the 4,000-tuple set, evaluated every 20 epochs' worth (300 and 20 epochs of it; 75 and 5 with 4x tuples)."""
    tuples = tuples or default_tuples()
    return EQUIVALENT_EPOCHS // tuples, EVERY_EQUIVALENT // tuples


def config(method: str, epochs: int | None = None, beta: float = 2.5, seed: int = 0, dataset: str = "polymnist-mini",
           scale: str = "cpu", tuples: int | None = None) -> TrainConfig:
    """The diagnostic run of ``method``: the scale's settings with ``epochs`` epochs (default :func:`span`'s) of
    ``tuples`` x the training tuples (default the scale's); a method's own budget (``METHOD_AT_SCALE``) is lifted."""
    tuples = tuples or default_tuples(scale)
    return make_config(dataset, method, scale, beta=beta, seed=seed, epochs=epochs or span(tuples)[0], tuples=tuples)


def roots(tuples: int = 1) -> tuple[Path, Path]:
    """(results, checkpoints) folders of the diagnostic on PolyMNIST-mini with ``tuples`` training tuples per digit:
    the main diagnostic for 1, ``.../tuples=<R>`` beside it otherwise (the same run paths, other data)."""
    if tuples == 1:
        return ROOT, CHECKPOINTS
    return ROOT / f"tuples={tuples}", CHECKPOINTS / f"tuples={tuples}"


def epoch_file(run_dir: Path, epoch: int) -> Path:
    """Where the evaluation after ``epoch`` epochs lives."""
    return Path(run_dir) / f"evaluation-epoch={epoch:03d}.json"


def read_point(run_dir: Path, epoch: int, tuples: int = 1) -> dict | None:
    """Conditional and unconditional coherence, mean latent accuracy and held-out objective after ``epoch``
    epochs, or None when that epoch has no evaluation yet. ``equivalent_epoch`` is ``epoch`` x ``tuples``: the epochs
    of the 4,000-tuple set with as many optimiser steps (runs on more tuples compare with the main ones by it)."""
    f = epoch_file(run_dir, epoch)
    if not f.exists():
        return None
    m = read_json(f)["metrics"]
    history = {e["epoch"]: e for e in read_json(Path(run_dir) / "metrics.json")["epochs"]}
    latent = m["latent"]["per_subset"]
    return {"epoch": epoch, "equivalent_epoch": epoch * tuples,
            "conditional_coherence": m["coherence"]["conditional"]["overall"],
            "unconditional_coherence": m["coherence"]["unconditional"],
            "latent_accuracy": sum(latent.values()) / len(latent),
            "test_objective": history[epoch]["test_objective"]}


def plateaued(points: list[dict], tol: float = TOL, patience: int = PLATEAU_PATIENCE) -> bool:
    """Whether the last ``patience`` evaluations raised the best conditional coherence by at most ``tol / 2`` and
    the held-out objective is past its peak (the run can stop: more epochs would not change its place)."""
    if len(points) <= patience:
        return False
    coherence = [p["conditional_coherence"] for p in points]
    before = max(coherence[:-patience])
    objective = [p["test_objective"] for p in points]
    return max(coherence[-patience:]) <= before + tol / 2 and objective.index(max(objective)) < len(objective) - 1


def run_method(method: str, epochs: int, every: int, results: Path | None = None, checkpoints: Path | None = None,
               threads: int = 1, stop_on_plateau: bool = True, scale: str = "cpu", tuples: int | None = None) -> Path:
    """Train ``method``'s diagnostic run, evaluating it every ``every`` epochs; return its run folder
    (``scale="ci"`` for the tests: the ci data set and settings). ``results`` / ``checkpoints`` default to
    :func:`roots` of ``tuples``."""
    from .evaluate import evaluate_run

    if threads:
        torch.set_num_threads(threads)
    tuples = tuples or default_tuples(scale)
    results, checkpoints = results or roots(tuples)[0], checkpoints or roots(tuples)[1]
    cfg = config(method, epochs, scale=scale, tuples=tuples)
    run_dir = Path(results) / "runs" / run_path(cfg)
    points = []
    for e in range(every, epochs + 1, every):
        if not epoch_file(run_dir, e).exists():
            train(cfg, Path(results) / "runs", checkpoints, progress=False, until_epoch=e, extend=True)
            evaluate_run(run_dir, overrides={"sections": SECTIONS}, checkpoint_dir=checkpoints, progress=False,
                         allow_unfinished=True, out_name=epoch_file(run_dir, e).name, samples=False)
            print(f"{method}: epoch {e} evaluated", flush=True)
        keep_snapshot(cfg, checkpoints, e)
        points.append(read_point(run_dir, e, tuples))
        if stop_on_plateau and plateaued(points):
            print(f"{method}: plateaued at epoch {e}", flush=True)
            write_json(run_dir / "plateau.json", {"epoch": e, "rule": plateaued.__doc__.split("(")[0].strip()})
            break
    return run_dir


def snapshot_file(cfg: TrainConfig, checkpoints: Path, epoch: int) -> Path:
    """Where the diagnostic keeps run ``cfg``'s checkpoint after ``epoch`` epochs (beside its ``last.pt``)."""
    return checkpoint_file(cfg, checkpoints).with_name(f"epoch={epoch:03d}.pt")


def keep_snapshot(cfg: TrainConfig, checkpoints: Path, epoch: int) -> None:
    """Copy the run's checkpoint after ``epoch`` epochs to :func:`snapshot_file` (once), so that a run of the
    calibrated budget can start from it (:func:`seed_run`) instead of training the same steps again."""
    import shutil

    last, snap = checkpoint_file(cfg, checkpoints), snapshot_file(cfg, checkpoints, epoch)
    if snap.exists() or not last.exists():
        return
    if checkpoint_header(last)["epoch"] == epoch:
        tmp = snap.with_suffix(".tmp")
        shutil.copyfile(last, tmp)
        tmp.replace(snap)


def diagnostic_run(cfg: TrainConfig) -> tuple[Path, Path] | None:
    """(run folder, checkpoints root) of the convergence diagnostic run that is run ``cfg`` but for its number of
    epochs (same method, beta, seed and every other setting), or None: the diagnostic trains the same trajectory,
    so its checkpoint after ``cfg.epochs`` epochs is ``cfg``'s finished run."""
    results, checkpoints = roots(cfg.tuples)
    run_dir = results / "runs" / run_path(cfg)
    if not (run_dir / "config.json").exists():
        return None
    diff = config_differences(stored_config(read_json(run_dir / "config.json")), cfg)
    return (run_dir, checkpoints) if set(diff) <= {"epochs"} else None


def covered(cfg: TrainConfig) -> bool:
    """Whether the convergence diagnostic on ``cfg``'s data trains run ``cfg`` (but for its epochs): a diagnostic on
    those tuples is under way (its folder exists) and ``cfg`` is its run of that method (beta 2.5, seed 0, the same
    settings). :func:`seed_run` can then make ``cfg`` from its snapshot once it has passed ``cfg.epochs``."""
    if not (roots(cfg.tuples)[0] / "runs").exists():
        return False
    if cfg.method not in METHODS or cfg.method in own_budget_methods(cfg.scale):
        return False
    diff = config_differences(config(cfg.method, tuples=cfg.tuples, scale=cfg.scale), cfg)
    return set(diff) <= {"epochs"}


def latest_snapshot(cfg: TrainConfig, checkpoints: Path) -> int | None:
    """The most epochs, at most ``cfg.epochs``, after which the diagnostic kept a snapshot of run ``cfg``
    (:func:`keep_snapshot`), or None when it kept none."""
    return next((e for e in range(cfg.epochs, 0, -1) if snapshot_file(cfg, checkpoints, e).exists()), None)


def curve_complete(run_dir: Path) -> bool:
    """Whether the diagnostic run in ``run_dir`` is done training: stopped on a plateau (``plateau.json``, written
    by :func:`run_method`) or finished its span (``metrics.json``'s ``finished``)."""
    metrics = Path(run_dir) / "metrics.json"
    return (Path(run_dir) / "plateau.json").exists() or (metrics.exists() and bool(read_json(metrics).get("finished")))


def diagnostic_complete(cfg: TrainConfig) -> bool:
    """Whether the diagnostic run that is run ``cfg`` but for its epochs (:func:`diagnostic_run`) is done training
    (:func:`curve_complete`). Its snapshots are then all it will keep."""
    found = diagnostic_run(cfg)
    return found is not None and curve_complete(found[0])


def seed_run(cfg: TrainConfig, runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR) -> int:
    """Start run ``cfg`` (absent from ``runs_dir``) from the diagnostic's latest snapshot after at most
    ``cfg.epochs`` epochs (:func:`latest_snapshot`), since the diagnostic trains the run's own trajectory
    (:func:`diagnostic_run`). Its checkpoint becomes the run's ``last.pt`` (with the run's config). After exactly
    ``cfg.epochs`` epochs the run is finished: its history up to then becomes the run's ``metrics.json`` and
    evaluation is the caller's, as for any finished run. After fewer (a diagnostic that stopped on a plateau before
    the calibrated budget) the run is one interrupted after that epoch, and :func:`poolvae.train.train` resumes it
    for the remaining epochs. Either way ``seeded.json`` beside the run says from which snapshot. Returns the
    epochs seeded, 0 when the diagnostic has no snapshot of the run."""
    found = diagnostic_run(cfg)
    if found is None:
        return 0
    diag_dir, checkpoints = found
    epoch = latest_snapshot(cfg, checkpoints)
    if epoch is None:
        return 0
    snap = snapshot_file(cfg, checkpoints, epoch)
    state = torch.load(snap, map_location="cpu", weights_only=False)
    state["config"] = dataclasses.asdict(cfg)
    run_dir, ckpt = Path(runs_dir) / run_path(cfg), checkpoint_file(cfg, checkpoint_dir)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(ckpt)
    write_json(run_dir / "seeded.json", {"from_convergence_diagnostic": repo_relative(snap), "epoch": epoch,
                                         "epochs": cfg.epochs})
    if epoch == cfg.epochs:
        history = [e for e in read_json(diag_dir / "metrics.json")["epochs"] if e["epoch"] <= cfg.epochs]
        write_json(run_dir / "config.json", dataclasses.asdict(cfg))
        write_json(run_dir / "environment.json", {**read_json(diag_dir / "environment.json"),
                                                  "from_convergence_diagnostic": repo_relative(snap)})
        write_json(run_dir / "metrics.json", {"finished": True, "epochs": history, "final": history[-1]})
    print(f"seed {run_path(cfg)} from the convergence diagnostic's epoch {epoch}"
          + ("" if epoch == cfg.epochs else f"; {cfg.epochs - epoch} epochs to train"), flush=True)
    return epoch


def curves(results: Path | None = None, methods=METHODS, epochs: int | None = None, every: int | None = None,
           tuples: int | None = None) -> dict[str, list[dict]]:
    """Every method's evaluated points, in epoch order (defaults: :func:`roots` and :func:`span` of ``tuples``)."""
    tuples = tuples or default_tuples()
    results = results or roots(tuples)[0]
    epochs, every = epochs or span(tuples)[0], every or span(tuples)[1]
    out = {}
    for method in methods:
        run_dir = Path(results) / "runs" / run_path(config(method, epochs, tuples=tuples))
        pts = [p for e in range(every, epochs + 1, every) if (p := read_point(run_dir, e, tuples)) is not None]
        if pts:
            out[method] = pts
    return out


def chart(points: dict[str, list[dict]], pool_log: list[dict] | None = None):
    """Conditional coherence, latent accuracy and held-out objective by epoch, one line per method (seaborn);
    with ``pool_log`` (HELVAE's per-epoch ``metrics.json`` entries) a fourth panel shows its pool diagnostics."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from .palette import color

    df = pd.DataFrame([{**p, "method": m} for m, pts in points.items() for p in pts])
    panels = [("conditional_coherence", "conditional coherence"), ("latent_accuracy", "latent accuracy (mean)"),
              ("test_objective", "held-out objective")]
    fig, axes = plt.subplots(1, len(panels) + (pool_log is not None), figsize=(3.4 * (len(panels) + 1), 3.0))
    palette = {m: color(m) for m in points}
    for ax, (key, label) in zip(axes, panels, strict=False):
        sns.lineplot(data=df, x="epoch", y=key, hue="method", palette=palette, marker="o", ax=ax,
                     legend=ax is axes[0])
        ax.set(ylabel=label)
    if axes[0].get_legend():
        sns.move_legend(axes[0], "best", fontsize=7, title=None)
    if pool_log is not None:
        ax = axes[-1]
        epochs = [e["epoch"] for e in pool_log]
        ax.plot(epochs, [e["pool/disagreement_share"] for e in pool_log], label="disagreement share", color="k")
        ax.plot(epochs, [e["pool/pair_share"] for e in pool_log], label="pair share", color="0.5", ls="--")
        ax.set(xlabel="epoch", ylabel="share", ylim=(-0.02, 1.02), title="HELVAE's pool")
        ax2 = ax.twinx()
        ax2.semilogy(epochs, [e["pool/expert_var_mean"] for e in pool_log], color=color("helvae"), lw=1)
        ax2.set_ylabel("mean expert variance", color=color("helvae"))
        ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def tuples_chart(comparison: dict):
    """Conditional coherence and held-out objective at equal optimiser steps, on the 4,000 tuples (dashed) and on
    ``comparison["tuples"]`` x as many (solid), one colour per method (:func:`tuples_comparison`'s output)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from .palette import color

    more = f"{comparison['tuples'] * 4000:,} tuples"
    rows = [{"method": m, "tuples": label, "equivalent epoch": r["equivalent_epoch"], **r[key]}
            for m, c in comparison["methods"].items() for r in c["matched"]
            for key, label in (("base", "4,000 tuples"), ("more", more))]
    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.2))
    palette = {m: color(m) for m in comparison["methods"]}
    for ax, (key, label) in zip(axes, (("conditional_coherence", "conditional coherence"),
                                       ("test_objective", "held-out objective")), strict=True):
        sns.lineplot(data=df, x="equivalent epoch", y=key, hue="method", style="tuples", palette=palette,
                     style_order=[more, "4,000 tuples"], marker="o", ax=ax, legend=ax is axes[0])
        ax.set(ylabel=label, xlabel="epochs of 4,000 tuples (equal steps)")
    sns.move_legend(axes[0], "lower right", fontsize=7, title=None)
    fig.tight_layout()
    return fig


def _ranking(values: dict[str, float]) -> tuple[str, ...]:
    return tuple(sorted(values, key=lambda m: -values[m]))


def calibrated_budget(points: dict[str, list[dict]], tol: float = TOL, tie: float = TIE) -> dict:
    """The rule of the module docstring over ``points`` (method -> evaluated points); a method whose curve stops
    early (plateau) keeps its last value at later epochs. Returns the budget (or None) and why."""
    if not points:
        return {"epochs": None, "why": "no evaluated points yet"}
    grid = sorted({p["epoch"] for pts in points.values() for p in pts})

    def value(method: str, epoch: int) -> float:
        known = [p for p in points[method] if p["epoch"] <= epoch]
        return known[-1]["conditional_coherence"] if known else -math.inf

    best = {m: max(p["conditional_coherence"] for p in pts) for m, pts in points.items()}
    values = {e: {m: value(m, e) for m in points} for e in grid}

    def same_order(a: dict[str, float], b: dict[str, float]) -> bool:
        """No pair of methods more than ``tie`` apart at both epochs is in the opposite order at the second."""
        return not any(a[m] - a[n] > tie and b[n] - b[m] > tie for m in a for n in a)

    for i, e in enumerate(grid[:-1]):  # the last epoch has no later evaluation to confirm it
        close = all(values[e][m] >= best[m] - tol for m in points)
        stable = all(same_order(values[e], values[later]) for later in grid[i:])
        if close and stable:
            return {"epochs": e, "why": f"every method within {tol} of its best conditional coherence and the "
                    f"ranking {list(_ranking(values[e]))} unchanged from epoch {e} to {grid[-1]} (pairs within "
                    f"{tie} of each other count as tied)"}
    return {"epochs": None, "why": f"no evaluated epoch up to {grid[-1]} meets the rule: train longer"}


def early_stopping(points: dict[str, list[dict]], results: Path, epochs: int, tuples: int) -> dict:
    """What early stopping on the held-out objective would keep: per method, the epoch at which that objective
    peaked and the conditional coherence of the evaluated epoch nearest to it (evaluations are every ``every``
    epochs; ties to the later one), beside the best coherence of the whole curve."""
    out = {}
    for m, pts in points.items():
        peak = _objective_peak(Path(results) / "runs" / run_path(config(m, epochs, tuples=tuples)), tuples)
        near = min(pts, key=lambda p: (abs(p["epoch"] - peak["epoch"]), -p["epoch"]))
        best = max(pts, key=lambda p: p["conditional_coherence"])
        out[m] = {"objective_peak_epoch": peak["epoch"], "evaluated_epoch": near["epoch"],
                  "conditional_coherence": near["conditional_coherence"],
                  "best_conditional_coherence": best["conditional_coherence"], "best_epoch": best["epoch"]}
    return out


def own_budget_methods(scale: str = "cpu") -> list[str]:
    """Methods trained to a budget of their own at ``scale`` (``METHOD_AT_SCALE``): the calibration need not wait
    for them (CoDEVAE at cpu)."""
    return [m for m in METHODS if ("polymnist", m, scale) in METHOD_AT_SCALE]


def unfinished(results: Path, points: dict[str, list[dict]], epochs: int, tuples: int) -> list[str]:
    """The methods of ``points`` whose diagnostic run is still training (not :func:`curve_complete`). A budget
    computed while one is still training is provisional: its later points can move the best it is compared with."""
    return [m for m in points
            if not curve_complete(Path(results) / "runs" / run_path(config(m, epochs, tuples=tuples)))]


def summary(tuples: int | None = None, epochs: int | None = None, every: int | None = None) -> dict:
    """Curves, the calibrated budget and what early stopping would keep, on ``tuples`` x the training tuples ->
    ``<roots(tuples)[0]>/summary.json``. ``final`` once every method without a budget of its own has a complete
    curve (``missing``: no points yet; ``unfinished``: still training, :func:`unfinished`)."""
    tuples = tuples or default_tuples()
    results = roots(tuples)[0]
    epochs, every = epochs or span(tuples)[0], every or span(tuples)[1]
    pts = curves(results, METHODS, epochs, every, tuples)
    budget = calibrated_budget(pts)
    budget["equivalent_epochs"] = budget["epochs"] * tuples if budget["epochs"] else None
    out = {"item": "convergence", "scale": "cpu", "dataset": "polymnist-mini", "tuples": tuples, "beta": 2.5,
           "seed": 0, "epochs_max": epochs, "every": every, "tol": TOL,
           "rule": calibrated_budget.__doc__.split("Returns")[0], "curves": pts, "budget": budget,
           "early_stopping": early_stopping(pts, results, epochs, tuples),
           "missing": [m for m in METHODS if m not in pts], "unfinished": unfinished(results, pts, epochs, tuples),
           "own_budget": own_budget_methods(), "provenance": provenance(scale="cpu")}
    # a budget from some methods, or from curves still training, is provisional
    out["final"] = not set(out["missing"] + out["unfinished"]) - set(out["own_budget"])
    write_json(results / "summary.json", out)
    return out


def _objective_peak(run_dir: Path, tuples: int = 1) -> dict:
    """The epoch (and its equivalent on the 4,000-tuple set) at which the held-out objective was highest."""
    history = read_json(Path(run_dir) / "metrics.json")["epochs"]
    top = max(history, key=lambda e: e["test_objective"])
    return {"epoch": top["epoch"], "equivalent_epoch": top["epoch"] * tuples,
            "test_objective": top["test_objective"], "last_equivalent_epoch": history[-1]["epoch"] * tuples,
            "last_test_objective": history[-1]["test_objective"]}


def tuples_comparison(tuples: int, methods=METHODS) -> dict:
    """The diagnostic on ``tuples`` x the training tuples against the one on the 4,000 tuples, at equal optimiser
    steps (``equivalent_epoch``): per method, both curves' conditional coherence, latent accuracy and held-out
    objective at every equivalent epoch both evaluated, and where each held-out objective peaked (the test split is
    the same). Writes ``<roots(tuples)[0]>/comparison.json``."""
    results = roots(tuples)[0]
    more = curves(results, methods, tuples=tuples)
    base = curves(ROOT, methods, tuples=1)
    out = {"item": "convergence-tuples", "tuples": tuples, "methods": {}}
    for m, pts in more.items():
        if m not in base:
            continue
        by_epoch = {p["epoch"]: p for p in base[m]}
        out["methods"][m] = {
            "matched": [{"equivalent_epoch": p["equivalent_epoch"], "more": p, "base": by_epoch[p["equivalent_epoch"]]}
                        for p in pts if p["equivalent_epoch"] in by_epoch],
            "objective_peak": {"more": _objective_peak(results / "runs" / run_path(config(m, tuples=tuples)), tuples),
                               "base": _objective_peak(ROOT / "runs" / run_path(config(m, tuples=1)))}}
    out["provenance"] = provenance(scale="cpu")
    write_json(results / "comparison.json", out)
    return out


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="Convergence diagnostic that calibrates the cpu budget.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and evaluate every method's diagnostic run (resumable)")
    t.add_argument("--methods", nargs="+", default=[m for m in METHODS if m not in own_budget_methods()],
                   choices=METHODS, metavar="METHOD", help="default: every method without a budget of its own")
    t.add_argument("--epochs", type=int, default=None, help="default: 300 epochs' worth of steps of 4,000 tuples")
    t.add_argument("--every", type=int, default=None, help="default: every 20 epochs' worth of steps of 4,000 tuples")
    t.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each")
    s = sub.add_parser("summary", help="write <results>/summary.json (and comparison.json with more tuples)")
    for q in (t, s):
        q.add_argument("--tuples", type=int, default=None,
                       help=f"training tuples per digit (default the cpu scale's, {default_tuples()}; R > 1 lives in "
                            "results/diagnostics/convergence/tuples=R)")
    a = p.parse_args(argv)
    if a.tuples is not None and a.tuples < 1:
        p.error(f"--tuples must be at least 1; got {a.tuples}")
    tuples = a.tuples or default_tuples()
    if a.command == "summary":
        out = summary(tuples)
        b = out["budget"]
        state = "" if out["final"] else " (provisional: not every method's curve is complete yet)"
        print(f"calibrated budget{state}: {b['epochs']} epochs of {tuples}x tuples ({b['why']})")
        if tuples > 1 and curves(ROOT, tuples=1):
            for m, c in tuples_comparison(tuples)["methods"].items():
                peak = c["objective_peak"]
                print(f"{m}: held-out objective peaks at equivalent epoch {peak['more']['equivalent_epoch']} with "
                      f"{tuples}x tuples, {peak['base']['equivalent_epoch']} without; coherence at equal steps: "
                      + ", ".join(f"{r['equivalent_epoch']}: {r['more']['conditional_coherence']:.3f} vs "
                                  f"{r['base']['conditional_coherence']:.3f}" for r in c["matched"]))
        return
    epochs, every = a.epochs or span(tuples)[0], a.every or span(tuples)[1]
    if every <= 0 or epochs < every:
        p.error(f"--every must be positive and at most --epochs; got --every {every} --epochs {epochs}")
    try:
        with ProcessPoolExecutor(max_workers=max(a.jobs, 1)) as pool:
            for f in [pool.submit(in_worker, run_method, m, epochs, every, tuples=tuples) for m in a.methods]:
                f.result()
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
