"""One colour, marker and label per method, for every figure of the project, and the paper style.

A method keeps its colour across all figures: PoE/MVAE is always vermillion, HELVAE always reddish
purple, and so on, so a reader who learned the colours on one figure can read the next one. The
colours are the Okabe-Ito palette (Okabe & Ito, 2008; safe for the common colour-vision
deficiencies), completed with three colours of Paul Tol's "muted" scheme and one of tab10 because the
project has eleven methods and Okabe-Ito only eight usable ones. Colour is never the only cue: each
method also has its own marker, and the two pooling rules that are one formula seen two ways
(Hölder alpha = 1/2 exact, and its Gaussian moment match, Hellinger) differ in line style as well.

Use::

    from poolvae.palette import method_style, paper_style
    with paper_style():
        ax.plot(x, y, **method_style("hellinger"))

Keys are the pooling-rule names of :data:`poolvae.aggregators.POOLS` where one exists; the model names
of the papers (``"mvae"``, ``"helvae"``, ...) are accepted as aliases.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

#: Width of a full-width figure in a two-column paper, inches.
PAPER_WIDTH = 7.0
#: Base font size of the paper style, points.
FONT_SIZE = 8


@dataclass(frozen=True)
class Method:
    """How one method is drawn and named."""

    key: str  # pooling-rule name, e.g. "poe"
    pool: str  # name of the aggregator, used on synthetic-expert figures ("PoE")
    model: str  # name of the multimodal VAE, used on trained figures ("MVAE")
    color: str  # hex colour
    marker: str  # matplotlib marker
    linestyle: str = "-"  # matplotlib line style


# Okabe-Ito: black #000000, orange #E69F00, sky blue #56B4E9, bluish green #009E73,
# yellow #F0E442 (unused: too light for lines on white), blue #0072B2, vermillion #D55E00,
# reddish purple #CC79A7. Tol muted: wine #882255, olive #999933, indigo #332288. tab10: brown #8C564B.
METHODS: dict[str, Method] = {
    m.key: m
    for m in (
        Method("poe", "PoE", "MVAE", "#D55E00", "v"),
        Method("moe", "MoE", "MMVAE", "#0072B2", "s"),
        Method("mopoe", "MoPoE", "MoPoE", "#56B4E9", "D"),
        Method("mmvae+", "MMVAE+", "MMVAE+", "#882255", "P"),
        Method("code", "CoDE", "CoDEVAE", "#999933", "X"),
        Method("wb", "WB", "WB-VAE", "#E69F00", "^"),
        Method("mwb", "MWB", "MWB-VAE", "#332288", "<"),
        Method("holder", "Hölder (α = 0.5)", "Hölder (α = 0.5)", "#009E73", "o", "--"),
        Method("hellinger", "Hellinger", "HELVAE", "#CC79A7", "*"),
        Method("mohel", "MoHEL", "MoHELVAE", "#8C564B", "h"),
        Method("truth", "true distribution", "true distribution", "#000000", "", ":"),
    )
}

#: Other names a method goes by (model names of the papers, other spellings) -> key of METHODS.
ALIASES: dict[str, str] = {
    "mvae": "poe",
    "mmvae": "moe",
    "mmvaeplus": "mmvae+",
    "mmvae_plus": "mmvae+",
    "codevae": "code",
    "mocode": "code",
    "wbvae": "wb",
    "wb-vae": "wb",
    "mwbvae": "mwb",
    "mwb-vae": "mwb",
    "holder_half": "holder",
    "hölder": "holder",
    "helvae": "hellinger",
    "helvae-learned": "hellinger",  # same colour as HELVAE; only tables show both
    "hel": "hellinger",
    "mohelvae": "mohel",
    "true": "truth",
}


def method(key: str) -> Method:
    """The :class:`Method` of a key or alias (case-insensitive); an unknown name lists the valid ones."""
    k = key.lower()
    k = ALIASES.get(k, k)
    try:
        return METHODS[k]
    except KeyError:
        raise ValueError(f"unknown method {key!r}; valid: {', '.join(METHODS)}") from None


def color(key: str) -> str:
    """The colour of a method."""
    return method(key).color


def label(key: str, kind: str = "pool") -> str:
    """Display name: the aggregator's (``kind="pool"``: "PoE") or the model's (``kind="model"``: "MVAE")."""
    if kind not in ("pool", "model"):
        raise ValueError(f"kind must be 'pool' or 'model'; got {kind!r}")
    m = method(key)
    return m.pool if kind == "pool" else m.model


def method_style(key: str, kind: str = "pool", markers: bool = True) -> dict:
    """Keyword arguments for ``ax.plot``: colour, marker, line style and legend label of a method."""
    m = method(key)
    return {
        "color": m.color,
        "marker": m.marker if markers else "",
        "linestyle": m.linestyle,
        "label": label(key, kind),
    }


#: rcParams of the paper style: 8 pt text, thin lines, no top/right spines, vector-friendly fonts.
PAPER_RC: dict = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE - 1,
    "ytick.labelsize": FONT_SIZE - 1,
    "legend.fontsize": FONT_SIZE - 0.5,
    "legend.frameon": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 3.5,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.4,
    "figure.dpi": 150,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays editable and searchable
    "ps.fonttype": 42,
    "svg.hashsalt": "poolvae",  # deterministic ids if anyone saves SVG
}


@contextmanager
def paper_style():
    """Context manager: matplotlib rcParams for paper-size figures (about 7 in wide, 8 pt text)."""
    import matplotlib

    with matplotlib.rc_context(PAPER_RC):
        yield
