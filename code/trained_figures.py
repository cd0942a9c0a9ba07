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


def _seed_counts(data) -> set[int]:
    """The seed counts ``n`` of our mean/std cells anywhere in a summary (the paper's cells aside)."""
    if isinstance(data, dict):
        own = {data["n"]} if {"mean", "n"} <= data.keys() and isinstance(data["n"], int) and data["n"] > 0 else set()
        return own.union(*(_seed_counts(v) for k, v in data.items() if k != "paper"))
    if isinstance(data, list):
        return set().union(*(_seed_counts(v) for v in data))
    return set()


def seeds_phrase(data: dict) -> str:
    """What a point or bar of the figure is, as true for the runs found: "mean ± std over 3 seeds", "one seed (no
    spread)", or the range when points have different counts."""
    counts = _seed_counts(data)
    if not counts:
        return "no runs found"
    if counts == {1}:
        return "one seed per point (no spread shown)"
    lo, hi = min(counts), max(counts)
    if lo == hi:
        return f"mean ± std over {hi} seeds"
    return f"mean ± std over {lo} to {hi} seeds per point (no spread where one)"


STALE_NOTE = "hollow: a stale run (earlier defaults), not comparable until retrained"


def stale_points(data: dict) -> set[tuple[str, str]]:
    """(method, block) of the cells of a summary that rest on a stale run (the tables' dagger,
    :func:`poolvae.experiments.stale_cells`); a block is a beta as its key is written, or "best"."""
    from .experiments import cell_beta, stale_cells

    stale = stale_cells(data)
    if not stale:
        return set()
    blocks = set(data.get("cells", {})) | {b for section in data.get("curves", {}).values() for b in section}
    return {(m, b) for b in blocks for m in data.get("methods", ())
            if (data.get("dataset"), m, cell_beta(b, m, data)) in stale}


def _hollow(ax, xs, ys, method: str) -> None:
    """Redraw the points (``xs``, ``ys``) of ``method`` hollow: they rest on a stale run."""
    if xs:
        ax.scatter(xs, ys, s=20, facecolors="white", edgecolors=color(method), marker=marker(method), linewidths=1,
                   zorder=4)


def _stale_extra(drawn: bool) -> str:
    """The footer's note on hollow points, when some were drawn."""
    return f"; {STALE_NOTE}" if drawn else ""


def _footer(fig: Figure, data: dict, extra: str = "") -> None:
    fig.text(0.5, -0.02, f"scale {data['scale']} on {data['dataset']}: {data['runs_found']} of "
             f"{data['runs_expected']} runs; {seeds_phrase(data)}{extra}", ha="center", va="top", fontsize=7)


def _finish(fig: Figure, legend_ax, data: dict, top: float = 1.12, extra: str = "") -> Figure:
    """One legend above the panels (the methods of ``legend_ax``), the scale footer (+ ``extra``), a tight layout."""
    handles, labels = legend_ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 7), bbox_to_anchor=(0.5, top),
                   frameon=False)
    _footer(fig, data, extra)
    fig.tight_layout()
    return fig


def draw_curves(data: dict) -> Figure:
    """Metrics against the number of input modalities, one panel per section (hel-fig5, wb-fig3)."""
    sections = list(data.get("curves", {}))
    fig, axes = plt.subplots(1, max(len(sections), 1), figsize=(2.4 * max(len(sections), 1) + 0.6, 2.4),
                             squeeze=False)
    stale, hollow = stale_points(data), False
    for ax, section in zip(axes[0], sections, strict=False):
        for beta, by_method in data["curves"][section].items():
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
                if (method, beta) in stale:
                    _hollow(ax, ks, mean, method)
                    hollow = True
        ax.set_xlabel("number of input modalities")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(_label(section, data))
        ax.grid(alpha=0.3)
    return _finish(fig, axes[0][0], data, extra=_stale_extra(hollow))


def _pareto(points: list[tuple[float, float]], maximise_y: bool) -> list[tuple[float, float]]:
    """Non-dominated points when x (coherence) is maximised and y is maximised or minimised."""
    sign = 1 if maximise_y else -1
    front = [p for p in points
             if not any(q != p and q[0] >= p[0] and sign * q[1] >= sign * p[1] for q in points)]
    return sorted(front)


