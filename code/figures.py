"""Recompute every exact figure and redraw every trained one from ``results/``.

    python -m poolvae.figures                       # all items (what `make figures` runs)
    python -m poolvae.figures --only hel-fig2 wb-fig2
    python -m poolvae.figures --list                # the registry: item, kind, state

Each item has one id, used for its make target, its results file and its figure files. An *exact*
item (synthetic experts, :mod:`poolvae.synthetic`) is computed here in seconds: its numbers go to
``results/<id>.json`` (with a provenance block), then the file is read back and drawn to
``figures/<id>.png`` and ``.pdf``, so a figure always shows exactly what its results file holds. A
*trained* item is only drawn, from the results file its ``make reproduce-<id>`` target writes; if that
file is missing (or no drawing function is registered for the item yet) the item is skipped with the
reason. One summary line is printed per item. Nothing here is random; ``--seed`` is recorded in the
provenance for uniformity with the trained items.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from . import synthetic, trained_figures
from .artefacts import (
    FIGURES_DIR,
    RESULTS_DIR,
    provenance,
    read_json,
    repo_relative,
    save_figure,
    write_json,
)
from .palette import PAPER_WIDTH, color, label, method_style, paper_style

# --------------------------------------------------------------------------------------------------
# Shared drawing helpers
# --------------------------------------------------------------------------------------------------

METRIC_TITLES = {
    "nll": "NLL ↓",
    "bc": "Bhattacharyya coefficient ↑",
    "sharpness": "Sharpness: trace of covariance ↓",
}
EXTREMES_NOTE = "Coloured numbers: minimum–maximum of a curve."
METRIC_SHORT = {"nll": "NLL", "bc": "BC", "sharpness": "sharpness"}
#: Methods that may be drawn off the others' scale (HEL Figs. 2 and 7 show their min and max values).
OFF_SCALE = ("poe", "wb")


def _fmt(v: float) -> str:
    """Three significant digits, as written on the panels."""
    return f"{v:.3g}"


def _plot_curves(ax, x: list, curves: dict[str, list]) -> None:
    """One line per method, in the palette's colour, marker and line style."""
    for name, y in curves.items():
        ax.plot(x, y, **method_style(name), zorder=3 if name in ("holder", "hellinger") else 2)


def _reference(ax, value: float) -> None:
    """The true distribution's own value of a metric, as a dotted line."""
    ax.axhline(value, **{**method_style("truth", markers=False), "linewidth": 0.9}, zorder=1)


def _split_limits(curves: dict[str, list]) -> tuple[tuple, tuple] | None:
    """Limits ``(bottom, top)`` of a broken y-axis when PoE/WB lie far above the other methods, else None.

    The bottom part spans the other methods (padded); the top part spans the off-scale values.
    """
    others = [v for m, y in curves.items() if m not in OFF_SCALE for v in y]
    lo, hi = min(others), max(others)
    span = max(hi - lo, 0.05 * abs(hi), 1e-3)
    bottom = (lo - 0.15 * span, hi + 0.15 * span)
    off = [m for m in OFF_SCALE if m in curves and max(curves[m]) > hi + span]
    if not off:
        return None
    above = [v for m in off for v in curves[m] if v > bottom[1]]
    t_lo, t_hi = min(above), max(above)
    t_span = max(t_hi - t_lo, 0.05 * t_hi)
    return bottom, (max(bottom[1], t_lo - 0.15 * t_span), t_hi + 0.2 * t_span)


def _break_marks(top, bottom) -> None:
    """The small diagonal strokes that mark a broken axis."""
    kw = {"marker": [(-1, -0.5), (1, 0.5)], "markersize": 6, "linestyle": "none", "color": "k",
          "mec": "k", "mew": 0.6, "clip_on": False}
    top.plot([0], [0], transform=top.transAxes, **kw)
    bottom.plot([0], [1], transform=bottom.transAxes, **kw)


#: Candidate anchors for a text block inside a panel, in axes fractions: (x, y, ha, va); corners first.
_SPOTS = tuple(
    [(0.03, 0.96, "left", "top"), (0.97, 0.96, "right", "top"), (0.97, 0.05, "right", "bottom"),
     (0.03, 0.05, "left", "bottom")]
    + [(x, y, ha, "center") for y in (0.8, 0.65, 0.5, 0.35, 0.2)
       for x, ha in ((0.97, "right"), (0.03, "left"))]
    + [(0.5, y, "center", "center") for y in (0.8, 0.65, 0.5, 0.35, 0.2)]
)


