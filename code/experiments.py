"""Reproduction targets: which runs each table or figure of the two papers needs, and how it renders.

    python -m poolvae.experiments list
    python -m poolvae.experiments reproduce hel-table8 --scale cpu [--jobs 2] [--executor serial|local|slurm]
    python -m poolvae.experiments render hel-table8 --scale cpu
    python -m poolvae.experiments sweep --scale cpu --jobs 2 --retrain-stale [--plan]

One item id (``hel-table8``) is one name across the Makefile target, ``results/<id>.json`` and the
rendered ``results/<id>.md`` / ``.csv`` / ``.tex`` (tables) or ``figures/<id>.png`` / ``.pdf``
(figures, drawn by :mod:`poolvae.figures`); at the ``ci`` scale they go to ``results/ci/`` and
``figures/ci/`` instead, so that a pipeline check never overwrites a committed render.
``reproduce`` trains and evaluates every run of the item
at the chosen scale (finished runs and up-to-date evaluations are skipped, interrupted ones resume),
then ``render`` collects the runs' ``evaluation.json`` files: mean and standard deviation over seeds,
the paper's value beside ours, each method's rank in the paper and in our run, and the rank agreement
(Kendall's tau) per metric. A table says at which scale its numbers were made and how many of its
runs exist; a missing run is an empty cell, never a guess.

Runs go through ``concurrent.futures`` (``--executor local``, ``--jobs n``) or submitit's SLURM
executor (``--executor slurm``, for clusters), so the sweep is the same list of runs everywhere.
Scale ``cpu`` trains on PolyMNIST-mini, whose numbers are not comparable with the papers' PolyMNIST
in value; the ranks are what can be compared. The other data sets (CUB, bimodal CelebA, MNIST-SVHN-Text)
are used as they are at every scale (``ci`` cuts them to seeded subsets); ``reproduce`` opens them before
any run trains, so a missing one stops the item with its download instructions.

A table is a list of :class:`Column` s: each reads one number from ``evaluation.json`` and names the
paper's cells it stands beside. A column ``poolvae.evaluate`` does not compute is printed as "not computed
here"; one absent from every evaluation found (FID below paper scale) is listed under the table. Tables
whose models are "each at its best beta" take the betas of HEL Table 5 (``hel-table5`` re-selects them
by a stated rule). ``hel-fig4`` and ``hel-fig9`` are drawn from each run's ``samples.npz``.
"""

from __future__ import annotations

import argparse
import enum
import math
import pickle
import statistics
import sys
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import paper_numbers
from .artefacts import RESULTS_DIR, provenance, read_json, write_json
from .datasets import base_name
from .sweep_plan import duration_text, plan, plan_lines, wall_seconds
from .train import (
    CHECKPOINT_DIR,
    METHOD_AT_SCALE,
    METHOD_AT_SCALE_REASONS,
    RUNS_DIR,
    TrainConfig,
    checkpoint_file,
    checkpoint_header,
    config_differences,
    in_worker,
    make_config,
    resumable,
    run_path,
    stored_config,
    train,
)

SCALES = ("ci", "cpu", "paper")
POLYMNIST_METHODS = ("mvae", "mmvae", "mopoe", "mmvaeplus", "mwbvae", "codevae", "helvae")
WB_METHODS = ("mvae", "mmvae", "mopoe", "wbvae", "mwbvae")


#: Offline stand-ins at scale cpu: built on this machine from what packages ship (poolvae.polymnist, poolvae.mstmini).
STAND_INS = {"polymnist": "polymnist-mini", "mnist-svhn-text": "mnist-svhn-text-mini"}


def dataset_at(base: str, scale: str) -> str:
    """The data set a scale trains on: PolyMNIST-mini stands in for PolyMNIST below paper scale, and
    MNIST-SVHN-Text-mini for MNIST-SVHN-Text at scale cpu (ci runs the real loader on test fixtures)."""
    if base == "polymnist" and scale != "paper":
        return STAND_INS[base]
    return STAND_INS.get(base, base) if scale == "cpu" else base


# --------------------------------------------------------------------------------------------------
# Metrics read from evaluation.json (schema poolvae.evaluate/1)
# --------------------------------------------------------------------------------------------------

def _mean_over(d: dict) -> float:
    vals = [v for v in d.values() if isinstance(v, (int, float))]
    return sum(vals) / len(vals) if vals else math.nan


def quality_key(ev: dict) -> str:
    """``fid`` where Inception FID was computed (paper scale), else ``fd_classifier``."""
    return "fid" if "fid" in ev.get("metrics", {}) else "fd_classifier"


#: metric id -> (reader of evaluation.json, higher is better)
METRICS: dict[str, tuple[Callable[[dict], float], bool]] = {
    "coherence/conditional": (lambda ev: ev["metrics"]["coherence"]["conditional"]["overall"], True),
    "coherence/unconditional": (lambda ev: _scalar(ev["metrics"]["coherence"]["unconditional"]), True),
    "quality/conditional": (lambda ev: ev["metrics"][quality_key(ev)]["conditional"]["mean"], False),
    "quality/unconditional": (lambda ev: _mean_over(ev["metrics"][quality_key(ev)]["unconditional"]), False),
    "log_likelihood/joint": (lambda ev: ev["metrics"]["log_likelihood"]["joint"], True),
    "latent/joint": (lambda ev: ev["metrics"]["latent"]["per_subset"][ev["subsets"][-1]], True),
    # CUB (HEL B.2): share of caption-to-image generations whose colour matches "this bird is completely <colour>"
    "colour_coherence": (lambda ev: ev["metrics"]["cub_colour_coherence"]["overall"], True),
}

# how the papers' metric ids map onto ours, per table
PAPER_METRIC = {
    "coherence/conditional": ("coherence", "conditional"),
    "coherence/unconditional": ("coherence", "unconditional"),
    "quality/conditional": ("fid", "conditional"),
    "quality/unconditional": ("fid", "unconditional"),
}


def _scalar(v) -> float:
    return v if isinstance(v, (int, float)) else v.get("mean", math.nan)


def by_size(ev: dict, section: str) -> dict[int, float]:
    """A section's per-number-of-inputs means: coherence, latent, log_likelihood or the quality metric."""
    m = ev["metrics"]
    node = {"coherence": lambda: m["coherence"]["conditional"]["by_size"],
            "latent": lambda: m["latent"]["by_size"],
            "log_likelihood": lambda: m["log_likelihood"]["by_size"],
            "quality": lambda: m[quality_key(ev)]["conditional"]["by_size"]}[section]()
    return {int(k): (v["mean"] if isinstance(v, dict) else v) for k, v in node.items()}


#: The papers' one-letter modality names -> ours, per data set (WB Tables 1-4, HEL Tables 3-4).
LETTERS: dict[str, dict[str, str]] = {
    "mnist-svhn-text": {"M": "mnist", "S": "svhn", "T": "text"},
    "celeba": {"I": "img", "T": "text"},
    "cub": {"I": "img", "T": "text"},
}


def subset_key(ev: dict, modalities: tuple[str, ...]) -> str:
    """The evaluation's name (``"mnist+svhn"``) of the subset holding exactly ``modalities``, in any order."""
    want = set(modalities)
    for name in ev["subsets"]:
        if set(name.split("+")) == want:
            return name
    raise KeyError(f"no subset {'+'.join(modalities)} among {ev['subsets']}")


def _letters(dataset: str, setting: str) -> tuple[str, ...]:
    """``"M,S"`` -> ``("mnist", "svhn")`` for the data set's modalities."""
    return tuple(LETTERS[dataset][k] for k in setting.split(","))


def latent_reader(dataset: str, setting: str) -> Callable[[dict], float]:
    """Linear-probe score of the posterior given the paper's subset ``setting`` (accuracy, or mean AP on CelebA)."""
    mods = _letters(dataset, setting)
    return lambda ev: ev["metrics"]["latent"]["per_subset"][subset_key(ev, mods)]


def pair_reader(dataset: str, setting: str, target: str) -> Callable[[dict], float]:
    """Conditional coherence of ``target`` generated from the subset ``setting`` (paper letters)."""
    mods, tgt = _letters(dataset, setting), LETTERS[dataset][target]
    return lambda ev: ev["metrics"]["coherence"]["conditional"]["per_pair"][subset_key(ev, mods)][tgt]


def quality_pair_reader(dataset: str, setting: str, target: str) -> Callable[[dict], float]:
    """Conditional FID (or fd_classifier) of ``target`` generated from the subset ``setting``."""
    mods, tgt = _letters(dataset, setting), LETTERS[dataset][target]
    return lambda ev: ev["metrics"][quality_key(ev)]["conditional"]["per_pair"][subset_key(ev, mods)][tgt]


def log_likelihood_reader(dataset: str, setting: str) -> Callable[[dict], float]:
    """``log p(X)`` with the posterior of a subset as proposal (``"X|x_M,x_S"``), or the joint one (``"X"``)."""
    if setting == "X":
        return lambda ev: ev["metrics"]["log_likelihood"]["joint"]
    mods = tuple(LETTERS[dataset][k.removeprefix("x_")] for k in setting.split("|", 1)[1].split(","))
    return lambda ev: ev["metrics"]["log_likelihood"]["per_subset"][subset_key(ev, mods)]


def mean_reader(readers: list[Callable[[dict], float]]) -> Callable[[dict], float]:
    """The mean of other columns' values (the papers' "Avg." columns); missing when any of them is."""
    return lambda ev: statistics.fmean(r(ev) for r in readers)


# --------------------------------------------------------------------------------------------------
# Columns and the registry
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One column of a table: how ours is read from evaluation.json and which paper cells it stands beside."""

    key: str  # the column's id within its item (and its header)
    reader: Callable[[dict], float] | None  # evaluation.json -> value; None: poolvae.evaluate does not compute it
    higher: bool = True  # higher is better (ranks, Kendall's tau)
    paper: dict | None = None  # filters of paper_numbers.cells (metric, setting, target); None: no paper value
    digits: int | None = None  # decimals shown; None: 2 for quality columns, 3 otherwise

    @property
    def ndigits(self) -> int:
        """Decimals shown in the rendered tables."""
        return self.digits if self.digits is not None else (2 if "quality" in self.key else 3)


def read(column: Column, ev: dict) -> float | None:
    """The column's value in one evaluation, None where the evaluation does not hold it (or it is not finite)."""
    if column.reader is None:
        return None
    try:
        v = column.reader(ev)
    except (KeyError, TypeError, IndexError, statistics.StatisticsError):
        return None
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _best_betas(dataset: str) -> dict[str, float]:
    """Each method's best beta on ``dataset`` as HEL Table 5 prints it."""
    return {c["method"]: float(c["mean"]) for c in paper_numbers.cells("hel-table5", dataset=dataset)}


#: HEL Table 5: the beta each model is evaluated at in HEL Tables 1-3 and Figs. 4 and 9.
BEST_BETA: dict[str, dict[str, float]] = {d: _best_betas(d) for d in ("polymnist", "cub", "celeba")}

HEL_SEEDS = {"ci": (0,), "cpu": (0,), "paper": (0, 1, 2)}  # HEL B.3: three independent runs
WB_SEEDS = {"ci": (0,), "cpu": (0,), "paper": (0, 1, 2, 3, 4)}  # WB App. B: five runs


