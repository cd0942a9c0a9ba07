"""Calibrate the cpu budget by measurement: train long, evaluate every few epochs, apply a stated rule.

    python -m poolvae.convergence train --epochs 300 --every 20 --jobs 2      # resumable; hours on two cores
    python -m poolvae.convergence summary                                      # curves + the rule's budget

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
conditional coherence is the same at E as at every later evaluated epoch; at least one later evaluation must
confirm E (a curve still rising at the last evaluation gives no budget). ``summary`` writes
``results/diagnostics/convergence/summary.json`` with the curves, the rule, its inputs and the budget it gives.
"""

from __future__ import annotations

import argparse
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from .artefacts import RESULTS_DIR, provenance, read_json, write_json
from .train import CHECKPOINT_DIR, TrainConfig, make_config, run_path, train

ROOT = RESULTS_DIR / "diagnostics" / "convergence"
CHECKPOINTS = CHECKPOINT_DIR / "diagnostics" / "convergence"
METHODS = ("mvae", "mmvae", "mopoe", "mmvaeplus", "mwbvae", "helvae", "codevae")
SECTIONS = "coherence,latent"
TOL = 0.02  # a method is converged within TOL of its best conditional coherence
PLATEAU_PATIENCE = 3  # evaluations without a gain of more than TOL / 2 that count as a plateau


def config(method: str, epochs: int = 300, beta: float = 2.5, seed: int = 0, dataset: str = "polymnist-mini",
           scale: str = "cpu", tuples: int = 1) -> TrainConfig:
    """The diagnostic run of ``method``: the scale's settings with ``epochs`` epochs (of ``tuples`` x the training
    tuples when ``tuples`` > 1)."""
    extra = {"tuples": tuples} if tuples != 1 else {}
    return make_config(dataset, method, scale, beta=beta, seed=seed, epochs=epochs, **extra)


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
               threads: int = 1, stop_on_plateau: bool = True, scale: str = "cpu", tuples: int = 1) -> Path:
    """Train ``method``'s diagnostic run, evaluating it every ``every`` epochs; return its run folder
    (``scale="ci"`` for the tests: the ci data set and settings). ``results`` / ``checkpoints`` default to
    :func:`roots` of ``tuples``."""
    from .evaluate import evaluate_run

    if threads:
        torch.set_num_threads(threads)
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
        points.append(read_point(run_dir, e, tuples))
        if stop_on_plateau and plateaued(points):
            print(f"{method}: plateaued at epoch {e}", flush=True)
            write_json(run_dir / "plateau.json", {"epoch": e, "rule": plateaued.__doc__.split("(")[0].strip()})
            break
    return run_dir


def curves(results: Path = ROOT, methods=METHODS, epochs: int = 300, every: int = 20,
           tuples: int = 1) -> dict[str, list[dict]]:
    """Every method's evaluated points, in epoch order."""
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


def _ranking(values: dict[str, float]) -> tuple[str, ...]:
    return tuple(sorted(values, key=lambda m: -values[m]))


def calibrated_budget(points: dict[str, list[dict]], tol: float = TOL) -> dict:
    """The rule of the module docstring over ``points`` (method -> evaluated points); a method whose curve stops
    early (plateau) keeps its last value at later epochs. Returns the budget (or None) and why."""
    if not points:
        return {"epochs": None, "why": "no evaluated points yet"}
    grid = sorted({p["epoch"] for pts in points.values() for p in pts})

    def value(method: str, epoch: int) -> float:
        known = [p for p in points[method] if p["epoch"] <= epoch]
        return known[-1]["conditional_coherence"] if known else -math.inf

    best = {m: max(p["conditional_coherence"] for p in pts) for m, pts in points.items()}
    rankings = {e: _ranking({m: value(m, e) for m in points}) for e in grid}
    for i, e in enumerate(grid[:-1]):  # the last epoch has no later evaluation to confirm it
        close = all(value(m, e) >= best[m] - tol for m in points)
        stable = all(rankings[later] == rankings[e] for later in grid[i:])
        if close and stable:
            return {"epochs": e, "why": f"every method within {tol} of its best conditional coherence and the "
                    f"ranking {list(rankings[e])} unchanged from epoch {e} to {grid[-1]}"}
    return {"epochs": None, "why": f"no evaluated epoch up to {grid[-1]} meets the rule: train longer"}


def early_stopping(points: dict[str, list[dict]], results: Path = ROOT, epochs: int = 300) -> dict:
    """What early stopping on the held-out objective would keep: per method, the epoch at which that objective
    peaked and the conditional coherence of the evaluated epoch nearest to it (evaluations are every ``every``
    epochs; ties to the later one), beside the best coherence of the whole curve."""
    out = {}
    for m, pts in points.items():
        peak = _objective_peak(Path(results) / "runs" / run_path(config(m, epochs)))
        near = min(pts, key=lambda p: (abs(p["epoch"] - peak["epoch"]), -p["epoch"]))
        best = max(pts, key=lambda p: p["conditional_coherence"])
        out[m] = {"objective_peak_epoch": peak["epoch"], "evaluated_epoch": near["epoch"],
                  "conditional_coherence": near["conditional_coherence"],
                  "best_conditional_coherence": best["conditional_coherence"], "best_epoch": best["epoch"]}
    return out


