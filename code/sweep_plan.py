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
from typing import TYPE_CHECKING

from . import datasets as ds
from .artefacts import RESULTS_DIR, read_json
from .train import (
    CHECKPOINT_DIR,
    TrainConfig,
    checkpoint_file,
    checkpoint_header,
    config_differences,
    load_data,
    run_path,
    stored_config,
)

if TYPE_CHECKING:
    from .experiments import RunAction

#: Fields in which runs may differ and still take the same time per step.
TIMING_FREE_FIELDS = frozenset({"beta", "seed", "epochs"})
BENCH_DIR = RESULTS_DIR / "bench"


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """One run of a sweep: what is done with it, the epochs it has left, and its estimated seconds (None: no
    estimate, no run of its method and settings has been made or benchmarked)."""

    cfg: TrainConfig
    state: RunAction
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


def epochs_left(cfg: TrainConfig, action: RunAction, runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR) -> int:
    """The epochs run ``cfg`` still has to train, given what the sweep does with it (``action``, from
    :func:`poolvae.experiments.run_state`): none for a finished (or kept) run; all for a retrained one; a resumed or
    extended run's missing epochs; a new run's epochs less those of the convergence diagnostic's snapshot it starts
    from (:func:`poolvae.convergence.seed_run`)."""
    from .convergence import diagnostic_run, latest_snapshot
    from .experiments import RunAction

    if not action.trains:
        return 0
    if action is RunAction.RETRAIN:
        return cfg.epochs
    if action in (RunAction.RESUME, RunAction.EXTEND):
        metrics = Path(runs_dir) / run_path(cfg) / "metrics.json"
        done = (len(read_json(metrics)["epochs"]) if metrics.exists()
                else int(checkpoint_header(checkpoint_file(cfg, checkpoint_dir))["epoch"]))
        return max(cfg.epochs - done, 0)
    found = diagnostic_run(cfg)
    seeded = latest_snapshot(cfg, found[1]) if found else None
    return cfg.epochs - (seeded or 0)


def bench_epoch_seconds(cfg: TrainConfig, bench_dir: Path = BENCH_DIR) -> float | None:
    """Seconds per epoch of run ``cfg`` from the training benchmark's step time (:func:`bench_step_seconds`) times
    its steps per epoch, or None when the benchmark did not time it."""
    step = bench_step_seconds(cfg, bench_dir)
    return None if step is None else step * steps_per_epoch(cfg)


def timing_key(cfg: TrainConfig) -> str:
    """``cfg`` with :data:`TIMING_FREE_FIELDS` set to fixed values, as text: runs with the same key take the same
    time per epoch."""
    return repr(dataclasses.replace(cfg, beta=0.0, seed=0, epochs=1))