def _metric_column(metric: str, paper_item: str | None) -> Column:
    """A column of one of :data:`METRICS`, facing the paper's cell of the same metric and setting."""
    reader, higher = METRICS[metric]
    paper = None
    if paper_item and metric in PAPER_METRIC:
        name, setting = PAPER_METRIC[metric]
        paper = {"metric": name, "setting": setting}
    return Column(metric, reader, higher, paper)


#: PolyMNIST's headline beta (HEL Table 8's text, WB App. B.1) and the seeds its runs get per scale where they differ
#: from the item's (issue #18: three seeds at beta 2.5 at cpu, one elsewhere; the paper scale has three everywhere).
HEADLINE_BETA = 2.5
HEADLINE_SEEDS = {"cpu": (0, 1, 2)}


@dataclass(frozen=True)
class Experiment:
    """One table or figure: its runs per scale and how it is summarised."""

    id: str
    kind: str  # "table" | "figure"
    dataset: str  # base data set: polymnist, celeba, cub, mnist-svhn-text
    methods: tuple[str, ...]
    betas: tuple[float, ...]  # the paper's grid
    metrics: tuple[str, ...]  # keys of METRICS (tables) or sections of by_size (curves)
    description: str
    cpu_betas: tuple[float, ...] | None = None  # a coarser grid below paper scale (None: the paper's)
    seeds: dict[str, tuple[int, ...]] = field(default_factory=lambda: {"ci": (0,), "cpu": (0,), "paper": (0, 1, 2)})
    paper_item: str | None = None  # results/paper/<id>.json
    curves: bool = False  # summarise by number of inputs (figures of curves)
    columns: tuple[Column, ...] = ()  # table columns; () builds them from ``metrics``
    method_betas: dict[str, float] | None = None  # one beta per method (HEL Table 5) instead of the grid
    notes: tuple[str, ...] = ()  # how our columns differ from the paper's; printed under the table
    samples: bool = False  # drawn from each run's samples.npz (hel-fig4, hel-fig9), not from metrics
    panels: tuple[str, ...] = ()  # sample items: the poolvae.evaluate.PANELS they draw (); (): the PolyMNIST plan
    per_attribute: str = ""  # "latent" | "coherence": CelebA per-attribute scores of evaluation.json (HEL Figs. 14-15)
    selection: dict[str, tuple[tuple[float, ...], str]] | None = None  # hel-table5: data set -> (grid, criterion)

    def table_columns(self) -> tuple[Column, ...]:
        """The columns of a table item."""
        return self.columns or tuple(_metric_column(m, self.paper_item) for m in self.metrics)

    def blocks(self, scale: str) -> list[tuple[str, dict[str, float]]]:
        """The item's blocks at ``scale``: (label, {method: beta}), one per beta of a grid, or one ``best``
        block when each method has its own beta."""
        if self.method_betas is not None and (scale == "paper" or self.cpu_betas is None):
            return [("best", {m: self.method_betas[m] for m in self.methods})]
        betas = self.betas if scale == "paper" or self.cpu_betas is None else self.cpu_betas
        return [(f"{b:g}", dict.fromkeys(self.methods, b)) for b in betas]

    def seeds_at(self, scale: str, beta: float, dataset: str | None = None) -> tuple[int, ...]:
        """The seeds of the item's runs at ``beta``: the scale's, and :data:`HEADLINE_SEEDS` at the beta both papers
        headline on PolyMNIST (:data:`HEADLINE_BETA`) where that scale has them (cpu: three, for intervals). Sample
        items draw one run per method and keep the scale's seeds."""
        headline = (dataset or self.dataset) == "polymnist" and beta == HEADLINE_BETA
        if headline and not self.samples and scale in HEADLINE_SEEDS:
            return HEADLINE_SEEDS[scale]
        return self.seeds[scale]

    def runs(self, scale: str) -> list[TrainConfig]:
        """Every run this item needs at ``scale``."""
        if self.selection is not None:
            return [make_config(dataset_at(d, scale), m, scale, beta=b, seed=s)
                    for d, (grid, _) in self.selection.items() for m in self.methods for b in grid
                    for s in self.seeds_at(scale, b, d)]
        blocks = self.blocks(scale)
        return [make_config(dataset_at(self.dataset, scale), m, scale, beta=b, seed=s)
                for m in self.methods for b in dict.fromkeys(blk[m] for _, blk in blocks)
                for s in self.seeds_at(scale, b)]


def _table_columns(item: str) -> tuple[Column, ...]:
    """The columns of the tables whose metrics need a subset, a target or an average (see each item's notes)."""
    if item == "hel-table1":
        return (Column("colour_coherence", METRICS["colour_coherence"][0], True,
                       {"metric": "coherence", "setting": "conditional"}),
                Column("quality/text→img", quality_pair_reader("cub", "T", "I"), False,
                       {"metric": "fid", "setting": "conditional"}))
    if item in ("hel-table2", "hel-table4"):
        cols = tuple(_metric_column(m, item) for m in ("coherence/conditional", "quality/conditional",
                                                        "coherence/unconditional", "quality/unconditional"))
        if item == "hel-table2":
            return cols
        return cols + _table_columns("hel-table3")
    if item == "hel-table3":
        return tuple(Column(f"latent/{s}", latent_reader("celeba", s), True,
                            {"metric": "latent_accuracy", "setting": s}) for s in ("I", "T", "I,T"))
    if item == "wb-table1":
        cols = tuple(Column(f"latent/{s}", latent_reader("mnist-svhn-text", s), True,
                            {"metric": "latent_accuracy", "setting": s}, 2)
                     for s in ("M", "S", "T", "M,S", "M,T", "S,T", "M,S,T"))
        return cols + (Column("latent/avg", mean_reader([c.reader for c in cols]), True,
                              {"metric": "latent_accuracy", "setting": "avg"}, 2),)
    if item == "wb-table2":
        pairs = [("M", "S"), ("M", "T"), ("M", "S,T"), ("S", "M"), ("S", "T"), ("S", "M,T"), ("T", "M"), ("T", "S"),
                 ("T", "M,S")]
        return tuple(Column(f"coherence/{s}→{t}", pair_reader("mnist-svhn-text", s, t), True,
                            {"metric": "coherence", "setting": s, "target": t}, 2) for t, s in pairs) + (
            Column("coherence/avg", METRICS["coherence/conditional"][0], True,
                   {"metric": "coherence", "setting": "avg"}, 2),)
    if item == "wb-table3":
        return tuple(Column(f"log_likelihood/{s}", log_likelihood_reader("mnist-svhn-text", s), True,
                            {"metric": "log_likelihood", "setting": s}, 1)
                     for s in ("X", "X|x_M", "X|x_S", "X|x_T", "X|x_M,x_S", "X|x_M,x_T", "X|x_S,x_T"))
    if item == "wb-table4":
        cols = tuple(Column(f"latent/{s}", latent_reader("celeba", s), True,
                            {"metric": "latent_average_precision", "setting": s}, 2) for s in ("I", "T", "I,T")) + \
            tuple(Column(f"coherence/{s}→{t}", pair_reader("celeba", s, t), True,
                         {"metric": "coherence_average_precision", "setting": s, "target": t}, 2)
                  for s, t in (("I", "T"), ("T", "I")))
        return cols + (Column("avg", mean_reader([c.reader for c in cols]), True,
                              {"metric": "average_precision", "setting": "avg"}, 2),)
    raise ValueError(f"no columns for {item!r}")


_CELEBA_NOTES = (
    "CelebA coherence and latent scores are mean average precision over the 40 attributes (poolvae.evaluate), "
    "as WB Table 4 states; HEL calls its numbers accuracy without saying how 40 attributes are averaged.",
    "CelebA unconditional coherence is the share of (prior sample, attribute) pairs on which the image and text "
    "classifiers agree (poolvae.metrics.attribute_agreement); HEL does not define it for 40 attributes.",
)
_MST_NOTE = ("MNIST-SVHN-Text at beta 5 (WB App. B.2); below paper scale the same data set, cut to a seeded "
             "subset at ci.")

#: HEL Table 5 criterion: the paper selects "via cross-validation" without naming the score; ours picks the beta
#: with the best value of this column (ties: the smaller beta).
SELECTION_NOTE = ("HEL B.3 selects beta 'via cross-validation' without naming the score; here the beta with the "
                  "highest conditional coherence (CUB: colour coherence) on the evaluation set is chosen, ties to "
                  "the smaller beta. Applied to the paper's own Table 8 this rule gives Table 5's PolyMNIST beta for "
                  "3 of 7 methods, so disagreement in the beta column is expected.")


