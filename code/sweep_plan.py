"""What a sweep has left to do, and about how long it will take.

Per run: what the sweep is about to do with it (:func:`poolvae.experiments.run_state`), the epochs it still has to
train (none for a finished run, fewer for one that resumes or starts from the convergence diagnostic's snapshot) and
an estimate of its seconds. The estimate is measured wherever it can be: seconds per epoch from the epochs of runs
already made with the same method and settings (any beta, seed or number of epochs; runs made beside another, as
in a sweep with two jobs, included), seconds per evaluation from their ``evaluation.json``. Without such a run it
falls back on the training benchmark (``results/bench/train-<device>.json``, one process alone on the machine),
scaled by how much longer the runs made here took than the benchmark says (:func:`bench_factor`), and says so.
``python -m poolvae.experiments sweep --plan`` prints the plan (``make sweep-plan``), and the sweep's ETA with
several jobs comes from it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

from . import datasets as ds
from .artefacts import RESULTS_DIR, read_json
from .train import CHECKPOINT_DIR, TrainConfig, checkpoint_file, config_differences, load_data, run_path, stored_config

#: Fields in which runs may differ and still take the same time per step.
TIMING_FREE_FIELDS = frozenset({"beta", "seed", "epochs"})
BENCH_DIR = RESULTS_DIR / "bench"


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: what is done with it, the epochs it has left, and its estimated seconds (None: no
    estimate, no run of its method and settings has been made or benchmarked)."""

    cfg: TrainConfig
    state: str
    epochs_left: int
    evaluates: bool
    train_seconds: float | None
    evaluate_seconds: float | None
    source: str  # where train_seconds comes from: "measured", "bench x<factor>", "none" ("-" when nothing trains)

    @property
    def seconds(self) -> float | None:
        """Training plus evaluation; None when either is needed and has no estimate."""
        parts = [self.train_seconds if self.epochs_left else 0.0, self.evaluate_seconds if self.evaluates else 0.0]
        return None if None in parts else sum(parts)

    @property
    def busy(self) -> bool:
        """Whether the sweep trains or evaluates this run (a finished, evaluated or kept run takes no time)."""
        return bool(self.epochs_left) or self.evaluates


_ROWS: dict[tuple, int] = {}


def train_rows(cfg: TrainConfig) -> int:
    """The training rows of run ``cfg``: PolyMNIST-mini's counted from its settings
    (:func:`poolvae.datasets.polymnist_mini_train_rows`, no data needed), any other data set's read once per
    setting; cut to ``train_limit`` when set."""
    if cfg.dataset == "polymnist-mini":
        rows = ds.polymnist_mini_train_rows(cfg.scale, cfg.tuples)
        return min(rows, cfg.train_limit) if cfg.train_limit else rows
    key = (cfg.dataset, cfg.scale, cfg.tuples, cfg.train_limit)
    if key not in _ROWS:
        _ROWS[key] = len(load_data(cfg, "train"))
    return _ROWS[key]


def steps_per_epoch(cfg: TrainConfig) -> int:
    """Optimiser steps in one epoch of run ``cfg``: its training rows (:func:`train_rows`) over its batch size,
    rounded up (the last batch may be short, :func:`poolvae.train.batches`)."""
    return math.ceil(train_rows(cfg) / cfg.batch_size)


def _run_folders(cfg: TrainConfig, runs_dir: Path):
    """The run folders of ``cfg``'s method, data set and scale under ``runs_dir`` (any beta and seed)."""
    yield from sorted((Path(runs_dir) / cfg.scale / cfg.dataset / cfg.method).glob("beta=*/seed=*"))


def _same_timing(run_dir: Path, cfg: TrainConfig) -> bool:
    """Whether the run in ``run_dir`` was made with ``cfg``'s settings but for :data:`TIMING_FREE_FIELDS`."""
    config = run_dir / "config.json"
    return config.exists() and set(config_differences(stored_config(read_json(config)), cfg)) <= TIMING_FREE_FIELDS


