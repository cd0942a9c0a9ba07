"""Reproduction targets: which runs each table or figure of the two papers needs, and how it renders.

    python -m poolvae.experiments list
    python -m poolvae.experiments reproduce hel-table8 --scale cpu [--jobs 2] [--executor serial|local|slurm]
    python -m poolvae.experiments render hel-table8 --scale cpu

One item id (``hel-table8``) is one name across the Makefile target, ``results/<id>.json`` and the
rendered ``results/<id>.md`` / ``.csv`` / ``.tex`` (tables) or ``figures/<id>.png`` / ``.pdf``
(figures, drawn by :mod:`poolvae.figures`). ``reproduce`` trains and evaluates every run of the item
at the chosen scale (finished runs and up-to-date evaluations are skipped, interrupted ones resume),
then ``render`` collects the runs' ``evaluation.json`` files: mean and standard deviation over seeds,
the paper's value beside ours, each method's rank in the paper and in our run, and the rank agreement
(Kendall's tau) per metric. A table says at which scale its numbers were made and how many of its
runs exist; a missing run is an empty cell, never a guess.

Runs go through ``concurrent.futures`` (``--executor local``, ``--jobs n``) or submitit's SLURM
executor (``--executor slurm``, for clusters), so the sweep is the same list of runs everywhere.
Scale ``cpu`` trains on PolyMNIST-mini, whose numbers are not comparable with the papers' PolyMNIST
in value; the ranks are what can be compared.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import paper_numbers
from .artefacts import RESULTS_DIR, provenance, read_json, write_json
from .train import CHECKPOINT_DIR, TrainConfig, make_config, run_path, train

SCALES = ("ci", "cpu", "paper")
POLYMNIST_METHODS = ("mvae", "mmvae", "mopoe", "mmvaeplus", "mwbvae", "codevae", "helvae")
WB_METHODS = ("mvae", "mmvae", "mopoe", "wbvae", "mwbvae")


def dataset_at(base: str, scale: str) -> str:
    """The data set a scale trains on: PolyMNIST-mini stands in for PolyMNIST below paper scale."""
    return "polymnist-mini" if base == "polymnist" and scale != "paper" else base


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


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------

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

    def runs(self, scale: str) -> list[TrainConfig]:
        """Every run this item needs at ``scale``."""
        betas = self.betas if scale == "paper" or self.cpu_betas is None else self.cpu_betas
        return [make_config(dataset_at(self.dataset, scale), m, scale, beta=b, seed=s)
                for m in self.methods for b in betas for s in self.seeds[scale]]


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
               "beta 2.5, shared with hel-fig5 (the barycentric paper does not state its beta)", curves=True),
)}

# how the papers' metric ids map onto ours, per table
PAPER_METRIC = {
    "coherence/conditional": ("coherence", "conditional"),
    "coherence/unconditional": ("coherence", "unconditional"),
    "quality/conditional": ("fid", "conditional"),
    "quality/unconditional": ("fid", "unconditional"),
}


def get_experiment(item: str) -> Experiment:
    """Look an item up; an unknown id lists the valid ones."""
    if item not in EXPERIMENTS:
        raise ValueError(f"unknown item {item!r}; valid: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[item]


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------

def run_one(cfg: TrainConfig, results_dir: Path = RESULTS_DIR / "runs", checkpoint_dir: Path = CHECKPOINT_DIR,
            evaluate_kwargs: dict | None = None, progress: bool = False) -> Path:
    """Train (or resume, or skip) one run, then evaluate it (skipped when up to date)."""
    from .evaluate import evaluate_run  # evaluation needs classifiers; import only when running

    run_dir = train(cfg, results_dir, checkpoint_dir, progress=progress)
    return evaluate_run(run_dir, checkpoint_dir=checkpoint_dir, progress=progress, **(evaluate_kwargs or {}))


def reproduce(item: str, scale: str, jobs: int = 1, executor: str = "serial", results_dir: Path = RESULTS_DIR,
              checkpoint_dir: Path = CHECKPOINT_DIR, evaluate_kwargs: dict | None = None,
              methods: list[str] | None = None, betas: list[float] | None = None) -> dict:
    """Run every missing run of ``item`` at ``scale``, then render it; returns the summary."""
    exp = get_experiment(item)
    cfgs = [c for c in exp.runs(scale) if (not methods or c.method in methods) and (not betas or c.beta in betas)]
    args = [(c, Path(results_dir) / "runs", Path(checkpoint_dir), evaluate_kwargs) for c in cfgs]
    print(f"{item}: {len(cfgs)} runs at scale {scale} ({executor}, jobs={jobs})", flush=True)
    if executor == "serial" or jobs <= 1 and executor != "slurm":
        for a in args:
            run_one(*a)
    elif executor == "local":
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for f in [pool.submit(run_one, *a) for a in args]:
                f.result()
    elif executor == "slurm":
        import submitit
        ex = submitit.AutoExecutor(folder=Path(checkpoint_dir) / "submitit")
        ex.update_parameters(timeout_min=24 * 60, slurm_array_parallelism=jobs, gpus_per_node=1)
        jobs_ = ex.map_array(run_one, *zip(*args, strict=True))
        for j in jobs_:
            j.result()
    else:
        raise ValueError(f"unknown executor {executor!r}; valid: serial, local, slurm")
    return render(item, scale, results_dir)


# --------------------------------------------------------------------------------------------------
# Collecting and rendering
# --------------------------------------------------------------------------------------------------

def collect(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR) -> dict:
    """Evaluations of the item's runs that exist: {(method, beta): [evaluation dicts over seeds]}."""
    found: dict[tuple[str, float], list[dict]] = {}
    for cfg in exp.runs(scale):
        f = Path(results_dir) / "runs" / run_path(cfg) / "evaluation.json"
        if f.exists():
            found.setdefault((cfg.method, cfg.beta), []).append(read_json(f))
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