EXPERIMENTS: dict[str, Experiment] = {e.id: e for e in (
    Experiment("hel-table8", "table", "polymnist", POLYMNIST_METHODS, (1.0, 2.5, 5.0, 10.0),
               ("coherence/conditional", "quality/conditional", "coherence/unconditional", "quality/unconditional"),
               "PolyMNIST coherence and quality per beta (HEL Table 8)", paper_item="hel-table8"),
    Experiment("hel-fig3", "figure", "polymnist", POLYMNIST_METHODS, (1.0, 2.5, 5.0, 10.0),
               ("coherence/conditional", "coherence/unconditional", "log_likelihood/joint", "quality/conditional"),
               "PolyMNIST trade-offs between coherence, log-likelihood and quality (HEL Fig. 3)"),
    Experiment("hel-fig6", "figure", "polymnist", POLYMNIST_METHODS,
               (3e-4, 3e-3, 3e-2, 3e-1, 1.0, 2.5, 3.0, 5.0, 10.0),
               ("coherence/conditional", "quality/conditional", "log_likelihood/joint"),
               "PolyMNIST performance across beta (HEL Fig. 6)", cpu_betas=(3e-2, 3e-1, 1.0, 2.5, 5.0, 10.0)),
    Experiment("hel-fig5", "figure", "polymnist", POLYMNIST_METHODS, (2.5,), ("quality",),
               "PolyMNIST conditional quality by number of inputs at beta 2.5 (HEL Fig. 5)", curves=True),
    Experiment("hel-table7", "table", "polymnist", ("helvae", "helvae-learned"), (5.0,),
               ("coherence/conditional", "quality/conditional", "coherence/unconditional", "quality/unconditional"),
               "HELVAE with uniform vs learned pooling weights at beta 5 (HEL Table 7)", paper_item="hel-table7"),
    Experiment("wb-fig3", "figure", "polymnist", WB_METHODS, (2.5,), ("latent", "coherence", "log_likelihood"),
               "PolyMNIST latent accuracy, coherence and log-likelihood by number of inputs (WB Fig. 3); "
               "beta 2.5 as WB App. B.1 states, shared with hel-fig5", curves=True),
    Experiment("hel-fig4", "figure", "polymnist", POLYMNIST_METHODS, (1.0, 2.5, 5.0, 10.0), (),
               "PolyMNIST: the second modality generated from the other four, each model at its best beta "
               "(HEL Fig. 4); below paper scale all at beta 2.5", cpu_betas=(2.5,),
               method_betas=BEST_BETA["polymnist"], samples=True),
    Experiment("hel-fig9", "figure", "polymnist", POLYMNIST_METHODS, (1.0, 2.5, 5.0, 10.0), (),
               "PolyMNIST: the second modality generated from the first; first and third; first, third and "
               "fourth; and all but the second modality, each model at its best beta (HEL Fig. 9); below paper "
               "scale all at beta 2.5", cpu_betas=(2.5,), method_betas=BEST_BETA["polymnist"], samples=True),
    Experiment("hel-table1", "table", "cub", POLYMNIST_METHODS, (1.0, 2.5, 5.0), (),
               "CUB caption-to-image coherence and quality, each model at its best beta (HEL Table 1)",
               paper_item="hel-table1", columns=_table_columns("hel-table1"), method_betas=BEST_BETA["cub"],
               notes=("Coherence: the colour rule of Palumbo et al. on 10 images per colour caption (HEL B.2). "
                      "Quality: FID of images generated from captions; CUB has no coherence classifiers, so below "
                      "paper scale (FID off) the column stays empty.",
                      "The paper's MMVAE+ row is taken from the MMVAE+ release, not retrained (HEL B.3 note).")),
    Experiment("hel-table2", "table", "celeba", POLYMNIST_METHODS, (1.0, 2.5, 5.0), (),
               "Bimodal CelebA coherence and quality, each model at its best beta (HEL Table 2)",
               paper_item="hel-table2", columns=_table_columns("hel-table2"), method_betas=BEST_BETA["celeba"],
               notes=_CELEBA_NOTES),
    Experiment("hel-table3", "table", "celeba", POLYMNIST_METHODS, (1.0, 2.5, 5.0), (),
               "Bimodal CelebA latent representation (linear probe) per input subset, each model at its best beta "
               "(HEL Table 3)", paper_item="hel-table3", columns=_table_columns("hel-table3"),
               method_betas=BEST_BETA["celeba"], notes=_CELEBA_NOTES[:1]),
    Experiment("hel-table4", "table", "celeba", ("helvae", "mohelvae"), (1.0,), (),
               "HELVAE vs MoHELVAE on bimodal CelebA: coherence, quality and latent representation (HEL Table 4)",
               paper_item="hel-table4", columns=_table_columns("hel-table4"),
               notes=("Beta 1 for both: HELVAE's best CelebA beta (HEL Table 5); the paper gives none for MoHELVAE.",
                      *_CELEBA_NOTES)),
    Experiment("hel-table5", "table", "polymnist", POLYMNIST_METHODS, (1.0, 2.5, 5.0, 10.0), (),
               "The best beta of each model on PolyMNIST, CUB and CelebA (HEL Table 5)", paper_item="hel-table5",
               selection={"polymnist": ((1.0, 2.5, 5.0, 10.0), "coherence/conditional"),
                          "cub": ((1.0, 2.5, 5.0), "colour_coherence"),
                          "celeba": ((1.0, 2.5, 5.0), "coherence/conditional")},
               notes=(SELECTION_NOTE, "Grids: {1, 2.5, 5, 10} on PolyMNIST (HEL B.3), {1, 2.5, 5} on CUB and CelebA "
                      "(the captions of HEL Tables 1-3).")),
    Experiment("wb-table1", "table", "mnist-svhn-text", WB_METHODS, (5.0,), (),
               "MNIST-SVHN-Text latent representation (linear probe accuracy) per input subset (WB Table 1)",
               seeds=WB_SEEDS, paper_item="wb-table1", columns=_table_columns("wb-table1"),
               notes=(_MST_NOTE, "Avg.: the mean of our seven subset columns, as the paper's.")),
    Experiment("wb-table2", "table", "mnist-svhn-text", WB_METHODS, (5.0,), (),
               "MNIST-SVHN-Text conditional coherence per (input subset → generated modality) (WB Table 2)",
               seeds=WB_SEEDS, paper_item="wb-table2", columns=_table_columns("wb-table2"),
               notes=(_MST_NOTE, "Avg.: mean coherence over the nine (subset, target) pairs.")),
    Experiment("wb-table3", "table", "mnist-svhn-text", WB_METHODS, (5.0,), (),
               "MNIST-SVHN-Text test log-likelihood with the joint and each subset's posterior (WB Table 3)",
               seeds=WB_SEEDS, paper_item="wb-table3", columns=_table_columns("wb-table3"),
               notes=(_MST_NOTE, "X|x_M etc.: log p(X) importance-sampled with the posterior given that subset as "
                      "proposal (poolvae.evaluate, K samples per test point; K = 1000 at paper scale).")),
    Experiment("wb-table4", "table", "celeba", WB_METHODS, (2.5,), (),
               "Bimodal CelebA latent representation and conditional coherence, mean average precision (WB Table 4)",
               seeds=WB_SEEDS, paper_item="wb-table4", columns=_table_columns("wb-table4"),
               notes=("Beta 2.5 (WB App. B.3). Avg.: the mean of our five columns, as the paper's.",)),
)}

def _panel(given: str, targets: str = "img", captions: str = "") -> str:
    """The name of a :class:`poolvae.evaluate.Panel` (``img_given_text``)."""
    return f"{targets}_given_{captions or given}"


_SAMPLE_ITEMS = (
    Experiment("hel-fig10", "figure", "cub", POLYMNIST_METHODS, (1.0, 2.5, 5.0), (),
               "CUB: images generated from the colour captions of the coherence test ('this bird is completely "
               "<colour>'), each model at its best beta (HEL Fig. 10)", method_betas=BEST_BETA["cub"], samples=True,
               panels=(_panel("", captions="colours"),)),
    Experiment("hel-fig11", "figure", "cub", POLYMNIST_METHODS, (1.0, 2.5, 5.0), (),
               "CUB: four images generated from one test caption per model, each model at its best beta "
               "(HEL Fig. 11)", method_betas=BEST_BETA["cub"], samples=True, panels=(_panel("text"),)),
    Experiment("hel-fig12", "figure", "cub", POLYMNIST_METHODS, (1.0, 2.5, 5.0), (),
               "CUB: images generated from test captions, each model at its best beta (HEL Fig. 12)",
               method_betas=BEST_BETA["cub"], samples=True, panels=(_panel("text"),)),
    Experiment("hel-fig13", "figure", "celeba", ("mohelvae",), (1.0,), (),
               "Bimodal CelebA: faces generated from the attribute text above each column, MoHELVAE at beta 1 "
               "(HEL Fig. 13)", samples=True, panels=(_panel("text"),)),
    Experiment("hel-fig14", "figure", "celeba", ("helvae",), (1.0,), (),
               "Bimodal CelebA: linear-probe average precision per attribute given image, text or both, HELVAE "
               "at beta 1 (HEL Fig. 14)", per_attribute="latent"),
    Experiment("hel-fig15", "figure", "celeba", ("helvae",), (1.0,), (),
               "Bimodal CelebA: conditional coherence (average precision) per attribute of images and texts "
               "generated from image, text or both, HELVAE at beta 1 (HEL Fig. 15)", per_attribute="coherence"),
    Experiment("wb-fig4", "figure", "celeba", ("mwbvae",), (2.5,), (),
               "Bimodal CelebA: faces generated from the attribute text above each column, MWB-VAE at beta 2.5 "
               "(WB Fig. 4)", seeds=WB_SEEDS, samples=True, panels=(_panel("text"),)),
    *(Experiment(f"wb-figS{k}", "figure", "polymnist", ("mwbvae",), (2.5,), (),
                 f"PolyMNIST: the first modality generated from {what}, several draws per column, MWB-VAE at beta "
                 f"2.5 (WB Fig. S{k})", seeds=WB_SEEDS, samples=True, panels=(_panel(given, "m0"),))
      for k, given, what in ((5, "m2", "the third"), (6, "m1+m2+m3", "the second to fourth"),
                             (7, "m1+m2+m3+m4", "the other four"))),
    Experiment("wb-figS8", "figure", "mnist-svhn-text", ("mwbvae", "mvae", "mmvae", "mopoe"), (5.0,), (),
               "MNIST-SVHN-Text: prior samples of MNIST, SVHN and text per model at beta 5 (WB Fig. S8)",
               seeds=WB_SEEDS, samples=True, panels=(_panel("prior", "mnist+svhn+text"),)),
    Experiment("wb-figS9", "figure", "mnist-svhn-text", ("mwbvae", "mvae", "mmvae", "mopoe"), (5.0,), (),
               "MNIST-SVHN-Text: MNIST digits generated from SVHN, from text and from both, one column per digit, "
               "per model at beta 5 (WB Fig. S9)", seeds=WB_SEEDS, samples=True,
               panels=tuple(_panel(g, "mnist") for g in ("svhn", "text", "svhn+text"))),
    Experiment("wb-figS10", "figure", "celeba", ("mwbvae",), (2.5,), (),
               "Bimodal CelebA: conditional coherence (average precision) per attribute of images and texts "
               "generated from image, text or both, MWB-VAE at beta 2.5 (WB Fig. S10)", seeds=WB_SEEDS,
               per_attribute="coherence"),
    Experiment("wb-figS11", "figure", "celeba", ("mwbvae",), (2.5,), (),
               "Bimodal CelebA: linear-probe average precision per attribute given image, text or both, MWB-VAE "
               "at beta 2.5 (WB Fig. S11)", seeds=WB_SEEDS, per_attribute="latent"),
    Experiment("wb-figS12", "figure", "celeba", ("mwbvae",), (2.5,), (),
               "Bimodal CelebA: faces generated from (a) the text, (b) the image and the text, MWB-VAE at beta 2.5 "
               "(WB Fig. S12)", seeds=WB_SEEDS, samples=True, panels=(_panel("text"), _panel("img+text"))),
)
EXPERIMENTS.update({e.id: e for e in _SAMPLE_ITEMS})

#: Items of DESIGN.md made elsewhere: id -> how (listed by ``python -m poolvae.experiments list``).
ELSEWHERE: dict[str, str] = {
    "hel-fig1": "exact: make reproduce-hel-fig1 (poolvae.figures)",
    "hel-fig2": "exact: make reproduce-hel-fig2 (poolvae.figures)",
    "hel-fig7": "exact: make reproduce-hel-fig7 (poolvae.figures)",
    "wb-fig2": "exact: make reproduce-wb-fig2 (poolvae.figures)",
    "hel-fig8": "data: make reproduce-hel-fig8 (poolvae.datasets)",
    "hel-table6": "timing: make reproduce-hel-table6 (poolvae.timing)",
}