def _curve_points(ax, x: list, curves: dict, references: tuple = ()) -> np.ndarray:
    """The curves (densified, 16 points per segment) and reference lines in axes fractions, (N, 2)."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    t = np.linspace(0.0, 1.0, 16)
    pts = []
    for y in [*curves.values(), *([r] * len(x) for r in references)]:
        for i in range(len(x) - 1):
            pts.append(np.stack([x[i] + t * (x[i + 1] - x[i]), y[i] + t * (y[i + 1] - y[i])], -1))
    p = np.concatenate(pts)
    return np.stack([(p[:, 0] - x0) / (x1 - x0), (p[:, 1] - y0) / (y1 - y0)], -1)


def _free_spot(points: np.ndarray, width: float, height: float) -> tuple[tuple, int]:
    """The first anchor in :data:`_SPOTS` whose box (axes fractions) no curve point enters, else the
    one with the fewest points inside; and that number of points."""
    best, best_n = _SPOTS[0], -1
    for spot in _SPOTS:
        ax_, ay, ha, va = spot
        left = {"left": ax_, "right": ax_ - width, "center": ax_ - width / 2}[ha]
        bottom = {"bottom": ay, "top": ay - height, "center": ay - height / 2}[va]
        inside = ((points[:, 0] > left - 0.02) & (points[:, 0] < left + width + 0.02)
                  & (points[:, 1] > bottom - 0.03) & (points[:, 1] < bottom + height + 0.03))
        n = int(inside.sum())
        if n == 0:
            return spot, 0
        if best_n < 0 or n < best_n:
            best, best_n = spot, n
    return best, best_n


def _annotate_extremes(axes: list, x: list, curves: dict, names: tuple, reference: float,
                       fontsize: float = 6.5) -> None:
    """Write "name min–max" of the given methods in a free spot of the panel (no curve crosses it).

    For a broken axis the block goes into the first of ``axes`` that has a free spot.
    """
    # a constant curve (WB without bad experts: the expert itself) needs no min and max
    varies = [n for n in names if n in curves and max(curves[n]) - min(curves[n]) > 1e-9]
    lines = [(f"{label(n)} {_fmt(min(curves[n]))}–{_fmt(max(curves[n]))}", color(n)) for n in varies]
    if not lines:
        return
    for k, ax in enumerate(axes):
        bbox = ax.get_window_extent()
        if bbox.height <= 0:
            continue
        scale = ax.figure.dpi / 72.0
        width = max(len(t) for t, _ in lines) * 0.52 * fontsize * scale / bbox.width
        line_h = 1.3 * fontsize * scale / bbox.height
        points = _curve_points(ax, x, curves, (reference,))
        (ax_, ay, ha, va), crossings = _free_spot(points, width, line_h * len(lines))
        if crossings and k < len(axes) - 1:
            continue  # try the next axes of a broken pair
        top = {"top": ay, "bottom": ay + line_h * len(lines), "center": ay + line_h * len(lines) / 2}[va]
        for j, (text, col) in enumerate(lines):
            ax.text(ax_, top - j * line_h, text, transform=ax.transAxes, ha=ha, va="top", color=col,
                    fontsize=fontsize, zorder=5,
                    bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.3})
        return


def _metric_panel(fig, cell, x: list, curves: dict, metric: str, reference: float,
                  annotate: tuple[str, ...]) -> tuple:
    """One metric against the number of good experts, in a gridspec cell; a broken y-axis for NLL
    when PoE/WB are far above the rest. Returns ``(top_axes_or_None, bottom_axes)``."""
    limits = _split_limits(curves) if metric == "nll" else None
    if limits is None:
        ax = fig.add_subplot(cell)
        _plot_curves(ax, x, curves)
        _reference(ax, reference)
        if metric == "bc":
            ax.set_ylim(-0.03, 1.06)
        _annotate_extremes([ax], x, curves, annotate, reference)
        return None, ax
    sub = cell.subgridspec(2, 1, height_ratios=[1, 1.5], hspace=0.1)
    top, ax = fig.add_subplot(sub[0]), fig.add_subplot(sub[1], sharex=None)
    for a in (top, ax):
        _plot_curves(a, x, curves)
        _reference(a, reference)
    ax.set_ylim(*limits[0])
    top.set_ylim(*limits[1])
    top.spines["bottom"].set_visible(False)
    top.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    _break_marks(top, ax)
    _annotate_extremes([top, ax], x, curves, annotate, reference)
    return top, ax


def _coincident(curves: dict[str, list]) -> list[list[str]]:
    """Groups of two or more methods whose curves are equal to 1e-9 (relative)."""
    groups: list[list[str]] = []
    for name, y in curves.items():
        for g in groups:
            ref = curves[g[0]]
            if all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in zip(y, ref, strict=True)):
                g.append(name)
                break
        else:
            groups.append([name])
    return [g for g in groups if len(g) > 1]


#: Why curves coincide, by group of methods (keys sorted as in the figure's method order).
WHY_EQUAL = {
    ("holder", "hellinger"): "Hellinger is the moment match of Hölder, so their covariances are equal",
    ("moe", "holder", "hellinger", "wb"): "identical experts: each rule returns the expert itself",
}


def _coincidence_note(rows: list[tuple[str, dict]], order: list[str]) -> str:
    """A footnote naming the curves that coincide, so that hidden lines are not taken for missing ones.

    ``rows`` pairs a row name ("" for a single row) with its ``{metric: {method: curve}}``.
    """
    hits: dict[tuple, dict[str, set]] = {}  # group -> row -> metrics
    for where, metrics in rows:
        for metric, curves in metrics.items():
            for g in _coincident(curves):
                group = tuple(sorted(g, key=order.index))
                hits.setdefault(group, {}).setdefault(where, set()).add(metric)
    notes = []
    for group, by_row in hits.items():
        by_metrics: dict[frozenset, list[str]] = {}
        for where, ms in by_row.items():
            by_metrics.setdefault(frozenset(ms), []).append(where)
        parts = []
        for ms, wheres in by_metrics.items():
            what = ("every metric" if len(ms) == len(METRIC_SHORT)
                    else "/".join(METRIC_SHORT[m] for m in METRIC_SHORT if m in ms))
            parts.append(what + (f" with {', '.join(wheres)} bad experts" if wheres != [""] else ""))
        why = f" ({WHY_EQUAL[group]})" if group in WHY_EQUAL else ""
        notes.append(f"{' = '.join(label(m) for m in group)} on {'; '.join(parts)}{why}")
    return ("Curves that coincide: " + ". ".join(notes) + ".") if notes else ""


def _legend(fig, methods: list[str], extra: tuple = ("truth",), y: float = 1.0) -> None:
    """One legend for the whole figure, above the panels."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], **method_style(m)) for m in methods]
    handles += [Line2D([], [], **{**method_style(m, markers=False), "label": "true distribution"})
                for m in extra]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, y), ncol=len(handles),
               handlelength=2.2, columnspacing=1.2)


