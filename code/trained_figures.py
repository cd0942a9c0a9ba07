"""Drawing the trained figures (hel-fig3, hel-fig4, hel-fig5, hel-fig6, hel-fig9, wb-fig3) from their results files.

Each function takes the summary that :func:`poolvae.experiments.render` wrote to ``results/<id>.json``
and returns a matplotlib figure in the paper's layout; :mod:`poolvae.figures` registers them and saves
the files. Every panel says at which scale its numbers were made, and a method without runs is left
out of the legend rather than drawn from anything else. The sample figures (hel-fig4, hel-fig9) read the
small ``samples.npz`` arrays that :func:`poolvae.evaluate.write_samples` commits with each run (checkpoints
are not in the repository) and name the runs that have none.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
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


def _finish(fig: Figure, legend_ax, data: dict, top: float = 1.12) -> Figure:
    """One legend above the panels (the methods of ``legend_ax``), the scale footer, a tight layout."""
    handles, labels = legend_ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 7), bbox_to_anchor=(0.5, top),
                   frameon=False)
    _footer(fig, data)
    fig.tight_layout()
    return fig


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
    return _finish(fig, axes[0][0], data)


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
    return _finish(fig, axes[0], data, top=1.1)


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
    return _finish(fig, axes[0][0], data)


# --------------------------------------------------------------------------------------------------
# Sample figures (hel-fig4, hel-fig9): drawn from each run's samples.npz
# --------------------------------------------------------------------------------------------------

def load_samples(entry: dict) -> dict:
    """The arrays of one run's ``samples.npz`` (``entry["file"]``: repository-relative or absolute)."""
    import numpy as np

    from .artefacts import REPO_ROOT

    f = Path(entry["file"])
    with np.load(f if f.is_absolute() else REPO_ROOT / f) as z:
        return {k: z[k] for k in z.files}


def sample_panel(arrays: dict, subset: str, gap: int = 2, rule: int = 6) -> np.ndarray:
    """One panel as an (H, W, 3) uint8 image: the conditioning inputs of ``subset`` (one row per modality),
    a wider white rule, then each draw of the target generated from them (one row per draw)."""
    names = [str(n) for n in arrays["modalities"]]
    inputs = [arrays["inputs"][names.index(n)] for n in subset.split("+")]  # each (columns, H, W, C)
    draws = list(arrays[f"given_{subset}"])  # each (columns, H, W, C)
    n, h, w, c = inputs[0].shape

    def strip(images: np.ndarray) -> np.ndarray:
        row = np.full((h, n * (w + gap) - gap, c), 255, np.uint8)
        for j, im in enumerate(images):
            row[:, j * (w + gap):j * (w + gap) + w] = im
        return row

    parts = []
    for k, r in enumerate(inputs):
        parts += [strip(r), np.full((gap if k < len(inputs) - 1 else rule, n * (w + gap) - gap, c), 255, np.uint8)]
    for k, r in enumerate(draws):
        parts += [strip(r)] + ([np.full((gap, n * (w + gap) - gap, c), 255, np.uint8)] if k < len(draws) - 1 else [])
    img = np.concatenate(parts, 0)
    return np.repeat(img, 3, -1) if c == 1 else img


def _pad_to(img: np.ndarray, height: int) -> np.ndarray:
    """White rows below ``img`` up to ``height``, so panels of one figure share a pixel scale."""
    pad = np.full((height - img.shape[0], *img.shape[1:]), 255, np.uint8)
    return np.concatenate([img, pad], 0)


def _missing_text(data: dict) -> str:
    """One line per run without samples: method, beta and why."""
    return "\n".join(f"{m['method']} (β {m['beta']:g}): {m['why']}" for m in data.get("missing", []))