def get_experiment(item: str) -> Experiment:
    """Look an item up; an unknown id lists the valid ones."""
    if item not in EXPERIMENTS:
        raise ValueError(f"unknown item {item!r}; valid: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[item]


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------

def stale_reason(cfg: TrainConfig, run_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR) -> str | None:
    """Why the run in ``run_dir`` no longer is run ``cfg`` as today's code makes it, or None when it is.

    Stale: a finished run whose ``config.json`` differs from ``cfg`` (a default changed since, e.g. the reference
    defaults of the fidelity issue, or the cpu scale's budget), or an evaluation made with other settings whose
    checkpoint is not here to redo it (a committed run in a clone). Such a run keeps its committed numbers, marked
    stale in every table, until ``--retrain-stale`` trains it again.
    """
    from .evaluate import make_settings, settings_differences

    metrics, config = Path(run_dir) / "metrics.json", Path(run_dir) / "config.json"
    if not (metrics.exists() and config.exists() and read_json(metrics).get("finished")):
        return None
    diff = config_differences(stored_config(read_json(config)), cfg)
    evaluation = Path(run_dir) / "evaluation.json"
    if not diff and evaluation.exists() and not checkpoint_file(cfg, checkpoint_dir).exists():
        diff = settings_differences(read_json(evaluation), make_settings(cfg.scale))
    return _differences_text(diff)


def _differences_text(diff: dict[str, tuple]) -> str | None:
    """:func:`poolvae.train.config_differences` in words (``"epochs: 60 there, 65 now"``), or None when empty."""
    return ", ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in diff.items()) or None


def interrupted_elsewhere(cfg: TrainConfig, checkpoint_dir: Path = CHECKPOINT_DIR) -> tuple[str | None, bool]:
    """(why, extendable): why the checkpoint of run ``cfg`` (finished or interrupted) is not this run (its config
    differs; None when there is no checkpoint or it is this run's), and whether it becomes this run by training on
    (only its epochs grew). A run made before a default changed: ``--retrain-stale`` trains it on, or afresh."""
    ckpt = checkpoint_file(cfg, checkpoint_dir)
    if not ckpt.exists():
        return None, False
    header = checkpoint_header(ckpt)
    stored = stored_config(header["config"])
    why = _differences_text(config_differences(stored, cfg))
    return why, bool(why) and resumable(stored, cfg, header["epoch"], extend=True)


def run_one(cfg: TrainConfig, results_dir: Path = RUNS_DIR, checkpoint_dir: Path = CHECKPOINT_DIR,
            evaluate_kwargs: dict | None = None, progress: bool = False, retrain_stale: bool = False,
            evaluate: bool = True) -> Path:
    """Train (or resume, or skip) one run, then evaluate it (skipped when up to date; not at all without
    ``evaluate``, which returns the run folder).

    A stale run (:func:`stale_reason`) is kept as it is, or with ``retrain_stale`` brought up to date: trained on
    from its checkpoint when only its number of epochs grew (:func:`poolvae.train.resumable`: the same trajectory,
    longer; then evaluated again), else deleted and trained again.
    """
    import shutil

    from .evaluate import evaluate_run  # evaluation needs classifiers; import only when running

    run_dir = Path(results_dir) / run_path(cfg)
    reason = stale_reason(cfg, run_dir, checkpoint_dir)
    if reason and not retrain_stale:
        print(f"keep {run_dir}: stale ({reason}); --retrain-stale trains it again", flush=True)
        return run_dir / "evaluation.json"
    extend = False
    if retrain_stale:  # a finished or interrupted run whose checkpoint was made with other settings
        why, extend = interrupted_elsewhere(cfg, checkpoint_dir)
        reason = reason or why
    if reason:
        print(f"{'extend' if extend else 'retrain'} {run_dir}: stale ({reason})", flush=True)
        if not extend:
            shutil.rmtree(run_dir, ignore_errors=True)
            checkpoint_file(cfg, checkpoint_dir).unlink(missing_ok=True)
    if not (run_dir / "metrics.json").exists() and not checkpoint_file(cfg, checkpoint_dir).exists():
        from .convergence import seed_run  # the diagnostic may have trained this very run already

        seed_run(cfg, results_dir, checkpoint_dir)
    run_dir = train(cfg, results_dir, checkpoint_dir, progress=progress, extend=extend)
    if not evaluate:
        return run_dir
    if extend:
        evaluate_kwargs = {**(evaluate_kwargs or {}), "force": True}  # the evaluation is of the shorter run
    return evaluate_run(run_dir, checkpoint_dir=checkpoint_dir, progress=progress, **(evaluate_kwargs or {}))


def check_data(cfgs: list[TrainConfig]) -> None:
    """Open every data set the runs train on (train and test split) before any training starts.

    A missing data set raises :func:`poolvae.datasets.get_dataset`'s FileNotFoundError, which says where
    to get it and where to put it, unchanged.
    """
    from . import datasets as ds

    for dataset, scale in dict.fromkeys((c.dataset, c.scale) for c in cfgs):
        for split in ("train", "test"):
            ds.get_dataset(dataset, split, scale=scale)


def _estimates(cfgs: list[TrainConfig], runs_dir: Path, checkpoint_dir: Path, retrain_stale: bool,
               evaluate: bool) -> dict[Path, float | None]:
    """{run path: estimated seconds (None: no estimate)} of the runs that train or evaluate
    (:mod:`poolvae.sweep_plan`), in order, for the ETA of several runs side by side. The ETA is not worth a sweep:
    when the plan cannot be made (a data set or a record unreadable) every run is without an estimate, and the
    runs themselves report the problem."""
    try:
        plans = plan(cfgs, runs_dir, checkpoint_dir, retrain_stale, evaluate)
    except (OSError, ValueError, KeyError, EOFError, RuntimeError, pickle.UnpicklingError) as err:
        # a record unreadable, or a checkpoint truncated (EOFError) or corrupt (torch.load's errors)
        print(f"no ETA: the plan could not be made ({type(err).__name__}: {err})", flush=True)
        return dict.fromkeys((run_path(c) for c in cfgs), None)
    return {run_path(p.cfg): p.seconds for p in plans if p.busy}


def _estimated_eta(estimates: dict[Path, float | None], jobs: int) -> str:
    """``"; ETA ..."`` of the runs not yet done from their estimates on ``jobs`` workers, naming how many have none
    (not counted); the runs in progress count whole, so it errs long. ``""`` when nothing is left."""
    if not estimates:
        return ""
    known = [s for s in estimates.values() if s is not None]
    unknown = len(estimates) - len(known)
    more = f" and {unknown} runs without an estimate" if unknown else ""
    return f"; ETA {duration_text(wall_seconds(known, jobs))}{more}"


class RunAction(str, enum.Enum):
    """What :func:`run_one` is about to do with a run, as :func:`run_state` finds it. The value is the action in
    words (what the sweep prints); :attr:`trains` and :attr:`evaluates` say what it costs
    (:mod:`poolvae.sweep_plan` reads them, not the words)."""

    KEEP = "kept (stale; --retrain-stale redoes it)"
    EXTEND = "training on to more epochs (stale), then evaluating"
    RETRAIN = "retraining (stale), then evaluating"
    CHECK = "trained; checking its evaluation is up to date"
    EVALUATE = "trained; evaluating"
    RESUME = "resuming its training, then evaluating"
    TRAIN = "training, then evaluating"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def trains(self) -> bool:
        """Whether the run trains (from scratch, from its checkpoint, or on to more epochs)."""
        return self in (RunAction.EXTEND, RunAction.RETRAIN, RunAction.RESUME, RunAction.TRAIN)

    @property
    def evaluates(self) -> bool:
        """Whether the run is evaluated (checking an existing evaluation is not counted: it redoes it only when
        it is out of date)."""
        return self not in (RunAction.KEEP, RunAction.CHECK)

    @property
    def busy(self) -> bool:
        """Whether :func:`run_one` does anything with the run (a kept stale run is left as it is)."""
        return self is not RunAction.KEEP


def run_state(cfg: TrainConfig, runs_dir: Path, checkpoint_dir: Path = CHECKPOINT_DIR,
              retrain_stale: bool = False) -> RunAction:
    """What :func:`run_one` is about to do with run ``cfg`` (``runs_dir``: the root of the run folders): train,
    resume, evaluate, check an evaluation, or keep a stale run (:class:`RunAction`)."""
    run_dir = Path(runs_dir) / run_path(cfg)
    metrics = run_dir / "metrics.json"
    if metrics.exists() and read_json(metrics).get("finished"):
        if stale_reason(cfg, run_dir, checkpoint_dir):
            if not retrain_stale:
                return RunAction.KEEP
            return RunAction.EXTEND if interrupted_elsewhere(cfg, checkpoint_dir)[1] else RunAction.RETRAIN
        return RunAction.CHECK if (run_dir / "evaluation.json").exists() else RunAction.EVALUATE
    return RunAction.RESUME if checkpoint_file(cfg, checkpoint_dir).exists() else RunAction.TRAIN


@contextmanager
def _one_thread(enabled: bool):
    """One torch thread and one BLAS/OpenMP thread inside the block (when ``enabled``), restored after.

    The ci scale's tensors are tiny: there a second thread only waits, and on a shared machine it spins. NumPy's
    OpenBLAS was the worst: the Frechet distances' 32 x 32 eigendecompositions took 26 ms each with two threads on
    a loaded two-core machine and 0.15 ms with one, which made a ci evaluation 10 s instead of 2.
    """
    if not enabled:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def _single_threaded_worker() -> None:
    """Initialiser of the ``local`` executor's workers at the ``ci`` scale or with several jobs: one torch and one
    BLAS thread each, so ``--jobs 2`` puts one run on each of two cores (:func:`_one_thread` says why)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)  # for the rest of the worker's life


def reproduce(item: str, scale: str, jobs: int = 1, executor: str = "serial", results_dir: Path = RESULTS_DIR,
              checkpoint_dir: Path = CHECKPOINT_DIR, evaluate_kwargs: dict | None = None,
              methods: list[str] | None = None, betas: list[float] | None = None,
              figures_dir: Path | None = None, retrain_stale: bool = False) -> dict:
    """Run every missing run of ``item`` at ``scale``, then render it (figures into ``figures_dir``, default
    :func:`render`'s); returns the summary.

    The data sets are opened first, so a missing one stops the item with its download instructions
    before any run trains. One line per run says which run of how many it is, what is done with it
    (:func:`run_state`) and, from the runs done so far, when the item will be done. At the ``ci`` scale every run
    uses one thread (:func:`_one_thread`; with ``--executor local --jobs 2``, one run per core).
    """
    exp = get_experiment(item)
    cfgs = [c for c in exp.runs(scale) if (not methods or c.method in methods) and (not betas or c.beta in betas)]
    execute(item, cfgs, scale, jobs, executor, results_dir, checkpoint_dir, evaluate_kwargs, retrain_stale)
    return render(item, scale, results_dir, figures_dir)


#: The trained PolyMNIST items, in the order :func:`sweep` renders them.
POLYMNIST_ITEMS = ("hel-table8", "hel-fig3", "hel-fig5", "hel-fig6", "hel-table7", "wb-fig3", "hel-fig4", "hel-fig9",
                   "hel-table5", "wb-figS5", "wb-figS6", "wb-figS7")
#: Methods :func:`sweep` trains last: their steps cost several times the others' (CoDEVAE decodes every subset).
SLOW_METHODS = ("codevae",)


def sweep_order(cfgs: list[TrainConfig]) -> list[TrainConfig]:
    """The runs of several items once each, in the order that makes results useful soonest: the headline beta's
    first seed, then the other betas of the main grid (1, 5, 10), then the headline's other seeds, then the rest
    (the extra betas of hel-fig6, HEL Table 7's learned weights); methods of :data:`SLOW_METHODS` after all others.
    The runs the convergence diagnostic trains (:func:`poolvae.convergence.covered`) start from its snapshots
    (:func:`poolvae.convergence.seed_run`): once its run is done (:func:`poolvae.convergence.diagnostic_complete`)
    they cost least and go first; while it still trains they wait until last, so that it has passed their epochs."""
    from .convergence import covered, diagnostic_complete

    unique = list({run_path(c): c for c in cfgs}.values())

    def rank(c: TrainConfig) -> tuple:
        group = (0 if c.beta == HEADLINE_BETA and c.seed == 0 else 1 if c.beta in (1.0, 5.0, 10.0) and c.seed == 0
                 else 2 if c.beta == HEADLINE_BETA else 3)
        diagnostic = 0 if not covered(c) else -1 if diagnostic_complete(c) else 1
        return (c.method in SLOW_METHODS, diagnostic, group)

    return sorted(unique, key=rank)  # stable: each group keeps the items' own order


def sweep_runs(items: tuple[str, ...] = POLYMNIST_ITEMS, scale: str = "cpu",
               datasets: tuple[str, ...] = ("polymnist-mini", "polymnist")) -> list[TrainConfig]:
    """The runs of :func:`sweep`, once each, in its order (:func:`sweep_order`); an unknown item raises."""
    for item in items:
        get_experiment(item)  # an unknown id fails before anything runs
    return sweep_order([c for item in items for c in get_experiment(item).runs(scale) if c.dataset in datasets])


def sweep_plan_lines(items: tuple[str, ...] = POLYMNIST_ITEMS, scale: str = "cpu", jobs: int = 1,
                     results_dir: Path = RESULTS_DIR, checkpoint_dir: Path = CHECKPOINT_DIR,
                     retrain_stale: bool = False, train_only: bool = False) -> list[str]:
    """What :func:`sweep` would do with each of its runs and about how long it would take on ``jobs`` workers
    (:mod:`poolvae.sweep_plan`), in words; runs nothing (``sweep --plan``, ``make sweep-plan``)."""
    cfgs = sweep_runs(items, scale)
    return plan_lines(plan(cfgs, Path(results_dir) / "runs", checkpoint_dir, retrain_stale, not train_only), jobs)


def sweep(items: tuple[str, ...] = POLYMNIST_ITEMS, scale: str = "cpu", jobs: int = 1, executor: str = "serial",
          results_dir: Path = RESULTS_DIR, checkpoint_dir: Path = CHECKPOINT_DIR, retrain_stale: bool = False,
          datasets: tuple[str, ...] = ("polymnist-mini", "polymnist"), train_only: bool = False) -> dict[str, dict]:
    """Every run of ``items`` on ``datasets`` at ``scale`` in one pool (:func:`sweep_order`), then each item
    rendered; returns {item: summary}. ``make sweep-polymnist SCALE=cpu JOBS=2`` is the cpu sweep of issue #18:
    hours on two cores, resumable (finished runs are kept, an interrupted one resumes from its checkpoint).
    ``train_only`` trains and renders nothing else: while a budget is provisional, runs trained now go on to the
    final one later (:func:`interrupted_elsewhere`) and are evaluated once, then."""
    cfgs = sweep_runs(items, scale, datasets)
    execute(f"sweep of {len(items)} items", cfgs, scale, jobs, executor, results_dir, checkpoint_dir, None,
            retrain_stale, evaluate=not train_only)
    return {} if train_only else {item: render(item, scale, results_dir) for item in items}


def execute(label: str, cfgs: list[TrainConfig], scale: str, jobs: int = 1, executor: str = "serial",
            results_dir: Path = RESULTS_DIR, checkpoint_dir: Path = CHECKPOINT_DIR, evaluate_kwargs: dict | None = None,
            retrain_stale: bool = False, evaluate: bool = True) -> None:
    """Train and evaluate the runs ``cfgs`` (each with :func:`run_one`; only train them without ``evaluate``), one
    line per run with an ETA; ``executor`` ``serial``, ``local`` (``jobs`` processes) or ``slurm``."""
    import time

    check_data(cfgs)
    runs_dir = Path(results_dir) / "runs"
    args = [(c, runs_dir, Path(checkpoint_dir), evaluate_kwargs, False, retrain_stale, evaluate) for c in cfgs]
    n = len(cfgs)
    print(f"{label}: {n} runs at scale {scale} ({executor}, jobs={jobs})", flush=True)
    start = time.perf_counter()
    if executor == "serial" or jobs <= 1 and executor != "slurm":
        states = [run_state(c, runs_dir, Path(checkpoint_dir), retrain_stale) for c in cfgs]  # a run changes no other
        busy = [s.busy for s in states]
        worked: list[float] = []  # seconds of the runs that trained or evaluated (kept ones take none)
        with _one_thread(scale == "ci"):
            for i, (a, state) in enumerate(zip(args, states, strict=True), 1):
                left = sum(busy[i - 1:])
                eta = (f"; ETA {duration_text(left * sum(worked) / len(worked))}" if worked and left
                       else "; ETA after this run" if busy[i - 1] else "")
                print(f"run {i}/{n} {run_path(a[0])}: {state}{eta}", flush=True)
                t0 = time.perf_counter()
                run_one(*a)
                if busy[i - 1]:
                    worked.append(time.perf_counter() - t0)
    elif executor == "local":
        from concurrent.futures import ProcessPoolExecutor, as_completed
        one_thread = scale == "ci" or jobs > 1  # several runs side by side: one thread each, one run per core
        failed: list[str] = []
        estimates = _estimates(cfgs, runs_dir, Path(checkpoint_dir), retrain_stale, evaluate)
        with ProcessPoolExecutor(max_workers=jobs, initializer=_single_threaded_worker if one_thread else None) as pool:
            futures = {pool.submit(in_worker, run_one, *a): a[0] for a in args}
            try:
                for i, f in enumerate(as_completed(futures), 1):
                    estimates.pop(run_path(futures[f]), None)
                    eta = _estimated_eta(estimates, jobs) if i < n else ""
                    try:
                        f.result()
                    except (ValueError, FileNotFoundError, RuntimeError) as err:  # one run's problem: the rest go on
                        failed.append(f"{run_path(futures[f])}: {err}")
                        print(f"run {i}/{n} {run_path(futures[f])}: FAILED ({err}){eta}", flush=True)
                        continue
                    print(f"run {i}/{n} {run_path(futures[f])}: done{eta}", flush=True)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # an interrupt or a broken pool: start nothing new
                raise
        if failed:
            raise RuntimeError(f"{len(failed)} of {n} runs failed (the others finished):\n" + "\n".join(failed))
    elif executor == "slurm":
        import submitit
        ex = submitit.AutoExecutor(folder=Path(checkpoint_dir) / "submitit")
        ex.update_parameters(timeout_min=24 * 60, slurm_array_parallelism=jobs, gpus_per_node=1)
        jobs_ = ex.map_array(run_one, *zip(*args, strict=True))
        for i, (j, c) in enumerate(zip(jobs_, cfgs, strict=True), 1):
            j.result()
            print(f"run {i}/{n} {run_path(c)}: done (slurm job {j.job_id})", flush=True)
    else:
        raise ValueError(f"unknown executor {executor!r}; valid: serial, local, slurm")
    print(f"{label}: {n} runs done in {duration_text(time.perf_counter() - start)}"
          + ("; rendering" if evaluate else " (trained, not evaluated)"), flush=True)


# --------------------------------------------------------------------------------------------------
# Collecting and summarising
# --------------------------------------------------------------------------------------------------

def run_folder(cfg: TrainConfig, results_dir: Path = RESULTS_DIR) -> Path:
    """The folder of run ``cfg`` under ``results_dir``:
    ``<results_dir>/runs/<scale>/<dataset>/<method>/beta=<b>/seed=<s>``, where :func:`poolvae.train.train` writes
    its metrics and :func:`poolvae.evaluate.evaluate_run` its evaluation."""
    return Path(results_dir) / "runs" / run_path(cfg)


def collect(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR) -> dict:
    """Evaluations of the item's runs that exist: {(method, beta): [evaluation dicts over seeds]}
    ({(dataset, method, beta): [...]} for a beta selection such as hel-table5)."""
    found: dict[tuple, list[dict]] = {}
    for cfg in exp.runs(scale):
        f = run_folder(cfg, results_dir) / "evaluation.json"
        if f.exists():
            key = (cfg.method, cfg.beta) if exp.selection is None else (cfg.dataset, cfg.method, cfg.beta)
            found.setdefault(key, []).append(read_json(f))
    return found


def _stats(values: list[float]) -> dict:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None, "n": len(vals)}


def ranks(values: dict[str, float | None], higher_is_better: bool) -> dict[str, int]:
    """Competition ranks (1 = best; ties share a rank) of the methods that have a value."""
    have = {k: v for k, v in values.items() if v is not None}
    order = sorted(have.values(), reverse=higher_is_better)
    return {k: 1 + order.index(v) for k, v in have.items()}


def kendall_tau(a: dict[str, int], b: dict[str, int]) -> float | None:
    """Kendall's tau between two rankings over their common methods (None below 3 methods)."""
    from scipy.stats import kendalltau

    common = sorted(set(a) & set(b))
    if len(common) < 3:
        return None
    tau = kendalltau([a[m] for m in common], [b[m] for m in common]).statistic
    return None if math.isnan(tau) else float(tau)


#: Bootstrap draws behind each interval of Kendall's tau (seeded: the same interval every time).
TAU_DRAWS = 1000


def _mean_draws(col: Column, evs: list[dict], rng, n: int):
    """``n`` bootstrap draws of one cell's mean over seeds, or None without a value.

    Seeds are resampled with replacement. A coherence is also resampled over its test points: each conditional
    (subset, target) pair's coherence is a proportion over ``samples.conditional`` test points, redrawn as a
    binomial proportion (the bootstrap of those test points, pair by pair), then averaged over pairs as the
    evaluation does; unconditional coherence likewise over ``samples.unconditional`` prior draws. Other metrics
    vary over seeds only (their per-point values are not stored).
    """
    import numpy as np

    per_seed = []
    for ev in evs:
        v = read(col, ev)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        try:
            if col.key == "coherence/conditional":
                pairs = [x for t in ev["metrics"]["coherence"]["conditional"]["per_pair"].values() for x in t.values()]
                k = ev["samples"]["conditional"]
                per_seed.append(rng.binomial(k, np.clip(pairs, 0, 1), size=(n, len(pairs))).mean(1) / k)
                continue
            if col.key == "coherence/unconditional":
                k = ev["samples"]["unconditional"]
                per_seed.append(rng.binomial(k, min(max(v, 0.0), 1.0), size=n) / k)
                continue
        except (KeyError, TypeError, AttributeError):
            pass
        per_seed.append(np.full(n, float(v)))
    if not per_seed:
        return None
    draws = np.stack(per_seed)  # (seeds, n)
    pick = rng.integers(0, len(per_seed), size=(len(per_seed), n))
    return np.take_along_axis(draws, pick, 0).mean(0)


def mean_interval(col: Column, evs: list[dict], draws: int = TAU_DRAWS, seed: int = 0) -> list[float] | None:
    """95% bootstrap interval of one cell's mean (:func:`_mean_draws`: seeds, and test points for coherence);
    None when nothing varies (one seed of a metric whose per-point values are not stored)."""
    import numpy as np

    v = _mean_draws(col, evs, np.random.default_rng(seed), draws)
    if v is None or float(v.min()) == float(v.max()):
        return None
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def tau_interval(col: Column, methods, method_beta: dict, found: dict, paper_rank: dict[str, int],
                 draws: int = TAU_DRAWS, seed: int = 0) -> list[float] | None:
    """The 95% bootstrap interval of Kendall's tau between the paper's ranks and ours (:func:`_mean_draws`); None
    when nothing varies (one seed of a metric whose per-point values are not stored)."""
    import numpy as np

    if len(paper_rank) < 3:
        return None
    rng = np.random.default_rng(seed)
    samples = {m: _mean_draws(col, found.get((m, method_beta[m]), []), rng, draws) for m in methods}
    samples = {m: v for m, v in samples.items() if v is not None}
    if all(float(v.min()) == float(v.max()) for v in samples.values()):
        return None  # one seed and no per-point resampling: no interval to give
    taus = [kendall_tau(paper_rank, ranks({m: float(v[i]) for m, v in samples.items()}, col.higher))
            for i in range(draws)]
    taus = [t for t in taus if t is not None]
    if not taus:
        return None
    return [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))]


def _header(exp: Experiment, scale: str, found: dict, results_dir: Path = RESULTS_DIR) -> dict:
    """The fields every summary starts with."""
    datasets = [dataset_at(d, scale) for d in exp.selection] if exp.selection else [dataset_at(exp.dataset, scale)]
    out = {"item": exp.id, "description": exp.description, "scale": scale, "dataset": ", ".join(datasets),
           "runs_expected": len(exp.runs(scale)), "runs_found": sum(len(v) for v in found.values())}
    stand_ins = [d for d in datasets if d in STAND_INS.values() and d != "polymnist-mini"]
    if stand_ins:  # polymnist-mini's caveat is in every cpu table's header already
        out["stand_in"] = (f"{', '.join(stand_ins)} is an offline stand-in built on this machine, not the paper's data "
                           "set: only ranks compare with the paper, not values")
    own = {m: f"{why} ({', '.join(f'{k} {v}' for k, v in METHOD_AT_SCALE[key].items())})"
           for m in exp.methods for key in [(base_name(exp.dataset), m, scale)]
           if (why := METHOD_AT_SCALE_REASONS.get(key))}
    if own:  # a method trained to a budget of its own at this scale: every table says so
        out["own_budget"] = own
    stale = {str(run_path(c)): r for c in exp.runs(scale)
             if (r := stale_reason(c, run_folder(c, results_dir), CHECKPOINT_DIR))}
    if stale:  # only then: items without stale runs keep their files as they were
        out["runs_stale"] = stale
    return out


def summarise(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR) -> dict:
    """The numbers behind an item: per (beta, method, metric) mean/std over seeds, ranks, paper values."""
    if exp.selection is not None:
        return summarise_selection(exp, scale, results_dir)
    if exp.samples:
        return summarise_samples(exp, scale, results_dir)
    if exp.per_attribute:
        return summarise_attributes(exp, scale, results_dir)
    found = collect(exp, scale, results_dir)
    blocks = exp.blocks(scale)
    betas = sorted({b for _, blk in blocks for b in blk.values()})
    out = {**_header(exp, scale, found, results_dir), "betas": betas, "methods": list(exp.methods)}
    if exp.curves:
        out["curves"] = {}
        for section in exp.metrics:
            for (method, beta), evs in found.items():
                sizes: dict[int, list[float]] = {}
                for ev in evs:
                    for k, v in by_size(ev, section).items():
                        sizes.setdefault(k, []).append(v)
                out["curves"].setdefault(section, {}).setdefault(f"{beta:g}", {})[method] = {
                    str(k): _stats(v) for k, v in sorted(sizes.items())}
        return out
    cells, agreement, intervals = {}, {}, {}
    columns = exp.table_columns()
    for label, method_beta in blocks:
        for col in columns:
            ours = {m: _stats([read(col, ev) for ev in found.get((m, method_beta[m]), [])]) for m in exp.methods}
            ours_rank = ranks({m: s["mean"] for m, s in ours.items()}, col.higher)
            paper = _paper_values(exp, col, method_beta)
            paper_rank = ranks({m: p["mean"] for m, p in paper.items()}, col.higher) if paper else {}
            for m in exp.methods:
                cells.setdefault(label, {}).setdefault(col.key, {})[m] = {
                    "ours": ours[m], "ours_rank": ours_rank.get(m), "paper": paper.get(m),
                    "paper_rank": paper_rank.get(m)}
                iv = mean_interval(col, found.get((m, method_beta[m]), []))
                if iv is not None:
                    cells[label][col.key][m]["ours"]["interval"] = iv
            agreement.setdefault(label, {})[col.key] = kendall_tau(paper_rank, ours_rank)
            intervals.setdefault(label, {})[col.key] = tau_interval(col, exp.methods, method_beta, found, paper_rank)
    out["cells"], out["kendall_tau"] = cells, agreement
    out["kendall_tau_interval"] = intervals
    out["kendall_tau_interval_method"] = (f"95% percentile interval over {TAU_DRAWS} bootstrap draws: seeds resampled, "
                                          "coherence also resampled over its test points (poolvae.experiments."
                                          "_mean_draws)")
    if exp.method_betas is not None and blocks[0][0] == "best":
        out["block_betas"] = {label: {m: b for m, b in blk.items()} for label, blk in blocks}
    if found and any("quality" in c.key for c in columns):
        ev = next(iter(found.values()))[0]
        if quality_key(ev) in ev.get("metrics", {}):
            out["quality_metric"] = quality_key(ev)
    _add_notes(out, exp, columns, found)
    return out


def _add_notes(out: dict, exp: Experiment, columns: tuple[Column, ...], found: dict) -> None:
    """Notes of the item, and which columns are not computed here or absent from every evaluation found.

    Items that have neither (hel-table7, hel-table8) get no new keys, so their files stay as they were.
    """
    not_computed = [c.key for c in columns if c.reader is None]
    evs = [ev for v in found.values() for ev in v]
    absent = [c.key for c in columns if c.reader is not None and evs and all(read(c, ev) is None for ev in evs)]
    if exp.notes:
        out["notes"] = list(exp.notes)
    if not_computed:
        out["not_computed"] = not_computed
    if absent:
        out["absent"] = absent


def _paper_values(exp: Experiment, column: Column, method_beta: dict[str, float]) -> dict[str, dict]:
    """The paper's mean/std per method for a column (at each method's beta, where the table has several)."""
    if not exp.paper_item or not column.paper:
        return {}
    out = {}
    for c in paper_numbers.cells(exp.paper_item, **column.paper):
        if c["method"] not in method_beta:
            continue
        if c.get("beta") is not None and float(c["beta"]) != method_beta[c["method"]]:
            continue
        out[c["method"]] = {"mean": c["mean"], "std": c.get("std")}
    return out


def select_beta(values: dict[float, float | None], higher_is_better: bool = True) -> float | None:
    """The beta with the best value (ties: the smaller beta); None when no beta has a value."""
    have = {b: v for b, v in values.items() if v is not None}
    if not have:
        return None
    sign = 1 if higher_is_better else -1
    return min(have, key=lambda b: (-sign * have[b], b))


def _paper_rule_check(exp: Experiment) -> dict:
    """Our selection rule applied to the paper's own PolyMNIST numbers (HEL Table 8) against HEL Table 5."""
    _, criterion = exp.selection["polymnist"]
    name, setting = PAPER_METRIC[criterion]
    agree = []
    for m in exp.methods:
        vals = {float(c["beta"]): c["mean"] for c in paper_numbers.cells("hel-table8", method=m, metric=name,
                                                                             setting=setting)}
        agree.append(select_beta(vals) == BEST_BETA["polymnist"].get(m))
    return {"table": "hel-table8", "criterion": criterion, "agree": sum(agree), "of": len(agree)}


def summarise_selection(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR) -> dict:
    """HEL Table 5: per data set and method, the paper's best beta, ours, and the criterion at each beta."""
    found = collect(exp, scale, results_dir)
    out = {**_header(exp, scale, found, results_dir), "methods": list(exp.methods), "selection": {}}
    for dataset, (grid, criterion) in exp.selection.items():
        col = _metric_column(criterion, None)
        d = dataset_at(dataset, scale)
        paper = BEST_BETA.get(dataset, {})
        rows = {}
        for m in exp.methods:
            values = {b: _stats([read(col, ev) for ev in found.get((d, m, b), [])]) for b in grid}
            ours = select_beta({b: s["mean"] for b, s in values.items()}, col.higher)
            rows[m] = {"paper_beta": paper.get(m), "ours_beta": ours,
                       "criterion": {f"{b:g}": s for b, s in values.items()}}
        have = [r for r in rows.values() if r["ours_beta"] is not None and r["paper_beta"] is not None]
        out["selection"][dataset] = {"dataset": d, "grid": list(grid), "criterion": criterion, "rows": rows,
                                     "agree": sum(r["ours_beta"] == r["paper_beta"] for r in have), "of": len(have)}
    out["paper_rule_check"] = _paper_rule_check(exp)
    out["notes"] = list(exp.notes)
    return out


def sample_file(exp: Experiment) -> str:
    """The file in each run folder a sample item draws from: ``samples.npz``, or ``samples-wb.npz`` for
    PolyMNIST panels (:data:`poolvae.evaluate.PANELS_FILE`)."""
    from .evaluate import PANELS_FILE, SAMPLES_FILE

    return PANELS_FILE.get(exp.dataset, SAMPLES_FILE) if exp.panels else SAMPLES_FILE


def _lacking_panels(f: Path, panels: tuple[str, ...]) -> list[str]:
    """The panels of ``panels`` that the sample file ``f`` does not hold."""
    import numpy as np

    with np.load(f) as z:
        have = {str(p) for p in z["panels"]} if "panels" in z.files else set()
    return [p for p in panels if p not in have]


def summarise_samples(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR) -> dict:
    """Sample items (hel-fig4, hel-fig9, hel-fig10..13, wb-fig4, wb-figS5..S9, S12): each method's run and its
    sample file (written by poolvae.evaluate), or the runs that lack one or its panels."""
    from .artefacts import repo_relative

    name = sample_file(exp)
    (_, method_beta), = exp.blocks(scale)
    out = {**_header(exp, scale, {}, results_dir), "methods": list(exp.methods), "samples": {}, "missing": []}
    if exp.panels:
        out["panels"] = list(exp.panels)
    seed = exp.seeds[scale][0]
    for m in exp.methods:
        cfg = make_config(dataset_at(exp.dataset, scale), m, scale, beta=method_beta[m], seed=seed)
        run_dir = run_folder(cfg, results_dir)
        f = run_dir / name
        lacking = _lacking_panels(f, exp.panels) if f.exists() and exp.panels else []
        if f.exists() and not lacking:
            out["samples"][m] = {"beta": cfg.beta, "seed": seed, "file": repo_relative(f)}
        else:
            # a folder without evaluation.json is a run still training (or never finished): not a run yet,
            # so the rendered text does not depend on what is in progress on the machine that renders
            why = (f"its {name} has no panel {', '.join(lacking)}" if f.exists()
                   else f"the run has no {name}" if (run_dir / "evaluation.json").exists() else "no evaluated run")
            out["missing"].append({"method": m, "beta": cfg.beta, "seed": seed, "run": repo_relative(run_dir),
                                   "why": why})
    out["runs_found"] = len(out["samples"])
    out["runs_expected"] = len(exp.methods)
    return out


def _attribute_panels(ev: dict, kind: str) -> dict[str, dict[str, list[float]]]:
    """CelebA per-attribute average precision of one evaluation: {input subset: {series: [AP per attribute]}};
    ``latent``: one series (``latent``); ``coherence``: each modality generated from the subset (those outside it
    from ``per_pair_per_attribute``, those in it from ``reconstruction_per_attribute``)."""
    if kind == "latent":
        return {s: {"latent": v} for s, v in ev["metrics"]["latent"]["per_subset_per_attribute"].items()}
    cond = ev["metrics"]["coherence"]["conditional"]
    out: dict[str, dict[str, list[float]]] = {}
    for part in ("per_pair_per_attribute", "reconstruction_per_attribute"):
        for s, by_target in cond.get(part, {}).items():
            out.setdefault(s, {}).update(by_target)
    return {s: {m: out[s][m] for m in ev["modalities"] if m in out[s]} for s in ev["subsets"] if s in out}


def summarise_attributes(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR) -> dict:
    """HEL Figs. 14-15, WB Figs. S10-S11: per input subset and series, the mean and std over seeds of the
    average precision of each CelebA attribute, from the runs' ``evaluation.json``."""
    import warnings

    import numpy as np

    found = collect(exp, scale, results_dir)
    (_, method_beta), = exp.blocks(scale)
    method = exp.methods[0]
    evs = found.get((method, method_beta[method]), [])
    out = {**_header(exp, scale, found, results_dir), "methods": list(exp.methods), "method": method,
           "beta": method_beta[method], "measure": "average precision", "kind": exp.per_attribute, "panels": {}}
    n_attr = None
    per_seed, missing = [], []
    for ev in evs:
        try:
            per_seed.append(_attribute_panels(ev, exp.per_attribute))
        except KeyError:
            missing.append(ev.get("run", {}).get("dir", "?"))
    for panels in per_seed:
        for s, series in panels.items():
            for k, v in series.items():
                out["panels"].setdefault(s, {}).setdefault(k, []).append(v)
                n_attr = len(v)
    def finite(v: np.ndarray) -> list[float | None]:  # an attribute without positives has no AP: null
        return [float(x) if np.isfinite(x) else None for x in v]

    for series in out["panels"].values():
        for k, vals in series.items():
            a = np.asarray([[math.nan if x is None else x for x in v] for v in vals], dtype=float)  # (seeds, attr)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                series[k] = {"mean": finite(np.nanmean(a, 0)),
                             "std": finite(np.nanstd(a, 0, ddof=1)) if len(a) > 1 else None, "n": len(a)}
    def attribute_names(ev: dict) -> list[str] | None:
        m = ev["metrics"]
        node = m.get("latent", {}) if exp.per_attribute == "latent" else m.get("coherence", {}).get("conditional", {})
        return node.get("attributes")

    names = next((attribute_names(ev) for ev in evs if attribute_names(ev)), None)
    out["attributes"] = names or ([f"attribute {i + 1}" for i in range(n_attr)] if n_attr else [])
    out["runs_with_attributes"] = len(per_seed)
    if missing:
        out["without_per_attribute"] = missing
    return out


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

