"""Which of our rank differences from a paper are beyond seed noise: pairs of methods, tested over seeds.

    python -m poolvae.seed_pairs hel-table8 --block 2.5 --column coherence/conditional

A rank table says MoPoE is above HELVAE; with three seeds each, is that a difference or an accident of the
seeds? :func:`pair_table` takes every pair of methods the paper orders (its better one first) and asks our seeds
both ways with the exact one-sided Mann-Whitney test (:func:`mann_whitney_p`): under the hypothesis that the seeds
of both methods come from one distribution, every split of the pooled values into the two groups is equally
likely, so the p-value is the share of splits whose statistic is at least the observed one. No normality is
assumed, which three seeds could never support. The price is coarseness: with three seeds against three the
smallest p-value is 1/20 = 0.05, reached only when every seed of one method is above every seed of the other; with
one seed of either method no split can be rare (p >= 1/4 at three against one, 1/2 at one against one), and the
pair is reported as not separated. :func:`seed_values` reads the per-seed values of a rendered table item from the
run folders (stale runs flagged), and :func:`strip_chart` draws them (seaborn) with the item's interval and the
paper's value. Everything is read from files; nothing is retyped.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .artefacts import RESULTS_DIR, read_json  # noqa: E402
from .experiments import collect, dataset_at, get_experiment, read, stale_cells  # noqa: E402
from .palette import color as method_colour  # noqa: E402
from .rank_charts import hollow_stale  # noqa: E402
from .trained_figures import STALE_NOTE  # noqa: E402  (the trained figures' note on hollow points)

LEVEL = 0.05  # a pair is separated when its one-sided exact p-value is at most this
REVERSED, AGREES, NOT_SEPARATED = "reversed", "agrees", "not separated"


def _twice_u(a, b) -> int:
    """Twice the Mann-Whitney statistic: pairs (x in a, y in b) with x > y count 2, ties 1 (integers, so that
    comparing two statistics is exact)."""
    return sum(2 if x > y else 1 if x == y else 0 for x in a for y in b)


def mann_whitney_p(a, b) -> float:
    """Exact one-sided p-value that the values ``a`` tend to be larger than ``b``.

    The share of the ``C(n_a + n_b, n_a)`` ways to split the pooled values into groups of the sizes of ``a`` and
    ``b`` whose Mann-Whitney statistic (pairs with the first larger, ties one half) is at least the observed one.
    Exact with ties, since the splits are enumerated rather than approximated; meant for seeds (a handful of
    values): it refuses more than 16 in all."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if not a or not b:
        raise ValueError(f"mann_whitney_p needs values on both sides, got {len(a)} and {len(b)}")
    if len(a) + len(b) > 16:
        raise ValueError(f"mann_whitney_p enumerates every split; {len(a) + len(b)} values are too many (at most 16)")
    if not all(math.isfinite(v) for v in a + b):
        raise ValueError("mann_whitney_p needs finite values")
    pooled, observed = a + b, _twice_u(a, b)
    at_least = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        picked = set(chosen)
        u = _twice_u([pooled[i] for i in chosen], [pooled[i] for i in range(len(pooled)) if i not in picked])
        at_least += u >= observed
        total += 1
    return at_least / total


def pair_table(values: dict[str, list[float]], paper_rank: dict[str, int], higher: bool = True,
               level: float = LEVEL) -> list[dict]:
    """Every pair of methods with values and a paper rank, the paper's better one first, tested over seeds.

    Each row: ``better_in_paper``, ``worse_in_paper``, both means and seed counts, ``p_reversed`` (the one-sided
    p-value that our seeds put the paper's worse method above its better one), ``p_agrees`` (the other way), and
    ``verdict``: :data:`REVERSED` or :data:`AGREES` when that p-value is at most ``level``, else
    :data:`NOT_SEPARATED`. ``higher``: whether larger values are better (as the column's ranks read them)."""
    methods = [m for m in sorted(paper_rank, key=paper_rank.get) if values.get(m)]
    rows = []
    for better, worse in itertools.combinations(methods, 2):
        if paper_rank[better] == paper_rank[worse]:
            continue  # a tie in the paper orders nothing
        top, low = (values[better], values[worse]) if higher else ([-v for v in values[better]],
                                                                    [-v for v in values[worse]])
        p_agrees, p_reversed = mann_whitney_p(top, low), mann_whitney_p(low, top)
        verdict = REVERSED if p_reversed <= level else AGREES if p_agrees <= level else NOT_SEPARATED
        rows.append({"better_in_paper": better, "worse_in_paper": worse,
                     "mean_better_in_paper": sum(values[better]) / len(values[better]),
                     "mean_worse_in_paper": sum(values[worse]) / len(values[worse]),
                     "seeds": (len(values[better]), len(values[worse])),
                     "p_reversed": p_reversed, "p_agrees": p_agrees, "verdict": verdict})
    return rows


def _column(item: str, key: str):
    exp = get_experiment(item)
    cols = {c.key: c for c in exp.table_columns()}
    if key not in cols:
        raise ValueError(f"{item} has no column {key!r}; its columns are {', '.join(cols)}")
    return exp, cols[key]