def _samples_footer(fig: Figure, data: dict, what: str) -> None:
    lines = [f"scale {data['scale']} on {data['dataset']}: {what}; {data['runs_found']} of "
             f"{data['runs_expected']} runs have samples.npz"]
    if data.get("missing"):
        lines.append("without samples: " + "; ".join(f"{m['method']} ({m['why']})" for m in data["missing"]))
    fig.text(0.5, -0.01, "\n".join(lines), ha="center", va="top", fontsize=6)


def _empty_figure(data: dict) -> Figure:
    """A figure that says which runs lack samples, when none has them."""
    fig, ax = plt.subplots(figsize=(6.0, 1.2 + 0.15 * len(data.get("missing", []))))
    ax.axis("off")
    ax.text(0.0, 1.0, f"{data['item']}: no run has samples.npz yet (written by `python -m poolvae.evaluate "
            f"RUN_DIR`)\n" + _missing_text(data), ha="left", va="top", fontsize=7, transform=ax.transAxes)
    return fig


def draw_samples_all_but_one(data: dict) -> Figure:
    """HEL Fig. 4: per model, test examples of four modalities (top rows) and the second modality generated
    from them (the rows below the rule), one panel per model."""
    have = [m for m in data["methods"] if m in data.get("samples", {})]
    if not have:
        return _empty_figure(data)
    arrays = {m: load_samples(data["samples"][m]) for m in have}
    subset = str(arrays[have[0]]["subsets"][-1])  # the largest subset: every modality but the target
    panels = {m: sample_panel(a, subset) for m, a in arrays.items()}
    cols = min(len(data["methods"]), 4)
    rows = -(-len(data["methods"]) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, m in zip(axes.flat, data["methods"], strict=False):
        if m in panels:
            ax.imshow(panels[m], interpolation="nearest")
            ax.set_title(f"{label(m)} (β {data['samples'][m]['beta']:g})", fontsize=7)
        else:
            ax.text(0.5, 0.5, f"{label(m)}\nno samples.npz", ha="center", va="center", fontsize=7,
                    transform=ax.transAxes)
    target = str(arrays[have[0]]["target"])
    _samples_footer(fig, data, f"top: inputs {subset.replace('+', ', ')}; below the rule: {target} generated")
    fig.tight_layout()
    return fig


def draw_samples_by_subset(data: dict) -> Figure:
    """HEL Fig. 9: per model (rows), the second modality generated from (i) the first, (ii) the first and third,
    (iii) the first, third and fourth, (iv) the first, third, fourth and fifth modality (columns)."""
    have = [m for m in data["methods"] if m in data.get("samples", {})]
    if not have:
        return _empty_figure(data)
    arrays = {m: load_samples(data["samples"][m]) for m in have}
    subsets = [str(s) for s in arrays[have[0]]["subsets"]]
    panels = {m: [sample_panel(a, s) for s in subsets] for m, a in arrays.items()}
    height = max(p.shape[0] for ps in panels.values() for p in ps)
    fig, axes = plt.subplots(len(data["methods"]), len(subsets), figsize=(1.6 * len(subsets), 1.35 *
                             len(data["methods"])), squeeze=False)
    for i, m in enumerate(data["methods"]):
        for j, s in enumerate(subsets):
            ax = axes[i][j]
            ax.axis("off")
            if m in panels:
                ax.imshow(_pad_to(panels[m][j], height), interpolation="nearest")
            elif j == 0:
                ax.text(0.0, 0.5, "no samples.npz", ha="left", va="center", fontsize=7, transform=ax.transAxes)
            if i == 0:
                ax.set_title(f"({'i' * (j + 1) if j < 3 else 'iv'}) given {s.replace('+', ', ')}", fontsize=7)
        beta = f" (β {data['samples'][m]['beta']:g})" if m in panels else ""
        axes[i][0].text(-0.05, 0.5, label(m) + beta, ha="right", va="center", fontsize=7, rotation=0,
                        transform=axes[i][0].transAxes)
    target = str(arrays[have[0]]["target"])
    _samples_footer(fig, data, f"in each panel the inputs on top, {target} generated below the rule")
    fig.tight_layout()
    return fig