def draw_tradeoffs(data: dict) -> Figure:
    """HEL Fig. 3: coherence against log-likelihood and against quality, one point per beta (its beta written
    beside it), Pareto fronts dashed."""
    pairs = [("coherence/conditional", "log_likelihood/joint", True),
             ("coherence/unconditional", "log_likelihood/joint", True),
             ("coherence/conditional", "quality/conditional", False)]
    fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.5))
    stale, hollow = stale_points(data), False
    for ax, (xk, yk, up) in zip(axes, pairs, strict=True):
        for method in data["methods"]:
            pts, betas, old = [], [], []
            for beta, by_metric in data.get("cells", {}).items():
                if xk in by_metric and yk in by_metric:
                    x, y = by_metric[xk][method]["ours"]["mean"], by_metric[yk][method]["ours"]["mean"]
                    if x is not None and y is not None:
                        pts.append((x, y))
                        per = data.get("block_betas", {}).get(beta)  # "best" blocks: each method's own beta
                        betas.append(f"{per[method]:g}" if per else beta)
                        if (method, beta) in stale:
                            old.append((x, y))
            if not pts:
                continue
            ax.scatter(*zip(*pts, strict=True), color=color(method), marker=marker(method), s=18, label=label(method))
            if old:
                _hollow(ax, *map(list, zip(*old, strict=True)), method)
                hollow = True
            for (x, y), b in zip(pts, betas, strict=True):
                ax.annotate(b, (x, y), xytext=(2.5, 2.5), textcoords="offset points", fontsize=4.5,
                            color=color(method))
            front = _pareto(pts, up)
            ax.plot(*zip(*front, strict=True), color=color(method), ls="--", lw=0.8)
        ax.set_xlabel(_label(xk, data))
        ax.set_ylabel(_label(yk, data))
        ax.grid(alpha=0.3)
    return _finish(fig, axes[0], data, top=1.1,
                   extra="; the number beside a point is its β; dashed: Pareto front" + _stale_extra(hollow))


def draw_beta_sweep(data: dict) -> Figure:
    """HEL Fig. 6: each metric against beta (log scale), mean and std over seeds."""
    cells = data.get("cells", {})
    metrics = list(next(iter(cells.values()))) if cells else []
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(7.2, 2.4), squeeze=False)
    betas = sorted(cells, key=float)
    stale, hollow = stale_points(data), False
    for ax, metric in zip(axes[0], metrics, strict=False):
        for method in data["methods"]:
            xs, ms, ss, old = [], [], [], []
            for b in betas:
                o = cells[b][metric][method]["ours"]
                if o["mean"] is not None:
                    xs.append(float(b))
                    ms.append(o["mean"])
                    ss.append(o["std"] or 0.0)
                    if (method, b) in stale:
                        old.append((float(b), o["mean"]))
            if xs:
                ax.plot(xs, ms, color=color(method), marker=marker(method), label=label(method), lw=1.2, ms=4)
                ax.fill_between(xs, [m - s for m, s in zip(ms, ss, strict=True)],
                                [m + s for m, s in zip(ms, ss, strict=True)], color=color(method), alpha=0.15, lw=0)
                if old:
                    _hollow(ax, *map(list, zip(*old, strict=True)), method)
                    hollow = True
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_title(_label(metric, data))
        ax.grid(alpha=0.3)
    return _finish(fig, axes[0][0], data, extra=_stale_extra(hollow))


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


# --------------------------------------------------------------------------------------------------
# Panel figures (hel-fig10..13, wb-fig4, wb-figS5..S9, S12): drawn from the panels of each run's sample file
# (poolvae.evaluate.write_panels); text is drawn as text, wrapped above the column it belongs to
# --------------------------------------------------------------------------------------------------

def panel(arrays: dict, name: str) -> dict:
    """One panel of a sample file: ``given`` {modality: array}, ``gen`` {modality: (draws, columns, ...)},
    ``labels`` (columns, L) and ``rows``."""
    given = {k.split("__")[2]: v for k, v in arrays.items() if k.startswith(f"{name}__given__")}
    gen = {k.split("__")[2]: v for k, v in arrays.items() if k.startswith(f"{name}__gen__")}
    return {"given": given, "gen": gen, "labels": arrays.get(f"{name}__labels"), "rows": arrays.get(f"{name}__rows")}