def summarise(exp: Experiment, scale: str, results_dir: Path = RESULTS_DIR) -> dict:
    """The numbers behind an item: per (beta, method, metric) mean/std over seeds, ranks, paper values."""
    found = collect(exp, scale, results_dir)
    betas = exp.betas if scale == "paper" or exp.cpu_betas is None else exp.cpu_betas
    n_runs = len(exp.runs(scale))
    out = {"item": exp.id, "description": exp.description, "scale": scale,
           "dataset": dataset_at(exp.dataset, scale), "runs_expected": n_runs,
           "runs_found": sum(len(v) for v in found.values()), "betas": list(betas), "methods": list(exp.methods)}
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
    cells, agreement = {}, {}
    for beta in betas:
        for metric in exp.metrics:
            reader, higher = METRICS[metric]
            ours = {m: _stats([reader(ev) for ev in found.get((m, beta), [])]) for m in exp.methods}
            ours_rank = ranks({m: s["mean"] for m, s in ours.items()}, higher)
            paper = _paper_values(exp, metric, beta)
            paper_rank = ranks({m: p["mean"] for m, p in paper.items()}, higher) if paper else {}
            for m in exp.methods:
                cells.setdefault(f"{beta:g}", {}).setdefault(metric, {})[m] = {
                    "ours": ours[m], "ours_rank": ours_rank.get(m), "paper": paper.get(m),
                    "paper_rank": paper_rank.get(m)}
            agreement.setdefault(f"{beta:g}", {})[metric] = kendall_tau(paper_rank, ours_rank)
    out["cells"], out["kendall_tau"] = cells, agreement
    if found:
        ev = next(iter(found.values()))[0]
        out["quality_metric"] = quality_key(ev)
    return out


def _paper_values(exp: Experiment, metric: str, beta: float) -> dict[str, dict]:
    """The paper's mean/std per method for a metric (and beta, where the table has several)."""
    if not exp.paper_item or metric not in PAPER_METRIC:
        return {}
    name, setting = PAPER_METRIC[metric]
    out = {}
    for c in paper_numbers.cells(exp.paper_item, metric=name, setting=setting):
        if c.get("beta") is not None and float(c["beta"]) != beta:
            continue
        out[c["method"]] = {"mean": c["mean"], "std": c.get("std")}
    return out


def _fmt(s: dict | None, digits: int) -> str:
    if not s or s.get("mean") is None:
        return "—"
    std = s.get("std")
    return f"{s['mean']:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def table_markdown(summary: dict) -> str:
    """A Markdown table per beta: paper and ours side by side with ranks, and Kendall's tau per metric."""
    lines = [f"# {summary['item']}: {summary['description']}", "",
             f"Ours: scale `{summary['scale']}` on `{summary['dataset']}`, {summary['runs_found']} of "
             f"{summary['runs_expected']} runs found; mean ± std over seeds (no ± with one seed). "
             "Paper: as printed. Ranks in brackets (1 = best)."]
    if summary.get("quality_metric") == "fd_classifier":
        lines.append("Quality below paper scale is `fd_classifier`, a Fréchet distance in the coherence "
                     "classifiers' features, not Inception FID: compare ranks, not values.")
    for beta, by_metric in summary.get("cells", {}).items():
        metrics = list(by_metric)
        lines += ["", f"## beta = {beta}", "",
                  "| method | " + " | ".join(f"{m} paper | {m} ours" for m in metrics) + " |",
                  "|---|" + "---|---|" * len(metrics)]
        for method in summary["methods"]:
            row = [method]
            for metric in metrics:
                c = by_metric[metric][method]
                digits = 2 if "quality" in metric else 3
                pr = f" ({c['paper_rank']})" if c["paper_rank"] else ""
                orank = f" ({c['ours_rank']})" if c["ours_rank"] else ""
                row += [_fmt(c["paper"], digits) + pr, _fmt(c["ours"], digits) + orank]
            lines.append("| " + " | ".join(row) + " |")
        taus = summary["kendall_tau"][beta]
        lines.append("")
        lines.append("Kendall's tau between the paper's ranks and ours: " + ", ".join(
            f"{m} {'—' if t is None else f'{t:.2f}'}" for m, t in taus.items()))
    return "\n".join(lines) + "\n"