class Timings:
    """Measured seconds of the runs under ``runs_dir`` (:func:`measured_epoch_seconds`,
    :func:`measured_evaluation_seconds`), read once per method and settings however many runs of a sweep ask."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)
        self._epoch: dict[str, float | None] = {}
        self._evaluation: dict[tuple[str, str, str], float | None] = {}

    def epoch_seconds(self, cfg: TrainConfig) -> float | None:
        """:func:`measured_epoch_seconds` of ``cfg``, from the cache once known."""
        key = timing_key(cfg)
        if key not in self._epoch:
            self._epoch[key] = measured_epoch_seconds(cfg, self.runs_dir)
        return self._epoch[key]

    def evaluation_seconds(self, cfg: TrainConfig) -> float | None:
        """:func:`measured_evaluation_seconds` of ``cfg``, from the cache once known."""
        key = (cfg.scale, cfg.dataset, cfg.method)
        if key not in self._evaluation:
            self._evaluation[key] = measured_evaluation_seconds(cfg, self.runs_dir)
        return self._evaluation[key]


def bench_factor(cfgs: list[TrainConfig], runs_dir: Path | Timings, bench_dir: Path = BENCH_DIR) -> float:
    """How much longer an epoch takes in the runs made than the benchmark says: the median, over the methods (and
    settings) of ``cfgs`` that have both, of measured over benchmarked epoch seconds; 1 when none has both. The
    benchmark times one process alone; a sweep shares the cores, so its estimates are scaled by this.
    ``runs_dir``: the root of the run folders, or the :class:`Timings` read from it."""
    timings = runs_dir if isinstance(runs_dir, Timings) else Timings(runs_dir)
    ratios = []
    for c in {timing_key(c): c for c in cfgs}.values():  # beta, seed and epochs do not change an epoch's time
        measured, benched = timings.epoch_seconds(c), bench_epoch_seconds(c, bench_dir)
        if measured and benched:
            ratios.append(measured / benched)
    return statistics.median(ratios) if ratios else 1.0


def plan_run(cfg: TrainConfig, runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR, retrain_stale: bool = False,
             evaluate: bool = True, bench_dir: Path = BENCH_DIR, factor: float = 1.0,
             timings: Timings | None = None) -> RunPlan:
    """The :class:`RunPlan` of one run (``runs_dir``: the root of the run folders, as :func:`run_state`'s); a
    benchmark estimate is scaled by ``factor`` (:func:`bench_factor`). ``timings``: measured seconds already read
    (:func:`plan` shares one over every run), else read here."""
    from .experiments import run_state

    timings = timings or Timings(runs_dir)
    action = run_state(cfg, runs_dir, checkpoint_dir, retrain_stale)
    left = epochs_left(cfg, action, runs_dir, checkpoint_dir)
    evaluates = evaluate and action.evaluates
    epoch, source = timings.epoch_seconds(cfg), "measured"
    if epoch is None and (benched := bench_epoch_seconds(cfg, bench_dir)) is not None:
        epoch, source = benched * factor, f"bench x{factor:.2f}"
    if epoch is None:
        source = "none"
    train_seconds = left * epoch if left and epoch is not None else (0.0 if not left else None)
    return RunPlan(cfg, action, left, evaluates, train_seconds,
                   timings.evaluation_seconds(cfg) if evaluates else 0.0, source if left else "-")


def plan(cfgs: list[TrainConfig], runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR, retrain_stale: bool = False,
         evaluate: bool = True, bench_dir: Path = BENCH_DIR) -> list[RunPlan]:
    """:func:`plan_run` of every run, in the given order (the sweep's), benchmark estimates scaled by
    :func:`bench_factor` of the same runs; each method's run files are read once (:class:`Timings`)."""
    timings = Timings(runs_dir)
    factor = bench_factor(cfgs, timings, bench_dir)
    return [plan_run(c, runs_dir, checkpoint_dir, retrain_stale, evaluate, bench_dir, factor, timings) for c in cfgs]


def wall_seconds(seconds: list[float], jobs: int) -> float:
    """Wall time of runs taking ``seconds`` each, started in this order on ``jobs`` workers, each run going to the
    first worker free (as the sweep's process pool does)."""
    workers = [0.0] * max(jobs, 1)
    for s in seconds:
        workers[workers.index(min(workers))] += s
    return max(workers)


def duration_text(seconds: float) -> str:
    """``75.2`` -> ``"1 min 15 s"``, ``7300`` -> ``"2 h 01 min"``; under a minute in seconds."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s // 60 % 60:02d} min"


def plan_lines(plans: list[RunPlan], jobs: int = 1) -> list[str]:
    """The plan in words: one line per run that trains or evaluates, then the totals (core hours, wall hours on
    ``jobs`` workers, runs without an estimate)."""
    busy = [p for p in plans if p.busy]
    lines = [f"{len(plans)} runs: {len(plans) - len(busy)} done or kept, {len(busy)} to train or evaluate"]
    for p in busy:
        cost = "no estimate" if p.seconds is None else duration_text(p.seconds)
        epochs = f"{p.epochs_left} of {p.cfg.epochs} epochs to train" if p.epochs_left else "nothing to train"
        lines.append(f"  {run_path(p.cfg)}: {p.state}; {epochs}; {cost} ({p.source})")
    known = [p.seconds for p in busy if p.seconds is not None]
    wall = duration_text(wall_seconds(known, jobs))
    lines.append(f"about {sum(known) / 3600:.1f} core hours; about {wall} on {jobs} worker{'s' if jobs != 1 else ''}")
    if len(known) < len(busy):
        lines.append(f"{len(busy) - len(known)} runs have no estimate (no run of their method and settings made or "
                     "benchmarked yet) and are not counted")
    if any(p.source.startswith("bench") for p in busy):
        lines.append("bench x<f>: the training benchmark's step time (one process alone) times f, how much longer "
                     "the runs made here took than it says (the median over the methods that have both)")
    return lines