def measured_epoch_seconds(cfg: TrainConfig, runs_dir: Path) -> float | None:
    """Median seconds per training epoch over every recorded epoch of the runs made with ``cfg``'s method and
    settings (:func:`_same_timing`: the same steps per epoch), or None when there are none."""
    folders = [d for d in _run_folders(cfg, runs_dir) if (d / "metrics.json").exists() and _same_timing(d, cfg)]
    epochs = [e["seconds"] for d in folders for e in read_json(d / "metrics.json")["epochs"] if e.get("seconds")]
    return statistics.median(epochs) if epochs else None


def bench_step_seconds(cfg: TrainConfig, bench_dir: Path = BENCH_DIR, device: str = "cpu") -> float | None:
    """Seconds per step of ``cfg``'s method in the training benchmark (``train-<device>.json``), when it timed
    this scale on this data set with the same networks and batch size; else None."""
    f = Path(bench_dir) / f"train-{device}.json"
    if not f.exists():
        return None
    setting = read_json(f).get("settings", {}).get(cfg.scale, {})
    method = setting.get("methods", {}).get(cfg.method)
    if setting.get("dataset") != cfg.dataset or not method:
        return None
    timed = method.get("config", {})
    if any(timed.get(k) != getattr(cfg, k) for k in ("arch", "width", "latent_dim", "private_dim", "batch_size", "K")):
        return None
    return method.get("step_seconds")


def measured_evaluation_seconds(cfg: TrainConfig, runs_dir: Path) -> float | None:
    """Median evaluation time (``evaluation.json``'s ``seconds.total``) of the runs of ``cfg``'s method, data set
    and scale; of any method's there when its own have none; None when no run there is evaluated."""
    def totals(folders) -> list[float]:
        return [t for d in folders if (d / "evaluation.json").exists()
                for t in [read_json(d / "evaluation.json").get("seconds", {}).get("total")] if t]

    own = totals(_run_folders(cfg, runs_dir))
    if own:
        return statistics.median(own)
    others = totals(sorted((Path(runs_dir) / cfg.scale / cfg.dataset).glob("*/beta=*/seed=*")))
    return statistics.median(others) if others else None


def epochs_left(cfg: TrainConfig, state: str, runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR) -> int:
    """The epochs run ``cfg`` still has to train, given :func:`poolvae.experiments.run_state`'s ``state``: none for
    a finished (or kept) run; a resumed or extended run's missing epochs; a new run's epochs less those of the
    convergence diagnostic's snapshot it starts from (:func:`poolvae.convergence.seed_run`)."""
    from .convergence import diagnostic_run, latest_snapshot

    if state.startswith(("trained", "kept")):
        return 0
    if state.startswith("retraining"):
        return cfg.epochs
    metrics = Path(runs_dir) / run_path(cfg) / "metrics.json"
    if state.startswith(("resuming", "training on")):
        done = len(read_json(metrics)["epochs"]) if metrics.exists() else _checkpoint_epoch(cfg, checkpoint_dir)
        return max(cfg.epochs - done, 0)
    found = diagnostic_run(cfg)
    seeded = latest_snapshot(cfg, found[1]) if found else None
    return cfg.epochs - (seeded or 0)


def _checkpoint_epoch(cfg: TrainConfig, checkpoint_dir: Path) -> int:
    """The epochs in run ``cfg``'s checkpoint (one without a ``metrics.json`` beside it)."""
    import torch

    return int(torch.load(checkpoint_file(cfg, checkpoint_dir), map_location="cpu", weights_only=False,
                          mmap=True)["epoch"])


def bench_epoch_seconds(cfg: TrainConfig, bench_dir: Path = BENCH_DIR) -> float | None:
    """Seconds per epoch of run ``cfg`` from the training benchmark's step time (:func:`bench_step_seconds`) times
    its steps per epoch, or None when the benchmark did not time it."""
    step = bench_step_seconds(cfg, bench_dir)
    return None if step is None else step * steps_per_epoch(cfg)