def _fmt(s: dict | None, digits: int) -> str:
    if not s or s.get("mean") is None:
        return "—"
    std = s.get("std")
    return f"{s['mean']:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def cell_text(s: dict | None, digits: int, rank: int | None = None) -> str:
    """One cell of a table: mean ± std over seeds (:func:`_fmt`); with one seed, the 95% bootstrap interval over
    test points in square brackets where the summary has one (:func:`mean_interval`; coherence, whose per-point
    outcomes are resampled); then the rank in round brackets. ``"0.809 [0.807, 0.812] (5)"``."""
    iv = (s or {}).get("interval")
    text = _fmt(s, digits)
    if iv and (s or {}).get("std") is None:
        text += f" [{iv[0]:.{digits}f}, {iv[1]:.{digits}f}]"
    return text + (f" ({rank})" if rank else "")


def _digits(metric: str, summary: dict) -> int:
    """Decimals of a column: as its item declares, else 2 for quality and 3 otherwise."""
    exp = EXPERIMENTS.get(summary["item"])
    if exp is not None:
        for col in exp.table_columns():
            if col.key == metric:
                return col.ndigits
    return 2 if "quality" in metric else 3


def _block_title(beta: str, summary: dict) -> str:
    """``beta = 2.5``, or each method's beta for the one block of best-beta tables."""
    if beta != "best":
        return f"beta = {beta}"
    per = summary.get("block_betas", {}).get(beta, {})
    return "each model at its best beta (HEL Table 5): " + ", ".join(f"{m} {b:g}" for m, b in per.items())