def image_grid(images: np.ndarray, gap: int = 2) -> np.ndarray:
    """(R, C, H, W, ch) uint8 images -> one (R*(H+gap)-gap, C*(W+gap)-gap, 3) uint8 grid on white."""
    r, c, h, w, ch = images.shape
    out = np.full((r * (h + gap) - gap, c * (w + gap) - gap, ch), 255, np.uint8)
    for i in range(r):
        for j in range(c):
            out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = images[i, j]
    return np.repeat(out, 3, -1) if ch == 1 else out


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(str(text), width)) or "(empty)"


def _column_texts(ax, texts, width_px: int, gap: int = 2, chars: int = 18, fontsize: float = 4.0) -> None:
    """Each text wrapped and centred above its image column (data coordinates of an ``imshow``)."""
    for j, t in enumerate(texts):
        ax.text(j * (width_px + gap) + width_px / 2, -3, _wrap(t, chars), ha="center", va="bottom",
                fontsize=fontsize, transform=ax.transData, clip_on=False)


def _load_all(data: dict) -> dict:
    return {m: load_samples(data["samples"][m]) for m in data["methods"] if m in data.get("samples", {})}


def _method_title(m: str, data: dict) -> str:
    return f"{label(m)} (β {data['samples'][m]['beta']:g})" if m in data.get("samples", {}) else \
        f"{label(m)}: no samples"


def _model_rows(data: dict, arrays: dict, width: float, row_height: float, extra: float, fontsize: float = 6):
    """A figure with one axes row per model; rows of models without samples say so. Returns the figure and
    ``[(row, method, axes)]`` for the models that have samples."""
    n = len(data["methods"])
    fig, axes = plt.subplots(n, 1, figsize=(width, row_height * n + extra), squeeze=False)
    rows = []
    for i, m in enumerate(data["methods"]):
        ax = axes[i][0]
        ax.axis("off")
        if m not in arrays:
            ax.text(0.5, 0.5, _method_title(m, data), ha="center", va="center", fontsize=fontsize,
                    transform=ax.transAxes)
        else:
            rows.append((i, m, ax))
    return fig, rows


def _show_row(ax, gen, m: str, data: dict) -> None:
    """One model's image grid ``gen`` (rows, columns, H, W, C), titled with the model on the left."""
    ax.imshow(image_grid(gen), interpolation="nearest")
    ax.text(-4, gen.shape[2] / 2, _method_title(m, data), ha="right", va="center", fontsize=6)


def draw_cub_colours(data: dict) -> Figure:
    """HEL Fig. 10: per model (rows), images generated from each colour caption (columns) of the coherence test."""
    arrays = _load_all(data)
    if not arrays:
        return _empty_figure(data)
    name = data["panels"][0]
    fig, rows = _model_rows(data, arrays, 6.4, 1.25, 0.5, fontsize=7)
    for i, m, ax in rows:
        p = panel(arrays[m], name)
        gen = p["gen"]["img"]  # (draws, colours, H, W, C)
        _show_row(ax, gen, m, data)
        if i == 0:
            _column_texts(ax, [c.rsplit(" ", 1)[-1] for c in p["given"]["text"]], gen.shape[3], fontsize=6)
    _samples_footer(fig, data, "columns: 'this bird is completely <colour>'; rows per model: independent draws")
    fig.tight_layout()
    return fig


def draw_caption_draws(data: dict) -> Figure:
    """HEL Fig. 11: one test caption (top) and, per model, the images generated from it (one row each)."""
    arrays = _load_all(data)
    if not arrays:
        return _empty_figure(data)
    name = data["panels"][0]
    first = panel(next(iter(arrays.values())), name)
    fig, rows = _model_rows(data, arrays, 3.2, 0.85, 0.6)
    fig.suptitle(_wrap(first["given"]["text"][0], 60), fontsize=7)
    for _, m, ax in rows:
        gen = panel(arrays[m], name)["gen"]["img"][:, :1]  # (draws, 1, H, W, C): the first caption
        _show_row(ax, gen.transpose(1, 0, 2, 3, 4), m, data)
    _samples_footer(fig, data, "per model: independent images generated from the caption above")
    fig.tight_layout()
    return fig