def seed_values(item: str, block: str, column: str, scale: str = "cpu",
                results_dir: Path = RESULTS_DIR) -> tuple[dict[str, list[float]], dict[str, bool]]:
    """Our value of ``column`` for every seed of every method in ``block`` of a table item, read from the run
    folders under ``results_dir/runs`` (:func:`poolvae.experiments.collect`), and per method whether its cell rests
    on a stale run (:func:`poolvae.experiments.stale_cells` of the rendered item, the tables' dagger). Methods with
    no evaluated run are left out."""
    exp, col = _column(item, column)
    blocks = dict(exp.blocks(scale))
    if block not in blocks:
        raise ValueError(f"{item} has no block {block!r} at scale {scale}; its blocks are {', '.join(blocks)}")
    found = collect(exp, scale, results_dir)
    stale_cell = stale_cells(read_json(Path(results_dir) / f"{item}.json"))
    dataset = dataset_at(exp.dataset, scale)
    values, stale = {}, {}
    for method, beta in blocks[block].items():
        vals = [v for v in (read(col, ev) for ev in found.get((method, beta), [])) if v is not None]
        if vals:
            values[method], stale[method] = vals, (dataset, method, beta) in stale_cell
    return values, stale


def pairs_of_item(item: str, block: str, column: str, scale: str = "cpu", results_dir: Path = RESULTS_DIR,
                  seeds: tuple[dict, dict] | None = None) -> list[dict]:
    """:func:`pair_table` for one block and column of a rendered table item, with the paper's ranks from
    ``results/<item>.json``; each row also says whether a stale run is among its seeds. ``seeds``: what
    :func:`seed_values` returned for the same arguments, when the caller has already read it."""
    _, col = _column(item, column)
    cells = read_json(Path(results_dir) / f"{item}.json")["cells"][block][column]
    paper_rank = {m: c["paper_rank"] for m, c in cells.items() if c.get("paper_rank") is not None}
    values, stale = seeds or seed_values(item, block, column, scale, results_dir)
    rows = pair_table(values, paper_rank, col.higher)
    for r in rows:
        r["stale"] = stale[r["better_in_paper"]] or stale[r["worse_in_paper"]]
    return rows


def strip_chart(item: str, block: str, column: str, scale: str = "cpu", results_dir: Path = RESULTS_DIR,
                seeds: tuple[dict, dict] | None = None):
    """Our seeds of each method (dots; hollow where the run is stale), their mean with the item's 95% interval
    (bar), and the paper's value (cross), methods in the paper's order; returns the matplotlib figure.
    ``seeds``: as in :func:`pairs_of_item`."""
    cells = read_json(Path(results_dir) / f"{item}.json")["cells"][block][column]
    values, stale = seeds or seed_values(item, block, column, scale, results_dir)
    order = sorted(values, key=lambda m: (cells[m].get("paper_rank") or 99, m))
    seeds_frame = pd.DataFrame([{"x": i, "method": m, "value": v, "stale": stale[m]}
                                for i, m in enumerate(order) for v in values[m]])
    palette = {m: method_colour(m) for m in order}
    fig, ax = plt.subplots(figsize=(7.2, 3.8))
    fresh = seeds_frame[~seeds_frame["stale"]]
    if len(fresh):
        sns.stripplot(data=fresh, x="method", y="value", hue="method", order=order, palette=palette, size=6,
                      jitter=0.08, ax=ax, legend=False, zorder=3)
    hollow_stale(ax, seeds_frame, "x", "value", palette)
    for i, m in enumerate(order):
        ours = cells[m]["ours"]
        if ours.get("interval"):
            lo, hi = ours["interval"]
            ax.errorbar(i + 0.25, ours["mean"], yerr=[[ours["mean"] - lo], [hi - ours["mean"]]], fmt="s",
                        color=palette[m], capsize=3, ms=5)
        paper = cells[m].get("paper")
        if paper and paper.get("mean") is not None:
            ax.plot(i, paper["mean"], "x", color="black", ms=8, mew=1.5, zorder=4)
    ax.set_xticks(range(len(order)), order)
    ax.set(xlabel="method, in the paper's order (its best first)", ylabel=column)
    ax.set_title(f"{item} at scale {scale}, beta {block}: dots our seeds, squares our mean with its 95% "
                 "interval,\ncrosses the paper's value" + (f"; {STALE_NOTE}" if any(stale.values()) else ""),
                 fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="Pairs of methods the paper orders, tested over our seeds.")
    p.add_argument("item", help="a rendered table item, e.g. hel-table8")
    p.add_argument("--block", default="2.5", help="the block (beta) of the item (default 2.5)")
    p.add_argument("--column", default="coherence/conditional", help="the column (default coherence/conditional)")
    p.add_argument("--scale", default="cpu")
    a = p.parse_args(argv)
    for r in pairs_of_item(a.item, a.block, a.column, a.scale):
        print(f"{r['better_in_paper']:>10s} > {r['worse_in_paper']:<10s} in the paper; ours "
              f"{r['mean_better_in_paper']:.3f} vs {r['mean_worse_in_paper']:.3f} (seeds {r['seeds'][0]}, "
              f"{r['seeds'][1]}): {r['verdict']} (p reversed {r['p_reversed']:.3f}, p agrees {r['p_agrees']:.3f})"
              + (" [stale run]" if r["stale"] else ""))


if __name__ == "__main__":
    main()