def _note_lines(summary: dict) -> list[str]:
    """The item's notes and the columns without numbers, as Markdown lines."""
    lines = []
    for method, why in summary.get("own_budget", {}).items():
        lines += ["", f"{method} has a budget of its own at this scale: {why}"]
    if summary.get("runs_stale"):
        lines += ["", f"Stale: {len(summary['runs_stale'])} of these runs were made with settings that are no longer "
                  "the defaults; their numbers stand until they are trained again (`--retrain-stale`):"]
        lines += [f"- `{run}`: {why}" for run, why in summary["runs_stale"].items()]
    if summary.get("not_computed"):
        lines += ["", "Not computed here (poolvae.evaluate has no such metric): "
                  + ", ".join(f"`{k}`" for k in summary["not_computed"]) + "."]
    if summary.get("absent"):
        lines += ["", "Absent from every evaluation found (not computed at this scale): "
                  + ", ".join(f"`{k}`" for k in summary["absent"]) + "."]
    if summary.get("notes"):
        lines += [""] + [f"- {n}" for n in summary["notes"]]
    return lines


STALE_MARK = "†"


def stale_cells(summary: dict) -> set[tuple[str, str, float]]:
    """The (dataset, method, beta) cells of a table summary that rest on at least one stale run (``runs_stale``,
    keyed by run path ``<scale>/<dataset>/<method>/beta=<b>/seed=<s>``)."""
    from .train import parse_run_path

    return {(k.dataset, k.method, k.beta) for k in map(parse_run_path, summary.get("runs_stale", {}))}


