"""Charts that compare the papers' method ranks with ours, and our means with their spread over seeds (seaborn).

    python -m poolvae.rank_charts hel-table8   # -> figures/hel-table8-ranks.{png,pdf} and hel-table8-seeds

A wide table of two numbers per method and beta is hard to read; a rank chart shows at a glance where the
order of the methods agrees with the paper's. :func:`rank_frame` turns a rendered table item
(``results/<id>.json``) into a long data frame, one row per (beta, metric, method) with the paper's rank and
ours; :func:`rank_chart` draws one panel per metric, the paper's rank against ours, one line per method across
the betas, with Kendall's tau and its bootstrap interval in the panel title. :func:`seed_chart` draws our mean
per method and beta with the standard deviation over seeds as an error bar (none where there is one seed, which
the legend says). Cells that rest on a stale run (the tables' dagger) are drawn hollow. Both read files only;
they never retype a number.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .artefacts import FIGURES_DIR, RESULTS_DIR, read_json, save_figure  # noqa: E402
from .palette import color as method_colour  # noqa: E402
from .trained_figures import STALE_NOTE  # noqa: E402  (the trained figures' note on hollow points)


def rank_frame(summary: dict) -> pd.DataFrame:
    """One row per (beta, metric, method) of a table item: our mean, std, seeds, our rank and the paper's, and
    whether the cell rests on a stale run (:func:`poolvae.experiments.stale_cells`, the tables' dagger)."""
    from .experiments import cell_beta, stale_cells

    stale = stale_cells(summary)
    rows = []
    for beta, by_metric in summary["cells"].items():
        for metric, by_method in by_metric.items():
            for method, c in by_method.items():
                rows.append({"beta": float(beta) if beta != "best" else float("nan"), "block": beta, "metric": metric,
                             "method": method, "ours": c["ours"]["mean"], "std": c["ours"]["std"],
                             "seeds": c["ours"]["n"], "ours_rank": c["ours_rank"], "paper_rank": c["paper_rank"],
                             "stale": (summary.get("dataset"), method, cell_beta(beta, method, summary)) in stale})
    return pd.DataFrame(rows)


def hollow_stale(ax, part: pd.DataFrame, x: str, y: str, palette: dict) -> None:
    """Redraw the rows of ``part`` whose ``stale`` column is true as hollow markers in their method's colour (the
    trained figures' mark for a point that rests on a stale run, :data:`STALE_NOTE`)."""
    for _, r in part[part["stale"]].iterrows():
        ax.scatter([r[x]], [r[y]], s=36, facecolors="white", edgecolors=palette[r["method"]], linewidths=1.3,
                   zorder=4)


def _tau_title(summary: dict, metric: str) -> str:
    """Kendall's tau per beta for one metric, with its interval where there is one."""
    parts = []
    for beta in sorted(summary["kendall_tau"], key=lambda b: float(b) if b != "best" else 0.0):
        t = summary["kendall_tau"][beta].get(metric)
        iv = summary.get("kendall_tau_interval", {}).get(beta, {}).get(metric)
        text = "—" if t is None else f"{t:+.2f}" + (f" [{iv[0]:+.2f}, {iv[1]:+.2f}]" if iv else "")
        parts.append(f"β={beta}: {text}")
    return "\n".join("τ " + ", ".join(parts[i:i + 2]) for i in range(0, len(parts), 2))


def _grid(n_panels: int, width: float = 4.6, height: float = 4.6):
    """A figure with ``n_panels`` axes, two per row; unused axes hidden."""
    cols = min(2, n_panels)
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def rank_chart(summary: dict, metrics: list[str] | None = None):
    """Paper rank (x) against our rank (y) per metric; a method's points across betas joined by a line.

    Points on the diagonal are methods ranked as in the paper. Returns the matplotlib figure.
    """
    df = rank_frame(summary).dropna(subset=["ours_rank", "paper_rank"])
    if df.empty:
        raise ValueError(f"{summary['item']} has no cell with both a paper rank and ours: nothing to compare")
    metrics = metrics or list(dict.fromkeys(df["metric"]))
    n = max(len(df["method"].unique()), 1)
    fig, axes = _grid(len(metrics))
    palette = {m: method_colour(m) for m in df["method"].unique()}
    for ax, metric in zip(axes, metrics, strict=True):
        part = df[df["metric"] == metric].sort_values("beta")
        ax.plot([0.5, n + 0.5], [0.5, n + 0.5], color="0.8", lw=1, zorder=0)
        sns.lineplot(data=part, x="paper_rank", y="ours_rank", hue="method", palette=palette, sort=False,
                     estimator=None, units="method", marker="o", ax=ax, legend=ax is axes[0])
        hollow_stale(ax, part, "paper_rank", "ours_rank", palette)
        for _, r in part.iterrows():
            ax.annotate(r["block"], (r["paper_rank"], r["ours_rank"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points", color=palette[r["method"]])
        ax.set(xlim=(0.5, n + 0.5), ylim=(n + 0.5, 0.5), xlabel="paper rank", ylabel="our rank",
               xticks=range(1, n + 1), yticks=range(1, n + 1))
        ax.set_title(f"{metric}\n{_tau_title(summary, metric)}", fontsize=8)
    if axes[0].get_legend():
        sns.move_legend(axes[0], "lower left", ncol=2, fontsize=7, title=None)
    note = f"\n{STALE_NOTE}" if df["stale"].any() else ""
    fig.suptitle(f"{summary['item']}: ranks, paper vs ours (scale {summary['scale']}; labels are betas){note}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def seed_chart(summary: dict, metrics: list[str] | None = None):
    """Our mean per method and beta, with the standard deviation over seeds as error bars where there are seeds
    to spread; returns the matplotlib figure."""
    df = rank_frame(summary).dropna(subset=["ours"])
    metrics = metrics or list(dict.fromkeys(df["metric"]))
    fig, axes = _grid(len(metrics), height=3.8)
    palette = {m: method_colour(m) for m in df["method"].unique()}
    for ax, metric in zip(axes, metrics, strict=True):
        part = df[df["metric"] == metric].sort_values("beta")
        sns.lineplot(data=part, x="block", y="ours", hue="method", palette=palette, marker="o", sort=False,
                     ax=ax, legend=ax is axes[0], errorbar=None)
        spread = part[part["std"].notna()]
        for _, r in spread.iterrows():
            ax.errorbar(r["block"], r["ours"], yerr=r["std"], color=palette[r["method"]], capsize=2, lw=1)
        hollow_stale(ax, part, "block", "ours", palette)
        ax.set(xlabel="β", ylabel=metric)
        seeds = sorted(set(part["seeds"]))
        ax.set_title(f"{metric}\nseeds per point: {', '.join(str(s) for s in seeds)} (bars: ± std over seeds)",
                     fontsize=8)
    if axes[0].get_legend():
        sns.move_legend(axes[0], "best", ncol=2, fontsize=7, title=None)
    note = f"\n{STALE_NOTE}" if df["stale"].any() else ""
    fig.suptitle(f"{summary['item']}: our means by β (scale {summary['scale']}){note}", fontsize=9)
    fig.tight_layout()
    return fig


def draw(item: str, results_dir: Path = RESULTS_DIR, figures_dir: Path = FIGURES_DIR) -> list[Path]:
    """Both charts of a rendered table item -> ``figures/<item>-ranks`` and ``figures/<item>-seeds``."""
    summary = read_json(Path(results_dir) / f"{item}.json")
    if "cells" not in summary:
        raise ValueError(f"{item} is not a table of ranks (no 'cells' in results/{item}.json)")
    paths = []
    for name, make in (("ranks", rank_chart), ("seeds", seed_chart)):
        fig = make(summary)
        paths += save_figure(fig, f"{item}-{name}", figures_dir)
        plt.close(fig)
    return paths


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="Rank and seed charts of a rendered table item.")
    p.add_argument("items", nargs="+", help="table items, e.g. hel-table8 hel-fig6")
    a = p.parse_args(argv)
    for item in a.items:
        for path in draw(item):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
