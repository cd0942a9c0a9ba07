"""Bring runs trained in another checkout into this one: a sweep in a git worktree, a GPU machine, a cluster.

    python -m poolvae.land /path/to/other/checkout --scale cpu [--dry-run] [--no-render] [--verbose]

A long sweep is best left to train in a checkout of its own (``git worktree add``), with its own copy of the code,
while this one goes on changing. Its run folders land here as they finish: only a run that is **finished**
(``metrics.json`` says so), **evaluated** (``evaluation.json``, with sample files made from the same checkpoint),
**up to date** with today's code (:func:`poolvae.experiments.stale_reason`: its config and evaluation settings are
today's defaults) and **different** from the folder here is copied. Each folder is copied whole into a temporary
folder beside its destination and then renamed into place, so an interrupted landing leaves the old run or the
new one, never half of each. The items those runs belong to are rendered again afterwards (tables, figures).
Committing is left to the user: ``git add results figures && git commit``.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .artefacts import read_json
from .experiments import POLYMNIST_ITEMS, RESULTS_DIR, SCALES, get_experiment, render, stale_reason, sweep_runs
from .train import TrainConfig, run_path

__all__ = ["Candidate", "landing_reason", "candidates", "land", "items_touched", "left_summary", "main"]


@dataclass(frozen=True)
class Candidate:
    """One run folder of the source checkout: its config, where it is, and whether (and why not) it lands."""

    cfg: TrainConfig
    source: Path
    reason: str | None  # None: it lands; else why it does not


def _same_tree(a: Path, b: Path) -> bool:
    """The folders ``a`` and ``b`` hold the same file names with the same bytes (no subfolders in a run folder)."""
    if not b.is_dir():
        return False
    names = sorted(p.name for p in a.iterdir() if p.is_file())
    if names != sorted(p.name for p in b.iterdir() if p.is_file()):
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


def landing_reason(cfg: TrainConfig, source: Path, destination: Path) -> str | None:
    """Why the run folder ``source`` (run ``cfg``) does not land on ``destination``, or None when it does.

    The evaluation settings are compared as in a clone without checkpoints (the source's checkpoints are not
    copied), so an evaluation made with other settings is stale here even if a checkpoint sits beside it there.
    """
    from .evaluate import run_samples_up_to_date

    metrics, evaluation = source / "metrics.json", source / "evaluation.json"
    if not metrics.exists():
        return "not started"
    if not read_json(metrics).get("finished"):
        return "still training"
    if not evaluation.exists():
        return "not evaluated yet"
    stale = stale_reason(cfg, source, checkpoint_dir=source / "no-checkpoints-here")
    if stale:
        return f"stale ({stale})"
    digest = read_json(evaluation).get("run", {}).get("checkpoint_sha256")
    if not digest or not run_samples_up_to_date(source, cfg.dataset, digest):
        return "its sample files are not from the evaluated checkpoint (being written?)"
    if _same_tree(source, destination):
        return "already here"
    return None


def candidates(source_root: Path, scale: str, items: tuple[str, ...] = POLYMNIST_ITEMS,
               runs_dir: Path = RESULTS_DIR / "runs") -> list[Candidate]:
    """Every run of ``items`` at ``scale`` that the checkout ``source_root`` has a folder for, with its verdict.

    ``source_root`` is a checkout (its runs are under ``results/runs``) or a runs folder itself."""
    source_root = Path(source_root)
    source_runs = source_root / "results" / "runs" if (source_root / "results" / "runs").is_dir() else source_root
    if not source_runs.is_dir():
        raise FileNotFoundError(f"{source_root} holds no run folders: pass a checkout (with results/runs) or a "
                                "runs folder")
    if source_runs.resolve() == Path(runs_dir).resolve():
        raise ValueError(f"{source_root} is this checkout: pass another one (a worktree, a copy from another "
                         "machine)")
    found = []
    for cfg in sweep_runs(items, scale, datasets=tuple({c.dataset for i in items
                                                        for c in get_experiment(i).runs(scale)})):
        src = source_runs / run_path(cfg)
        if src.is_dir():
            found.append(Candidate(cfg, src, landing_reason(cfg, src, Path(runs_dir) / run_path(cfg))))
    return found


def _copy_atomically(source: Path, destination: Path) -> None:
    """Replace the folder ``destination`` by a copy of ``source``: copied beside it first, then renamed."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + ".landing.tmp")
    old = destination.with_name(destination.name + ".replaced.tmp")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(source, tmp)
    if destination.exists():
        destination.rename(old)
    tmp.rename(destination)
    if old.exists():
        shutil.rmtree(old)


def land(found: list[Candidate], runs_dir: Path = RESULTS_DIR / "runs", dry_run: bool = False) -> list[TrainConfig]:
    """Copy every candidate that lands into ``runs_dir`` (nothing with ``dry_run``); returns their configs."""
    landed = []
    for c in found:
        if c.reason is None:
            if not dry_run:
                _copy_atomically(c.source, Path(runs_dir) / run_path(c.cfg))
            landed.append(c.cfg)
    return landed


def items_touched(cfgs: list[TrainConfig], scale: str, items: tuple[str, ...] = POLYMNIST_ITEMS) -> list[str]:
    """The items among ``items`` that hold at least one of the runs ``cfgs`` (to render again), in order."""
    paths = {run_path(c) for c in cfgs}
    return [i for i in items if any(run_path(c) in paths for c in get_experiment(i).runs(scale))]


def left_summary(found: list[Candidate]) -> str:
    """How many runs were left for each kind of reason (the reason up to its parenthesis), or "" if none was:
    ``"; left: 3 already here, 2 stale"``."""
    counts: dict[str, int] = {}
    for c in found:
        if c.reason is not None:
            kind = c.reason.split(" (")[0]
            counts[kind] = counts.get(kind, 0) + 1
    return "; left: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()) if counts else ""


def main(argv=None) -> int:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m poolvae.land", description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="the other checkout (or its results/runs folder)")
    p.add_argument("--scale", default="cpu", choices=SCALES)
    p.add_argument("--items", nargs="+", default=list(POLYMNIST_ITEMS), metavar="ITEM",
                   help="the items whose runs may land (default: the trained PolyMNIST items)")
    p.add_argument("--dry-run", action="store_true", help="say what would land; copy and render nothing")
    p.add_argument("--no-render", action="store_true", help="copy the runs; render no item")
    p.add_argument("--verbose", action="store_true", help="name every run left behind with its reason")
    a = p.parse_args(argv)
    try:
        found = candidates(a.source, a.scale, tuple(a.items))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    landed = land(found, dry_run=a.dry_run)
    verb = "would land" if a.dry_run else "landed"
    for c in found:
        if c.reason is None or a.verbose:
            print(f"{verb if c.reason is None else 'left'} {run_path(c.cfg)}" + (f": {c.reason}" if c.reason else ""))
    print(f"{len(landed)} of {len(found)} run folders {verb}" + ("" if a.verbose else left_summary(found)))
    if landed and not (a.dry_run or a.no_render):
        for item in items_touched(landed, a.scale, tuple(a.items)):
            render(item, a.scale)
            print(f"rendered {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