def _stale_legend(summary: dict) -> list[str]:
    """The line that explains :data:`STALE_MARK`, when a cell of the table carries it."""
    if not summary.get("runs_stale"):
        return []
    return [f"{STALE_MARK}: a run of this cell is stale (made with earlier defaults; listed below): its numbers are "
            "not comparable with the others' until it is trained again."]


def cell_beta(block: str, method: str, summary: dict) -> float | None:
    """The beta of ``method``'s runs in table block ``block`` (a beta, or "best": the method's own best beta)."""
    if block == "best":
        b = summary.get("block_betas", {}).get(block, {}).get(method)
        return None if b is None else float(b)
    return float(block)


def table_markdown(summary: dict) -> str:
    """A Markdown table per beta: paper and ours side by side with ranks, and Kendall's tau per metric."""
    if "selection" in summary:
        return selection_markdown(summary)
    lines = [f"# {summary['item']}: {summary['description']}", "",
             f"Ours: scale `{summary['scale']}` on `{summary['dataset']}`, {summary['runs_found']} of "
             f"{summary['runs_expected']} runs found; mean ± std over seeds; with one seed, the 95% bootstrap "
             "interval over test points in square brackets where the metric has one (coherence). "
             "Paper: as printed. Ranks in round brackets (1 = best)."]
    if summary.get("stand_in"):
        lines.append(f"**Stand-in:** {summary['stand_in']}.")
    if summary.get("quality_metric") == "fd_classifier":
        lines.append("Quality below paper scale is `fd_classifier`, a Fréchet distance in the coherence "
                     "classifiers' features, not Inception FID: compare ranks, not values.")
    not_computed = set(summary.get("not_computed", ()))
    stale = stale_cells(summary)
    lines += _stale_legend(summary)
    for beta, by_metric in summary.get("cells", {}).items():
        metrics = list(by_metric)
        lines += ["", f"## {_block_title(beta, summary)}", "",
                  "| method | " + " | ".join(f"{m} paper | {m} ours" for m in metrics) + " |",
                  "|---|" + "---|---|" * len(metrics)]
        for method in summary["methods"]:
            cell = (summary["dataset"], method, cell_beta(beta, method, summary))
            row = [method + (f" {STALE_MARK}" if cell in stale else "")]
            for metric in metrics:
                c = by_metric[metric][method]
                digits = _digits(metric, summary)
                ours = "not computed here" if metric in not_computed else cell_text(c["ours"], digits, c["ours_rank"])
                row += [cell_text(c["paper"], digits, c["paper_rank"]), ours]
            lines.append("| " + " | ".join(row) + " |")
        taus = summary["kendall_tau"][beta]
        spans = summary.get("kendall_tau_interval", {}).get(beta, {})

        def span(m, spans=spans):
            iv = spans.get(m)
            return "" if not iv else f" [{iv[0]:.2f}, {iv[1]:.2f}]"
        lines.append("")
        lines.append("Kendall's tau between the paper's ranks and ours (95% bootstrap interval): " + ", ".join(
            f"{m} {'—' if t is None else f'{t:.2f}'}{span(m)}" for m, t in taus.items()))
    lines += _note_lines(summary)
    return "\n".join(lines) + "\n"


def table_csv(summary: dict) -> str:
    """One row per (beta, method, metric): paper mean/std/rank, ours mean/std/n/rank and the 95% bootstrap interval
    of our mean (seeds, and test points for coherence; empty when nothing varies)."""
    if "selection" in summary:
        return selection_csv(summary)
    rows = ["beta,method,metric,paper_mean,paper_std,paper_rank,ours_mean,ours_std,ours_n,ours_rank,scale,"
            "ours_interval_low,ours_interval_high"]
    for beta, by_metric in summary.get("cells", {}).items():
        per = summary.get("block_betas", {}).get(beta)
        for metric, by_method in by_metric.items():
            for method, c in by_method.items():
                p, o = c["paper"] or {}, c["ours"]
                b = f"{per[method]:g}" if per else beta
                iv = o.get("interval") or [None, None]
                vals = [b, method, metric, p.get("mean"), p.get("std"), c["paper_rank"], o["mean"], o["std"], o["n"],
                        c["ours_rank"], summary["scale"], *iv]
                rows.append(",".join("" if v is None else str(v) for v in vals))
    return "\n".join(rows) + "\n"


def table_latex(summary: dict) -> str:
    """A booktabs LaTeX table per beta with paper and ours columns, for those who write papers."""
    if "selection" in summary:
        return selection_latex(summary)
    out = []
    for beta, by_metric in summary.get("cells", {}).items():
        metrics = list(by_metric)
        out += [r"\begin{tabular}{l" + "cc" * len(metrics) + "}", r"\toprule",
                "method & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{m.replace('_', ' ')}}}" for m in metrics) + r" \\",
                " & " + " & ".join(["paper & ours"] * len(metrics)) + r" \\", r"\midrule"]
        for method in summary["methods"]:
            cells = []
            for metric in metrics:
                c = by_metric[metric][method]
                d = _digits(metric, summary)
                cells += [_fmt(c["paper"], d).replace("±", r"$\pm$"), cell_text(c["ours"], d).replace("±", r"$\pm$")]
            out.append(method + " & " + " & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", f"% beta = {beta}, ours at scale {summary['scale']}", ""]
    return "\n".join(out)


def selection_markdown(summary: dict) -> str:
    """HEL Table 5: per data set, the paper's beta, ours and the criterion at every beta of the grid."""
    lines = [f"# {summary['item']}: {summary['description']}", "",
             f"Ours: scale `{summary['scale']}`, {summary['runs_found']} of {summary['runs_expected']} runs found; "
             "the criterion is a mean over seeds (no ± with one seed)."] + _stale_legend(summary)
    stale = stale_cells(summary)
    for dataset, sel in summary["selection"].items():
        grid = [f"{b:g}" for b in sel["grid"]]
        lines += ["", f"## {dataset} (`{sel['dataset']}`): best beta by `{sel['criterion']}`", "",
                  "| method | paper beta | ours beta | " + " | ".join(f"{sel['criterion']} at beta {b}" for b in grid)
                  + " |", "|---|---|---|" + "---|" * len(grid)]
        for m, r in sel["rows"].items():
            vals = [_fmt(r["criterion"][b], 3) + (f" {STALE_MARK}" if (sel["dataset"], m, float(b)) in stale else "")
                    for b in grid]
            paper = "—" if r["paper_beta"] is None else f"{r['paper_beta']:g}"
            ours = "—" if r["ours_beta"] is None else f"{r['ours_beta']:g}"
            lines.append(f"| {m} | {paper} | {ours} | " + " | ".join(vals) + " |")
        lines += ["", f"Our beta equals the paper's for {sel['agree']} of the {sel['of']} methods with runs."]
    chk = summary["paper_rule_check"]
    lines += ["", f"Our rule applied to the paper's own PolyMNIST numbers ({chk['table']}, `{chk['criterion']}`) "
              f"gives Table 5's beta for {chk['agree']} of {chk['of']} methods."]
    lines += _note_lines(summary)
    return "\n".join(lines) + "\n"