def summary(results: Path = ROOT, epochs: int = 300, every: int = 20) -> dict:
    """Curves, the calibrated budget and what early stopping would keep -> ``<results>/summary.json``."""
    pts = curves(results, METHODS, epochs, every)
    out = {"item": "convergence", "scale": "cpu", "dataset": "polymnist-mini", "beta": 2.5, "seed": 0,
           "epochs_max": epochs, "every": every, "tol": TOL, "rule": calibrated_budget.__doc__.split("Returns")[0],
           "curves": pts, "budget": calibrated_budget(pts), "early_stopping": early_stopping(pts, results, epochs),
           "missing": [m for m in METHODS if m not in pts], "provenance": provenance(scale="cpu")}
    out["final"] = not out["missing"]  # a budget from some of the methods is provisional
    write_json(Path(results) / "summary.json", out)
    return out


def _objective_peak(run_dir: Path, tuples: int = 1) -> dict:
    """The epoch (and its equivalent on the 4,000-tuple set) at which the held-out objective was highest."""
    history = read_json(Path(run_dir) / "metrics.json")["epochs"]
    top = max(history, key=lambda e: e["test_objective"])
    return {"epoch": top["epoch"], "equivalent_epoch": top["epoch"] * tuples,
            "test_objective": top["test_objective"], "last_equivalent_epoch": history[-1]["epoch"] * tuples,
            "last_test_objective": history[-1]["test_objective"]}


def tuples_comparison(tuples: int, epochs: int, every: int, methods=METHODS) -> dict:
    """The diagnostic on ``tuples`` x the training tuples against the main one, at equal optimiser steps
    (``equivalent_epoch``): per method, both curves' conditional coherence, latent accuracy and held-out objective at
    every equivalent epoch both evaluated, and where each held-out objective peaked (the test split is the same).
    Writes ``<results>/tuples=<R>/comparison.json``."""
    results = roots(tuples)[0]
    more = curves(results, methods, epochs, every, tuples)
    base = curves(ROOT, methods)
    out = {"item": "convergence-tuples", "tuples": tuples, "epochs": epochs, "every": every, "methods": {}}
    for m, pts in more.items():
        by_epoch = {p["epoch"]: p for p in base.get(m, [])}
        out["methods"][m] = {
            "matched": [{"equivalent_epoch": p["equivalent_epoch"], "more": p, "base": by_epoch[p["equivalent_epoch"]]}
                        for p in pts if p["equivalent_epoch"] in by_epoch],
            "objective_peak": {"more": _objective_peak(results / "runs" / run_path(config(m, epochs, tuples=tuples)),
                                                       tuples),
                               "base": _objective_peak(ROOT / "runs" / run_path(config(m)))}}
    out["provenance"] = provenance(scale="cpu")
    write_json(results / "comparison.json", out)
    return out


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="Convergence diagnostic that calibrates the cpu budget.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and evaluate every method's diagnostic run (resumable)")
    t.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD")
    t.add_argument("--epochs", type=int, default=300)
    t.add_argument("--every", type=int, default=20)
    t.add_argument("--jobs", type=int, default=1, help="runs side by side, one thread each")
    t.add_argument("--tuples", type=int, default=1,
                   help="training tuples per digit (R > 1: the more-tuples diagnostic, in .../tuples=R)")
    s = sub.add_parser("summary", help="write results/diagnostics/convergence/summary.json")
    s.add_argument("--epochs", type=int, default=300)
    s.add_argument("--every", type=int, default=20)
    s.add_argument("--tuples", type=int, default=1,
                   help="R > 1: compare the more-tuples diagnostic with the main one (.../tuples=R/comparison.json)")
    a = p.parse_args(argv)
    if a.tuples < 1:
        p.error(f"--tuples must be at least 1; got {a.tuples}")
    if a.command == "summary" and a.tuples > 1:
        for m, c in tuples_comparison(a.tuples, a.epochs, a.every)["methods"].items():
            peak = c["objective_peak"]
            print(f"{m}: held-out objective peaks at equivalent epoch {peak['more']['equivalent_epoch']} with "
                  f"{a.tuples}x tuples, {peak['base']['equivalent_epoch']} without")
            for row in c["matched"]:
                print(f"  equivalent epoch {row['equivalent_epoch']}: coherence "
                      f"{row['more']['conditional_coherence']:.3f} vs {row['base']['conditional_coherence']:.3f}")
        return
    if a.command == "summary":
        b = summary(epochs=a.epochs, every=a.every)["budget"]
        state = "" if read_json(ROOT / "summary.json")["final"] else " (provisional: not every method has points yet)"
        print(f"calibrated budget{state}: {b['epochs']} epochs ({b['why']})")
        return
    if a.every <= 0 or a.epochs < a.every:
        p.error(f"--every must be positive and at most --epochs; got --every {a.every} --epochs {a.epochs}")
    try:
        with ProcessPoolExecutor(max_workers=max(a.jobs, 1)) as pool:
            for f in [pool.submit(run_method, m, a.epochs, a.every, tuples=a.tuples) for m in a.methods]:
                f.result()
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