# --------------------------------------------------------------------------------------------------
# hel-fig2 and hel-fig7: metrics against the number of good experts
# --------------------------------------------------------------------------------------------------


def _ordered(metrics: dict, methods: list[str]) -> dict:
    """``{metric: {method: curve}}`` with methods in the figure's order (JSON files sort keys)."""
    return {m: {k: metrics[m][k] for k in methods} for m in synthetic.METRICS}


def draw_hel_fig2(data: dict) -> Figure:
    """HEL Fig. 2: NLL, Bhattacharyya coefficient and sharpness vs the number of good experts."""
    x, ref, methods = data["n_good"], data["reference"], data["methods"]
    t = _ordered(data["metrics"], methods)
    fig = Figure(figsize=(PAPER_WIDTH, 2.35), layout="constrained")
    gs = fig.add_gridspec(1, 3)
    for c, metric in enumerate(synthetic.METRICS):
        # HEL Fig. 2 shows PoE's minimum and maximum NLL
        top, ax = _metric_panel(fig, gs[0, c], x, t[metric], metric, ref[metric],
                                annotate=("poe",) if metric == "nll" else ())
        (top or ax).set_title(METRIC_TITLES[metric])
        ax.set_xlabel("number of good experts")
        ax.set_xticks(x)
    _legend(fig, methods)
    note = _coincidence_note([("", t)], methods)
    fig.text(0.5, -0.02, f"{data['n_bad']} bad experts fixed. {EXTREMES_NOTE} {note}", ha="center", va="top",
             fontsize=6.5, wrap=True)
    return fig