def selection_csv(summary: dict) -> str:
    """One row per (data set, method, beta): the criterion's mean/std/n, with the paper's and our best beta."""
    def g(v):
        return "" if v is None else f"{v:g}"

    rows = ["dataset,method,beta,criterion,mean,std,n,paper_beta,ours_beta,scale"]
    for dataset, sel in summary["selection"].items():
        for m, r in sel["rows"].items():
            for b, s in r["criterion"].items():
                vals = [dataset, m, b, sel["criterion"], s["mean"], s["std"], s["n"]]
                rows.append(",".join("" if v is None else str(v) for v in vals)
                            + f",{g(r['paper_beta'])},{g(r['ours_beta'])},{summary['scale']}")
    return "\n".join(rows) + "\n"


def selection_latex(summary: dict) -> str:
    """HEL Table 5 as booktabs: one row per method, paper and our beta per data set."""
    sets = list(summary["selection"])
    out = [r"\begin{tabular}{l" + "cc" * len(sets) + "}", r"\toprule",
           "method & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{d}}}" for d in sets) + r" \\",
           " & " + " & ".join(["paper & ours"] * len(sets)) + r" \\", r"\midrule"]
    for m in summary["methods"]:
        cells = []
        for d in sets:
            r = summary["selection"][d]["rows"][m]
            cells += ["—" if r[k] is None else f"{r[k]:g}" for k in ("paper_beta", "ours_beta")]
        out.append(m + " & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", f"% ours at scale {summary['scale']}", ""]
    return "\n".join(out)


def render(item: str, scale: str, results_dir: Path = RESULTS_DIR, figures_dir: Path | None = None) -> dict:
    """Summarise an item from the runs on disk and write results/<id>.json (+ .md/.csv/.tex for tables).

    Figure items are then drawn from results/<id>.json by :func:`poolvae.figures.run_item` (which says so
    when no drawing function is registered yet). Sample figures list the runs that lack ``samples.npz``.
    Figures go to ``figures_dir``; by default the repository's ``figures/`` (``figures/ci`` at ci) when
    ``results_dir`` is the repository's, else ``<results_dir>/figures`` (a render elsewhere writes nothing here).
    """
    exp = get_experiment(item)
    summary = summarise(exp, scale, results_dir)
    summary["provenance"] = provenance(item=item, scale=scale)
    if figures_dir is None:
        from .figures import FIGURES_DIR

        figures_dir = (Path(results_dir) / "figures" if Path(results_dir).resolve() != RESULTS_DIR.resolve()
                       else FIGURES_DIR / "ci" if scale == "ci" else FIGURES_DIR)
    results_dir = rendered_dir(results_dir, scale)
    write_json(results_dir / f"{item}.json", summary)
    if exp.kind == "table":
        from .artefacts import atomic_write_bytes

        atomic_write_bytes(results_dir / f"{item}.md", table_markdown(summary).encode())
        atomic_write_bytes(results_dir / f"{item}.csv", table_csv(summary).encode())
        atomic_write_bytes(results_dir / f"{item}.tex", table_latex(summary).encode())
    print(f"{item}: {summary['runs_found']}/{summary['runs_expected']} runs at scale {scale} -> "
          f"{results_dir / (item + '.json')}")
    for miss in summary.get("missing", []):
        print(f"  {miss['method']} (beta {miss['beta']:g}, seed {miss['seed']}): {miss['why']} at {miss['run']}; "
              f"`python -m poolvae.evaluate {miss['run']}` writes it from the run's checkpoint")
    if exp.kind == "figure":
        from .figures import run_item

        print(run_item(item, results_dir, Path(figures_dir), seed=0)[1])
    return summary


def rendered_dir(results_dir: Path, scale: str) -> Path:
    """Where an item rendered at ``scale`` goes: ``results/`` itself, or ``results/ci/`` for the ``ci`` scale,
    whose seconds-long runs check the pipeline and must not overwrite the committed ``cpu`` or ``paper``
    renders (``results/ci``, ``results/runs/ci`` and ``figures/ci`` are git-ignored)."""
    return Path(results_dir) / "ci" if scale == "ci" else Path(results_dir)


def absent_data(exp: Experiment, scale: str, data: dict[str, str] | None = None) -> list[str]:
    """The data sets that ``exp``'s runs at ``scale`` need and that are not here, from ``data`` (name -> state, as
    :func:`poolvae.datasets.status` gives it, which only looks at file names). A mini set that is not built yet
    is not absent: it is built on first use."""
    from . import datasets as ds

    data = ds.status() if data is None else data
    needed = dict.fromkeys(c.dataset for c in exp.runs(scale))
    return [d for d in needed if d in data and data[d] != "present" and not d.endswith("-mini")]


def status(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR, data: dict[str, str] | None = None) -> str:
    """One line: whether the item can run at ``scale`` (which data sets are absent), the evaluations found (and how
    many of those runs are stale) and whether results/<id>.json is rendered (and at which scale). ``data``:
    :func:`poolvae.datasets.status`, read once by the caller for many items."""
    if exp.samples:
        name = sample_file(exp)
        what = f"with {name}"
    else:
        name, what = "evaluation.json", "evaluated"
    found = [c for c in exp.runs(scale) if (run_folder(c, results_dir) / name).exists()]
    stale = sum(stale_reason(c, run_folder(c, results_dir)) is not None for c in found)
    f = rendered_dir(results_dir, scale) / f"{exp.id}.json"
    rendered = f"rendered at {read_json(f).get('scale')}" if f.exists() else "not rendered"
    line = (f"{len(found)}/{len(exp.runs(scale))} {scale} runs {what}"
            + (f" ({stale} of them stale: made with earlier defaults; --retrain-stale)" if stale else "")
            + f", {rendered}")
    absent = absent_data(exp, scale, data)
    if absent:
        line = (f"cannot run at {scale}: data set{'s' if len(absent) > 1 else ''} {', '.join(absent)} absent "
                f"(`python -m poolvae.datasets --list` says where to get {'them' if len(absent) > 1 else 'it'}); "
                + line)
    return line


def main(argv=None) -> int:
    """Command line; see the module docstring."""
    from .train import beta_argument, count_argument

    p = argparse.ArgumentParser(prog="python -m poolvae.experiments",
                                description="Reproduce the papers' tables and figures")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list every item, its runs per scale and its status")
    ls.add_argument("--scale", default="cpu", choices=SCALES, help="the scale whose status is shown")
    sw = sub.add_parser("sweep", help="every run of several trained items in one pool, then each item rendered")
    sw.add_argument("--items", nargs="+", default=list(POLYMNIST_ITEMS), metavar="ITEM",
                    help="default: the trained PolyMNIST items")
    sw.add_argument("--scale", default="cpu", choices=SCALES)
    sw.add_argument("--jobs", type=count_argument(1), default=1)
    sw.add_argument("--executor", default="serial", choices=["serial", "local", "slurm"])
    sw.add_argument("--retrain-stale", action="store_true",
                    help="delete and train again the runs made with settings that are no longer the defaults")
    sw.add_argument("--train-only", action="store_true",
                    help="train, evaluate nothing (a provisional budget: the runs go on to the final one later)")
    sw.add_argument("--plan", action="store_true",
                    help="print what the sweep would do with each run and about how long it takes; run nothing")
    parsers = {}
    for name in ("reproduce", "render"):
        s = parsers[name] = sub.add_parser(name)
        s.add_argument("item", help=f"one of: {', '.join(EXPERIMENTS)}")
        s.add_argument("--scale", default="cpu", choices=SCALES)
        if name == "reproduce":
            s.add_argument("--jobs", type=count_argument(1), default=1)
            s.add_argument("--executor", default="serial", choices=["serial", "local", "slurm"])
            s.add_argument("--methods", nargs="+", default=None)
            s.add_argument("--betas", nargs="+", type=beta_argument, default=None)
            s.add_argument("--retrain-stale", action="store_true",
                           help="delete and train again the runs made with settings that are no longer the defaults")
    a = p.parse_args(argv)
    if a.command == "list":
        from . import datasets as ds

        data = ds.status()
        for e in EXPERIMENTS.values():
            counts = ", ".join(f"{s}: {len(e.runs(s))}" for s in SCALES)
            print(f"{e.id:12s} {e.kind:6s} runs ({counts})  {e.description}")
            print(f"{'':19s} status: {status(e, a.scale, data=data)}")
        for item, how in ELSEWHERE.items():
            print(f"{item:12s} {'other':6s} {how}")
        return 0
    if a.command == "sweep":
        bad = [i for i in a.items if i not in EXPERIMENTS]
        if bad:
            sw.error(f"--items: unknown {', '.join(bad)}; valid: {', '.join(EXPERIMENTS)}")
        if a.plan:
            print("\n".join(sweep_plan_lines(tuple(a.items), a.scale, a.jobs, retrain_stale=a.retrain_stale,
                                              train_only=a.train_only)))
            return 0
        try:
            sweep(tuple(a.items), a.scale, a.jobs, a.executor, retrain_stale=a.retrain_stale, train_only=a.train_only)
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as err:
            print(str(err) or "interrupted the sweep: finished runs are kept and an interrupted one resumes; run "
                  "the same command again", flush=True)
            return 130
        return 0
    s = parsers[a.command]
    if a.item not in EXPERIMENTS:  # every argument is checked before anything runs, with argparse's one-line error
        if a.item in ELSEWHERE:
            s.error(f"{a.item} is not a trained item; it is made by {ELSEWHERE[a.item]}")
        s.error(f"unknown item {a.item!r}; valid: {', '.join(EXPERIMENTS)}")
    exp = EXPERIMENTS[a.item]
    if a.command == "reproduce":
        runs = exp.runs(a.scale)
        bad = sorted(set(a.methods or ()) - {c.method for c in runs})
        if bad:
            s.error(f"--methods: {', '.join(bad)} not among {a.item}'s methods: {', '.join(exp.methods)}")
        grid = sorted({c.beta for c in runs if not a.methods or c.method in a.methods})
        bad = sorted(set(a.betas or ()) - set(grid))
        if bad:
            s.error(f"--betas: {', '.join(f'{b:g}' for b in bad)} not in {a.item}'s betas at scale {a.scale}: "
                    f"{', '.join(f'{b:g}' for b in grid)}")
    try:
        if a.command == "render":
            render(a.item, a.scale)
        else:
            reproduce(a.item, a.scale, a.jobs, a.executor, methods=a.methods, betas=a.betas,
                      retrain_stale=a.retrain_stale)
    except (FileNotFoundError, ValueError, RuntimeError) as err:  # a data set absent or corrupt, a failed run: its
        print(f"error: {err}", file=sys.stderr)  # message says what to do, in one line
        return 1
    except KeyboardInterrupt as err:  # train() says where it stopped; elsewhere (evaluating, rendering) we do
        print(str(err) or f"interrupted {a.item} at scale {a.scale}: finished runs are kept and an interrupted "
              "one resumes; run the same command again", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