def draw_captions_to_images(data: dict) -> Figure:
    """HEL Fig. 12: test captions (top, as text) and, per model (rows), an image generated from each."""
    arrays = _load_all(data)
    if not arrays:
        return _empty_figure(data)
    name = data["panels"][0]
    first = panel(next(iter(arrays.values())), name)
    fig, rows = _model_rows(data, arrays, 3.6, 0.95, 0.9)
    for i, m, ax in rows:
        gen = panel(arrays[m], name)["gen"]["img"][:1]  # (1, captions, H, W, C): the first draw
        _show_row(ax, gen, m, data)
        if i == 0:
            _column_texts(ax, first["given"]["text"], gen.shape[3], chars=16)
    _samples_footer(fig, data, "columns: test captions; rows: one generated image per model")
    fig.tight_layout()
    return fig


def draw_text_to_faces(data: dict) -> Figure:
    """HEL Fig. 13, WB Figs. 4 and S12: one model; per panel, the test examples' attribute text above each
    column (and the test image, where it is an input too), then faces generated from them, one row per draw."""
    arrays = _load_all(data)
    if not arrays:
        return _empty_figure(data)
    m, a = next(iter(arrays.items()))
    names = data["panels"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], names, strict=True)):
        p = panel(a, name)
        gen = p["gen"]["img"]  # (draws, columns, H, W, C)
        rows = ([p["given"]["img"][None]] if "img" in p["given"] else []) + [gen]
        ax.imshow(image_grid(np.concatenate(rows, 0)), interpolation="nearest")
        ax.axis("off")
        _column_texts(ax, p["given"]["text"], gen.shape[3], chars=22, fontsize=3.5)
        what = " and ".join("the image (first row)" if g == "img" else "the text (above)" for g in p["given"])
        prefix = f"({'abcdefgh'[k]}) " if len(names) > 1 else ""
        ax.set_title(f"{prefix}faces generated from {what}", fontsize=6, y=-0.08)
    _samples_footer(fig, data, f"{_method_title(m, data)}")
    fig.tight_layout()
    return fig


def draw_polymnist_panel(data: dict) -> Figure:
    """WB Figs. S5-S7: one model; the conditioning test examples (top rows, one per modality), then the first
    modality generated from them below the rule, one row per draw."""
    arrays = _load_all(data)
    if not arrays:
        return _empty_figure(data)
    m, a = next(iter(arrays.items()))
    name = data["panels"][0]
    p = panel(a, name)
    subset = "+".join(p["given"])
    (target, gen), = p["gen"].items()
    legacy = {"modalities": np.asarray(list(p["given"])), "inputs": np.stack(list(p["given"].values())),
              f"given_{subset}": gen}
    img = sample_panel(legacy, subset)
    fig, ax = plt.subplots(figsize=(2.6, 2.6 * img.shape[0] / img.shape[1] + 0.3))
    ax.imshow(img, interpolation="nearest")
    ax.axis("off")
    ax.set_title(_method_title(m, data), fontsize=7)
    _samples_footer(fig, data, f"top: {subset.replace('+', ', ')}; below the rule: {target} generated")
    fig.tight_layout()
    return fig


def _text_grid(ax, texts: np.ndarray, fontsize: float = 5.0) -> None:
    """(rows, columns) strings drawn as a table of text in ``ax``."""
    r, c = texts.shape
    ax.set_xlim(0, c)
    ax.set_ylim(r, 0)
    for i in range(r):
        for j in range(c):
            ax.text(j + 0.5, i + 0.5, str(texts[i, j]) or "␣", ha="center", va="center", fontsize=fontsize,
                    family="monospace")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_mst_prior(data: dict) -> Figure:
    """WB Fig. S8: prior samples per model (columns): (a)-(d) MNIST, (e)-(h) SVHN, (i)-(l) text."""
    arrays = _load_all(data)
    if not arrays:
        return _empty_figure(data)
    name = data["panels"][0]
    mods = ("mnist", "svhn", "text")
    n = len(data["methods"])
    fig, axes = plt.subplots(3, n, figsize=(1.8 * n, 4.2), squeeze=False)
    for j, m in enumerate(data["methods"]):
        for i, mod in enumerate(mods):
            ax = axes[i][j]
            ax.axis("off")
            letter = "abcdefghijklmnopqrstuvwxyz"[i * n + j]
            ax.set_title(f"({letter}) {_method_title(m, data)}", fontsize=6)
            if m not in arrays:
                continue
            g = panel(arrays[m], name)["gen"][mod]
            if mod == "text":
                ax.axis("on")
                _text_grid(ax, g)
            else:
                ax.imshow(image_grid(g), interpolation="nearest")
    _samples_footer(fig, data, "rows: MNIST, SVHN and text sampled from the prior")
    fig.tight_layout()
    return fig


