"""Drawing the trained figures (hel-fig3, hel-fig5, hel-fig6, wb-fig3) from their results files.

Each function takes the summary that :func:`poolvae.experiments.render` wrote to ``results/<id>.json``
and returns a matplotlib figure in the paper's layout; :mod:`poolvae.figures` registers them and saves
the files. Every panel says at which scale its numbers were made, and a method without runs is left
out of the legend rather than drawn from anything else.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .palette import color
from .palette import label as _pool_label
from .palette import method as palette_method

LABELS = {"coherence": "conditional coherence ↑", "latent": "latent accuracy ↑", "log_likelihood": "log-likelihood ↑",
          "quality": "conditional quality ↓",
          "coherence/conditional": "conditional coherence ↑", "coherence/unconditional": "unconditional coherence ↑",
          "log_likelihood/joint": "log-likelihood ↑", "quality/conditional": "conditional quality ↓",
          "quality/unconditional": "unconditional quality ↓"}


def marker(key: str) -> str:
    """The method's marker from the palette."""
    return palette_method(key).marker


def label(key: str) -> str:
    """The model's name (MVAE, HELVAE, ...) for legends of trained figures."""
    return _pool_label(key, "model")


def _quality_name(data: dict) -> str:
    return "FID" if data.get("quality_metric") == "fid" else "FD, classifier features"


def _label(key: str, data: dict) -> str:
    text = LABELS.get(key, key)
    return text.replace("quality", _quality_name(data)) if "quality" in key else text


def _footer(fig: Figure, data: dict) -> None:
    fig.text(0.5, -0.02, f"scale {data['scale']} on {data['dataset']}: {data['runs_found']} of "
             f"{data['runs_expected']} runs; mean ± std over seeds", ha="center", va="top", fontsize=7)


def draw_curves(data: dict) -> Figure:
    """Metrics against the number of input modalities, one panel per section (hel-fig5, wb-fig3)."""
    sections = list(data.get("curves", {}))
    fig, axes = plt.subplots(1, max(len(sections), 1), figsize=(2.4 * max(len(sections), 1) + 0.6, 2.4),
                             squeeze=False)
    for ax, section in zip(axes[0], sections, strict=False):
        for _beta, by_method in data["curves"][section].items():
            for method in data["methods"]:
                pts = by_method.get(method)
                if not pts:
                    continue
                ks = sorted(int(k) for k in pts)
                mean = [pts[str(k)]["mean"] for k in ks]
                std = [pts[str(k)]["std"] or 0.0 for k in ks]
                ax.plot(ks, mean, color=color(method), marker=marker(method), label=label(method), lw=1.2, ms=4)
                ax.fill_between(ks, [m - s for m, s in zip(mean, std, strict=True)],
                                [m + s for m, s in zip(mean, std, strict=True)], color=color(method), alpha=0.15, lw=0)
        ax.set_xlabel("number of input modalities")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(_label(section, data))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 7), bbox_to_anchor=(0.5, 1.12),
                   frameon=False)
    _footer(fig, data)
    fig.tight_layout()
    return fig


def _pareto(points: list[tuple[float, float]], maximise_y: bool) -> list[tuple[float, float]]:
    """Non-dominated points when x (coherence) is maximised and y is maximised or minimised."""
    sign = 1 if maximise_y else -1
    front = [p for p in points
             if not any(q != p and q[0] >= p[0] and sign * q[1] >= sign * p[1] for q in points)]
    return sorted(front)


def draw_tradeoffs(data: dict) -> Figure:
    """HEL Fig. 3: coherence against log-likelihood and against quality, one point per beta, Pareto fronts."""
    pairs = [("coherence/conditional", "log_likelihood/joint", True),
             ("coherence/unconditional", "log_likelihood/joint", True),
             ("coherence/conditional", "quality/conditional", False)]
    fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.5))
    for ax, (xk, yk, up) in zip(axes, pairs, strict=True):
        for method in data["methods"]:
            pts = []
            for _beta, by_metric in data.get("cells", {}).items():
                if xk in by_metric and yk in by_metric:
                    x, y = by_metric[xk][method]["ours"]["mean"], by_metric[yk][method]["ours"]["mean"]
                    if x is not None and y is not None:
                        pts.append((x, y))
            if not pts:
                continue
            ax.scatter(*zip(*pts, strict=True), color=color(method), marker=marker(method), s=18, label=label(method))
            front = _pareto(pts, up)
            ax.plot(*zip(*front, strict=True), color=color(method), ls="--", lw=0.8)
        ax.set_xlabel(_label(xk, data))
        ax.set_ylabel(_label(yk, data))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=7, bbox_to_anchor=(0.5, 1.1), frameon=False)
    _footer(fig, data)
    fig.tight_layout()
    return fig


def draw_beta_sweep(data: dict) -> Figure:
    """HEL Fig. 6: each metric against beta (log scale), mean and std over seeds."""
    cells = data.get("cells", {})
    metrics = list(next(iter(cells.values()))) if cells else []
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(7.2, 2.4), squeeze=False)
    betas = sorted(cells, key=float)
    for ax, metric in zip(axes[0], metrics, strict=False):
        for method in data["methods"]:
            xs, ms, ss = [], [], []
            for b in betas:
                o = cells[b][metric][method]["ours"]
                if o["mean"] is not None:
                    xs.append(float(b))
                    ms.append(o["mean"])
                    ss.append(o["std"] or 0.0)
            if xs:
                ax.plot(xs, ms, color=color(method), marker=marker(method), label=label(method), lw=1.2, ms=4)
                ax.fill_between(xs, [m - s for m, s in zip(ms, ss, strict=True)],
                                [m + s for m, s in zip(ms, ss, strict=True)], color=color(method), alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_title(_label(metric, data))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=7, bbox_to_anchor=(0.5, 1.12), frameon=False)
    _footer(fig, data)
    fig.tight_layout()
    return fig