def draw_hel_fig7(data: dict) -> Figure:
    """HEL Fig. 7: one row per number of bad experts, one column per metric, WB added.

    Laid out by hand (no layout engine) so that the columns line up across rows and the row labels sit
    in the left margin; ``save_figure`` trims the outer white space.
    """
    x, ref, methods = data["n_good"], data["reference"], data["methods"]
    rows = [(r["n_bad"], _ordered(r["metrics"], methods)) for r in data["rows"]]
    fig = Figure(figsize=(PAPER_WIDTH, 1.8 * len(rows) + 0.7))
    gs = fig.add_gridspec(len(rows), 3, left=0.085, right=0.99, top=0.92, bottom=0.1,
                          wspace=0.22, hspace=0.2)
    for r, (n_bad, t) in enumerate(rows):
        for c, metric in enumerate(synthetic.METRICS):
            # HEL Fig. 7 shows the minimum and maximum NLL and BC of PoE and WB
            top, ax = _metric_panel(fig, gs[r, c], x, t[metric], metric, ref[metric],
                                    annotate=("poe", "wb") if metric in ("nll", "bc") else ())
            if r == 0:
                (top or ax).set_title(METRIC_TITLES[metric])
            ax.set_xticks(x)
            if r == len(rows) - 1:
                ax.set_xlabel("number of good experts")
            else:
                ax.tick_params(labelbottom=False)
        box = gs[r, 0].get_position(fig)
        fig.text(0.005, 0.5 * (box.y0 + box.y1), f"{n_bad} bad expert{'' if n_bad == 1 else 's'}",
                 rotation=90, ha="left", va="center", fontweight="bold")
    _legend(fig, methods, y=0.95)
    note = _coincidence_note([(str(n_bad), t) for n_bad, t in rows], methods)
    fig.text(0.5, 0.005, f"{EXTREMES_NOTE} {note}", ha="center", va="bottom", fontsize=6.5, wrap=True)
    return fig


# --------------------------------------------------------------------------------------------------
# hel-fig1 and holder-alpha: densities of three 2-D experts
# --------------------------------------------------------------------------------------------------

#: Filled contours at these fractions of each panel's peak density.
CONTOUR_FRACTIONS = (0.02, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0)
#: Part of the hel-fig1 grid that is shown (the grid itself is wider so every pool is normalised).
VIEW = {"x": (-2.5, 6.0), "y": (-2.5, 2.5)}


def _cmap(name: str) -> LinearSegmentedColormap:
    """White to the method's colour."""
    return LinearSegmentedColormap.from_list(f"to_{name}", ["#ffffff", color(name)])


def _density_panel(ax, xs, ys, density: np.ndarray, name: str, means, variances) -> None:
    """Filled density contours, the experts' means (numbered) and 1-sigma circles, the pool's mean."""
    levels = [f * float(density.max()) for f in CONTOUR_FRACTIONS]
    ax.contourf(xs, ys, density, levels=[0.0, *levels], cmap=_cmap(name), extend="neither")
    ax.contour(xs, ys, density, levels=levels, colors=[color(name)], linewidths=0.4)
    for j, (m, v) in enumerate(zip(means, variances, strict=True)):
        s = math.sqrt(v)
        ax.add_patch(Ellipse(m, 2 * s, 2 * s, fill=False, color="0.35", linestyle="--", linewidth=0.6))
        ax.plot(*m, marker="x", color="0.2", markersize=4, linestyle="none")
        ax.annotate(str(j + 1), m, xytext=(3, 3), textcoords="offset points", fontsize=7, color="0.2")
    ax.set_xlim(*VIEW["x"])
    ax.set_ylim(*VIEW["y"])
    ax.set_aspect("equal")
    ax.grid(False)
    ax.set_xlabel("$z_1$")