def draw_mst_by_digit(data: dict) -> Figure:
    """WB Fig. S9: MNIST generated per model (columns) from SVHN (a)-(d), text (e)-(h) and both (i)-(l); one
    column per digit class, one row per draw."""
    arrays = _load_all(data)
    if not arrays:
        return _empty_figure(data)
    n = len(data["methods"])
    fig, axes = plt.subplots(len(data["panels"]), n, figsize=(1.9 * n, 1.45 * len(data["panels"]) + 0.4),
                             squeeze=False)
    for i, name in enumerate(data["panels"]):
        given = name.split("_given_", 1)[1].replace("+", " and ")
        for j, m in enumerate(data["methods"]):
            ax = axes[i][j]
            ax.axis("off")
            letter = "abcdefghijklmnopqrstuvwxyz"[i * n + j]
            ax.set_title(f"({letter}) {_method_title(m, data)}, given {given}", fontsize=5)
            if m not in arrays:
                continue
            p = panel(arrays[m], name)
            g = p["gen"]["mnist"]
            ax.imshow(image_grid(g), interpolation="nearest")
            _column_texts(ax, [str(int(y[0])) for y in p["labels"]], g.shape[3], fontsize=4)
    _samples_footer(fig, data, "columns: the test example's digit; rows: independent draws")
    fig.tight_layout()
    return fig


def draw_attributes(data: dict) -> Figure:
    """HEL Figs. 14-15, WB Figs. S10-S11: average precision per CelebA attribute (bars, mean ± std over seeds),
    one panel per input subset; coherence panels show each generated modality."""
    panels = data.get("panels", {})
    if not panels:
        fig, ax = plt.subplots(figsize=(6.0, 1.0))
        ax.axis("off")
        ax.text(0.0, 1.0, f"{data['item']}: no evaluation.json with per-attribute scores of {data['method']} "
                f"(β {data['beta']:g}) at scale {data['scale']}", ha="left", va="top", fontsize=7,
                transform=ax.transAxes)
        return fig
    names = data["attributes"]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 1.0, 0.13 * len(names) + 1.2),
                             sharey=True, squeeze=False)
    y = np.arange(len(names))
    for k, (ax, (subset, series)) in enumerate(zip(axes[0], panels.items(), strict=True)):
        h = 0.8 / len(series)
        for i, (key, s) in enumerate(series.items()):
            mean = np.asarray(s["mean"], dtype=float)
            err = None if s["std"] is None else np.asarray(s["std"], dtype=float)
            name = "latent" if key == "latent" else f"{key} generated"
            ax.barh(y + (i - (len(series) - 1) / 2) * h, mean, h, xerr=err, label=name,
                    color=f"C{i}", error_kw={"lw": 0.5})
        ax.set_yticks(y, [n.replace("_", " ") for n in names], fontsize=5)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("average precision ↑", fontsize=6)
        ax.set_title(f"({'abcdefgh'[k]}) input: {subset.replace('img', 'image').replace('+', ' and ')}", fontsize=7)
        ax.grid(axis="x", alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=5, loc="lower right")
    fig.text(0.5, -0.01, f"{label(data['method'])} at β {data['beta']:g}, scale {data['scale']} on "
             f"{data['dataset']}: {data['runs_with_attributes']} of {data['runs_expected']} runs with per-attribute "
             f"scores; {seeds_phrase(data.get('panels', {}))}", ha="center", va="top", fontsize=6)
    fig.tight_layout()
    return fig