def bench_factor(cfgs: list[TrainConfig], runs_dir: Path, bench_dir: Path = BENCH_DIR) -> float:
    """How much longer an epoch takes in the runs made than the benchmark says: the median, over the methods (and
    settings) of ``cfgs`` that have both, of measured over benchmarked epoch seconds; 1 when none has both. The
    benchmark times one process alone; a sweep shares the cores, so its estimates are scaled by this."""
    ratios = []
    timings = {}  # one config per method and settings: beta, seed and epochs do not change an epoch's time
    for c in cfgs:
        timings.setdefault(str(dataclasses.replace(c, beta=0.0, seed=0, epochs=1)), c)
    for c in timings.values():
        measured, benched = measured_epoch_seconds(c, runs_dir), bench_epoch_seconds(c, bench_dir)
        if measured and benched:
            ratios.append(measured / benched)
    return statistics.median(ratios) if ratios else 1.0


def plan_run(cfg: TrainConfig, runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR, retrain_stale: bool = False,
             evaluate: bool = True, bench_dir: Path = BENCH_DIR, factor: float = 1.0) -> RunPlan:
    """The :class:`RunPlan` of one run (``runs_dir``: the root of the run folders, as :func:`run_state`'s); a
    benchmark estimate is scaled by ``factor`` (:func:`bench_factor`)."""
    from .experiments import run_state

    state = run_state(cfg, runs_dir, checkpoint_dir, retrain_stale)
    left = epochs_left(cfg, state, runs_dir, checkpoint_dir)
    evaluates = evaluate and "evaluating" in state
    epoch, source = measured_epoch_seconds(cfg, runs_dir), "measured"
    if epoch is None and (benched := bench_epoch_seconds(cfg, bench_dir)) is not None:
        epoch, source = benched * factor, f"bench x{factor:.2f}"
    if epoch is None:
        source = "none"
    train_seconds = left * epoch if left and epoch is not None else (0.0 if not left else None)
    return RunPlan(cfg, state, left, evaluates, train_seconds,
                   measured_evaluation_seconds(cfg, runs_dir) if evaluates else 0.0, source if left else "-")


def plan(cfgs: list[TrainConfig], runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR, retrain_stale: bool = False,
         evaluate: bool = True, bench_dir: Path = BENCH_DIR) -> list[RunPlan]:
    """:func:`plan_run` of every run, in the given order (the sweep's), benchmark estimates scaled by
    :func:`bench_factor` of the same runs."""
    factor = bench_factor(cfgs, runs_dir, bench_dir)
    return [plan_run(c, runs_dir, checkpoint_dir, retrain_stale, evaluate, bench_dir, factor) for c in cfgs]


def wall_seconds(seconds: list[float], jobs: int) -> float:
    """Wall time of runs taking ``seconds`` each, started in this order on ``jobs`` workers, each run going to the
    first worker free (as the sweep's process pool does)."""
    workers = [0.0] * max(jobs, 1)
    for s in seconds:
        workers[workers.index(min(workers))] += s
    return max(workers)


def _hours(seconds: float) -> str:
    """Seconds as hours with one decimal (``"3.2 h"``), or minutes below an hour."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def plan_lines(plans: list[RunPlan], jobs: int = 1) -> list[str]:
    """The plan in words: one line per run that trains or evaluates, then the totals (core hours, wall hours on
    ``jobs`` workers, runs without an estimate)."""
    busy = [p for p in plans if p.busy]
    lines = [f"{len(plans)} runs: {len(plans) - len(busy)} done or kept, {len(busy)} to train or evaluate"]
    for p in busy:
        cost = "no estimate" if p.seconds is None else _hours(p.seconds)
        epochs = f"{p.epochs_left} of {p.cfg.epochs} epochs to train" if p.epochs_left else "nothing to train"
        lines.append(f"  {run_path(p.cfg)}: {p.state}; {epochs}; {cost} ({p.source})")
    known = [p.seconds for p in busy if p.seconds is not None]
    lines.append(f"about {sum(known) / 3600:.1f} core hours; about {_hours(wall_seconds(known, jobs))} on {jobs} "
                 f"worker{'s' if jobs != 1 else ''}")
    if len(known) < len(busy):
        lines.append(f"{len(busy) - len(known)} runs have no estimate (no run of their method and settings made or "
                     "benchmarked yet) and are not counted")
    if any(p.source.startswith("bench") for p in busy):
        lines.append("bench x<f>: the training benchmark's step time (one process alone) times f, how much longer "
                     "the runs made here took than it says (the median over the methods that have both)")
    return lines