def table_csv(summary: dict) -> str:
    """One row per (beta, method, metric): paper mean/std/rank and ours mean/std/n/rank."""
    rows = ["beta,method,metric,paper_mean,paper_std,paper_rank,ours_mean,ours_std,ours_n,ours_rank,scale"]
    for beta, by_metric in summary.get("cells", {}).items():
        for metric, by_method in by_metric.items():
            for method, c in by_method.items():
                p, o = c["paper"] or {}, c["ours"]
                vals = [beta, method, metric, p.get("mean"), p.get("std"), c["paper_rank"], o["mean"], o["std"], o["n"],
                        c["ours_rank"], summary["scale"]]
                rows.append(",".join("" if v is None else str(v) for v in vals))
    return "\n".join(rows) + "\n"


def table_latex(summary: dict) -> str:
    """A booktabs LaTeX table per beta with paper and ours columns, for those who write papers."""
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
                d = 2 if "quality" in metric else 3
                cells += [_fmt(c["paper"], d).replace("±", r"$\pm$"), _fmt(c["ours"], d).replace("±", r"$\pm$")]
            out.append(method + " & " + " & ".join(cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", f"% beta = {beta}, ours at scale {summary['scale']}", ""]
    return "\n".join(out)


def render(item: str, scale: str, results_dir: Path = RESULTS_DIR, figures_dir: Path | None = None) -> dict:
    """Summarise an item from the runs on disk and write results/<id>.json (+ .md/.csv/.tex for tables).

    Figure items are then drawn from results/<id>.json by :func:`poolvae.figures.run_item` (which says so
    when no drawing function is registered yet).
    """
    exp = get_experiment(item)
    summary = summarise(exp, scale, results_dir)
    summary["provenance"] = provenance(item=item, scale=scale)
    results_dir = Path(results_dir)
    write_json(results_dir / f"{item}.json", summary)
    if exp.kind == "table":
        from .artefacts import atomic_write_bytes

        atomic_write_bytes(results_dir / f"{item}.md", table_markdown(summary).encode())
        atomic_write_bytes(results_dir / f"{item}.csv", table_csv(summary).encode())
        atomic_write_bytes(results_dir / f"{item}.tex", table_latex(summary).encode())
    print(f"{item}: {summary['runs_found']}/{summary['runs_expected']} runs at scale {scale} -> "
          f"{results_dir / (item + '.json')}")
    if exp.kind == "figure":
        from .figures import FIGURES_DIR, run_item

        print(run_item(item, results_dir, Path(figures_dir or FIGURES_DIR), seed=0)[1])
    return summary


def main(argv=None) -> int:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="Reproduce the papers' tables and figures")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list every item and its runs per scale")
    for name in ("reproduce", "render"):
        s = sub.add_parser(name)
        s.add_argument("item", help=f"one of: {', '.join(EXPERIMENTS)}")
        s.add_argument("--scale", default="cpu", choices=SCALES)
        if name == "reproduce":
            s.add_argument("--jobs", type=int, default=1)
            s.add_argument("--executor", default="serial", choices=["serial", "local", "slurm"])
            s.add_argument("--methods", nargs="+", default=None)
            s.add_argument("--betas", nargs="+", type=float, default=None)
    a = p.parse_args(argv)
    if a.command == "list":
        for e in EXPERIMENTS.values():
            counts = ", ".join(f"{s}: {len(e.runs(s))}" for s in SCALES)
            print(f"{e.id:12s} {e.kind:6s} runs ({counts})  {e.description}")
        return 0
    try:
        get_experiment(a.item)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if a.command == "render":
        render(a.item, a.scale)
    else:
        reproduce(a.item, a.scale, a.jobs, a.executor, methods=a.methods, betas=a.betas)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