def draw_hel_fig1(data: dict) -> Figure:
    """HEL Fig. 1: PoE, MoE and Hölder (alpha = 1/2) of two agreeing experts and a sharp distant one."""
    cfg = synthetic.from_dict(synthetic.Fig1Config, data["config"])
    xs, ys, _, _ = synthetic.fig1_grid(cfg)
    dens = synthetic.fig1_densities(cfg)
    fig = Figure(figsize=(PAPER_WIDTH, 2.0), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    for k, (ax, name) in enumerate(zip(axes, data["methods"], strict=True)):
        _density_panel(ax, xs, ys, dens[name], name, cfg.means, cfg.variances)
        ex = data["exact"][name]
        ax.plot(*ex["mean"], marker="+", color="k", markersize=7, markeredgewidth=1.2, linestyle="none")
        ax.set_title(f"({'abc'[k]}) {label(name)}")
        ax.text(0.98, 0.03, f"tr Σ = {_fmt(ex['cov_trace'])}", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7)
    axes[0].set_ylabel("$z_2$")
    fig.text(0.5, -0.02, "×: expert means (dashed: 1σ); +: mean of the pool; contours at "
             + ", ".join(f"{f:g}" for f in CONTOUR_FRACTIONS[:-1]) + " of each panel's peak density.",
             ha="center", va="top", fontsize=6.5)
    return fig


def draw_holder_alpha(data: dict) -> Figure:
    """The Hölder family from alpha = 0 (geometric) to 1 (linear), Hellinger beside alpha = 1/2, and the
    covariance trace and the mass near experts 1 and 2 along a finer sweep of alpha."""
    cfg = synthetic.from_dict(synthetic.HolderAlphaConfig, data["config"])
    e = cfg.experts
    xs, ys, _, _ = synthetic.fig1_grid(e)
    dens = synthetic.holder_alpha_densities(cfg)
    n = len(cfg.alphas)
    fig = Figure(figsize=(PAPER_WIDTH, 3.5), layout="constrained")
    axes = fig.subplots(2, (n + 2) // 2).ravel()
    names = {0.0: "α = 0 (geometric)", 1.0: "α = 1 (linear = MoE)", 0.5: "α = 0.5 (Hölder-½) and Hellinger"}
    for ax, a in zip(axes, cfg.alphas, strict=False):
        _density_panel(ax, xs, ys, dens[a], "holder", e.means, e.variances)
        g = data["on_grid"][str(float(a))]
        ax.plot(*g["mean"], marker="+", color="k", markersize=7, markeredgewidth=1.2, linestyle="none")
        ax.set_title(names.get(a, f"α = {a:g}"))
        ax.text(0.98, 0.03, f"tr Σ = {_fmt(g['cov_trace'])}", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=7)
        if a == 0.5:  # the Gaussian that HELVAE uses instead: same mean and (diagonal) covariance
            h = data["hellinger"]
            sd = [math.sqrt(v) for v in h["var"]]
            for k, ls in ((1, "-"), (2, (0, (3, 1.5)))):
                ax.add_patch(Ellipse(h["mean"], 2 * k * sd[0], 2 * k * sd[1], fill=False,
                                     color=color("hellinger"), linestyle=ls, linewidth=1.1))
                ax.text(h["mean"][0], h["mean"][1] + k * sd[1], f"{k}σ", color=color("hellinger"),
                        ha="center", va="center", fontsize=6.5, fontweight="bold",
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 0.2})
    for ax in axes[: len(cfg.alphas)]:
        ax.set_ylabel("$z_2$")
    # the last panel: how the pool changes with alpha (labels on the curves, no legend box)
    ax = axes[len(cfg.alphas)]
    sw = data["sweep"]
    ax.plot(sw["alpha"], sw["cov_trace"], color=color("holder"))
    ax.plot([0.5], [data["hellinger"]["cov_trace"]], marker="*", markersize=8, linestyle="none",
            color=color("hellinger"))
    ax.annotate("Hellinger", (0.5, data["hellinger"]["cov_trace"]), xytext=(0, 6),
                textcoords="offset points", color=color("hellinger"), fontsize=6.5, ha="center", va="bottom")
    ax.text(0.98, sw["cov_trace"][-1], "tr Σ", transform=ax.get_yaxis_transform(), ha="right",
            va="bottom", color=color("holder"), fontsize=7)
    ax.set_xlabel("α")
    ax.set_ylabel("trace of covariance", color=color("holder"))
    right = ax.twinx()
    right.plot(sw["alpha"], sw["mass_left_of_split"], color="0.3", linestyle="--")
    right.text(0.98, sw["mass_left_of_split"][-1], f"mass at $z_1 < {e.split_x:g}$",
               transform=right.get_yaxis_transform(), ha="right", va="top", color="0.3", fontsize=6.5)
    right.set_ylabel(f"mass at $z_1 < {e.split_x:g}$ (dashed)", color="0.3")
    right.set_ylim(0, 1)
    right.grid(False)
    right.spines["right"].set_visible(True)
    ax.set_title("along α")
    for ax in axes[len(cfg.alphas) + 1:]:
        ax.set_visible(False)
    return fig


# --------------------------------------------------------------------------------------------------
# wb-fig2: two 1-D experts
# --------------------------------------------------------------------------------------------------


def draw_wb_fig2(data: dict) -> Figure:
    """WB Fig. 2: (a) PoE, (b) MoE, (c) WB of two 1-D Gaussian experts."""
    from matplotlib.lines import Line2D

    x, cfg = data["x"], data["config"]
    fig = Figure(figsize=(PAPER_WIDTH, 1.95), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    expert_style = ({"color": "0.4", "linestyle": "--"}, {"color": "0.4", "linestyle": ":"})
    handles = [Line2D([], [], linewidth=1.0, **st,
                      label=f"expert $q_{j + 1} = \\mathcal{{N}}({cfg['means'][j]:g}, {cfg['stds'][j]:g}^2)$")
               for j, st in enumerate(expert_style)]
    for k, (ax, name) in enumerate(zip(axes, data["methods"], strict=True)):
        for y, st in zip(data["experts"], expert_style, strict=True):
            ax.plot(x, y, linewidth=1.0, **st)
        y = data["density"][name]
        ax.fill_between(x, y, color=color(name), alpha=0.25, linewidth=0)
        ax.plot(x, y, color=color(name), linewidth=1.6)
        handles.append(Line2D([], [], color=color(name), linewidth=1.6, label=f"{label(name)} aggregate"))
        ax.set_title(f"({'abc'[k]}) {label(name)}")
        ax.set_xlabel("$z$")
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("density")
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles))
    return fig


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One figure: ``exact`` items are computed here, ``trained`` ones drawn from results on disk,
    ``data`` ones drawn from the data sets by their own reproduce target (never here)."""

    kind: str  # "exact", "trained" or "data"
    compute: Callable[[], dict] | None  # exact items: returns the numbers for results/<id>.json
    draw: Callable[[dict], Figure] | None  # draws the figure from the results dict; None = not yet


def _trained(draw: Callable[[dict], Figure] | None = None) -> Item:
    """A figure drawn from the results its `make reproduce-<id>` target writes."""
    return Item("trained", None, draw)


#: Every figure of the two papers (DESIGN.md), plus holder-alpha. Trained items get their drawing
#: function when their experiment lands; until then they are listed and skipped.
ITEMS: dict[str, Item] = {
    "hel-fig1": Item("exact", synthetic.hel_fig1, draw_hel_fig1),
    "hel-fig2": Item("exact", synthetic.hel_fig2, draw_hel_fig2),
    "hel-fig7": Item("exact", synthetic.hel_fig7, draw_hel_fig7),
    "wb-fig2": Item("exact", synthetic.wb_fig2, draw_wb_fig2),
    "holder-alpha": Item("exact", synthetic.holder_alpha, draw_holder_alpha),
    "hel-fig8": Item("data", None, None),  # samples of the data sets: `make reproduce-hel-fig8` draws it
    "hel-fig3": _trained(trained_figures.draw_tradeoffs),
    "hel-fig5": _trained(trained_figures.draw_curves),
    "hel-fig6": _trained(trained_figures.draw_beta_sweep),
    "wb-fig3": _trained(trained_figures.draw_curves),
    "hel-fig4": _trained(trained_figures.draw_samples_all_but_one),
    "hel-fig9": _trained(trained_figures.draw_samples_by_subset),
    "hel-fig10": _trained(trained_figures.draw_cub_colours),
    "hel-fig11": _trained(trained_figures.draw_caption_draws),
    "hel-fig12": _trained(trained_figures.draw_captions_to_images),
    "hel-fig13": _trained(trained_figures.draw_text_to_faces),
    "hel-fig14": _trained(trained_figures.draw_attributes),
    "hel-fig15": _trained(trained_figures.draw_attributes),
    "wb-fig4": _trained(trained_figures.draw_text_to_faces),
    **{f"wb-figS{k}": _trained(trained_figures.draw_polymnist_panel) for k in (5, 6, 7)},
    "wb-figS8": _trained(trained_figures.draw_mst_prior),
    "wb-figS9": _trained(trained_figures.draw_mst_by_digit),
    "wb-figS10": _trained(trained_figures.draw_attributes),
    "wb-figS11": _trained(trained_figures.draw_attributes),
    "wb-figS12": _trained(trained_figures.draw_text_to_faces),
}


def preview_png(path: str | Path, width: int = 640) -> bytes:
    """A figure's PNG for embedding in notebooks: flattened on white, scaled down to ``width`` pixels (aspect
    kept; never scaled up) and reduced to a 256-colour palette. The committed PNGs are drawn for print, and a
    sample grid can weigh close to a megabyte; previews are a fifth of that."""
    import io

    from PIL import Image

    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    if flat.width > width:
        flat = flat.resize((width, round(flat.height * width / flat.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    flat.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def exact_result(item_id: str, seed: int = 0) -> dict:
    """The results file of an exact item as :func:`run_item` writes it: its numbers and a provenance block."""
    item = ITEMS[item_id]
    if item.kind != "exact":
        raise ValueError(f"{item_id} is not an exact item; exact: "
                         + ", ".join(k for k, v in ITEMS.items() if v.kind == "exact"))
    data = item.compute()
    # how the numbers were integrated: the study's quadrature rules, or the density grid
    quadrature = data.pop("quadrature", None) or data.get("grid") or "none: closed forms"
    data["provenance"] = provenance(item=item_id, kind="exact", scale="exact", seed=seed, quadrature=quadrature)
    return data


def run_item(item_id: str, results_dir: Path, figures_dir: Path, seed: int) -> tuple[bool, str]:
    """Compute (exact items), write and draw one item; returns ``(drawn, one-line summary)``."""
    item = ITEMS[item_id]
    path = results_dir / f"{item_id}.json"
    t0 = time.perf_counter()
    if item.kind == "data":
        png = figures_dir / f"{item_id}.png"
        state = "is there" if png.exists() else "not found"
        return False, (f"skipped {item_id}: drawn from the data sets by `make reproduce-{item_id}`, "
                       f"not from results/ ({repo_relative(png)} {state})")
    if item.kind == "exact":
        write_json(path, exact_result(item_id, seed))  # kept as it is when only the code's hash differs
    elif not path.exists():
        return False, f"skipped {item_id}: {repo_relative(path)} not found (run `make reproduce-{item_id}`)"
    if item.draw is None:
        return False, f"skipped {item_id}: {repo_relative(path)} exists but no drawing function is registered yet"
    with paper_style():
        fig = item.draw(read_json(path))  # draw what the file holds, rounded as stored
        files = save_figure(fig, item_id, figures_dir)
    took = time.perf_counter() - t0
    what = "computed and drawn" if item.kind == "exact" else "redrawn"
    return True, (f"{item_id:<13} {item.kind:<8} {what} in {took:4.1f} s -> {repo_relative(path)}, "
                  + ", ".join(repo_relative(f) for f in files))


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m poolvae.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="item ids to run (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="recorded in the provenance (nothing is random)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where results/<id>.json go")
    parser.add_argument("--figures-dir", type=Path, default=FIGURES_DIR, help="where figures/<id>.* go")
    parser.add_argument("--list", action="store_true", help="list the items and exit")
    args = parser.parse_args(argv)
    if args.list:
        for item_id, item in ITEMS.items():
            state = ("drawn by its reproduce target" if item.kind == "data"
                     else "drawable" if item.draw else "no drawing function yet")
            print(f"{item_id:<13} {item.kind:<8} {state}")
        return 0
    unknown = [i for i in args.only or [] if i not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; valid: {', '.join(ITEMS)}")
    # Small tensors: one thread is faster than several, and on a shared machine much faster.
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    drawn = skipped = 0
    for item_id in args.only or list(ITEMS):
        ok, line = run_item(item_id, args.results_dir, args.figures_dir, args.seed)
        drawn, skipped = drawn + ok, skipped + (not ok)
        print(line, flush=True)
    print(f"figures: {drawn} drawn, {skipped} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
