"""The numbers the two papers report, transcribed once into ``results/paper/<item>.json``, and read from there.

Each table of *Hellinger Multimodal Variational Autoencoders* (items ``hel-table1`` .. ``hel-table8``) and of
*Multimodal Variational Autoencoder: a Barycentric View* (``wb-table1`` .. ``wb-table4``; its supplementary has
figures only, no further tables) is one JSON file holding every number of the table exactly once, as printed.
Reproduced numbers are compared with these through :func:`value` and :func:`cells`; nothing else retypes them.
Check the files with ``python -m poolvae.paper_numbers`` (validates each, prints cell counts and any printed rank
that disagrees with the printed values); ``--rewrite`` rewrites them in the canonical deterministic form.

Schema of one file (``validate`` enforces it)::

    {"item": "hel-table2",                      # the file's stem; the id of DESIGN.md
     "paper": "Hellinger Multimodal Variational Autoencoders",   # one of PAPERS
     "source": "Table 2",                       # the table as the paper numbers it
     "caption": "...",                          # the paper's caption
     "dataset": "celeba",                       # a DATASETS id, or null when every cell names its own
     "scale": "paper",                          # always "paper": the papers' own settings
     "runs": 3,                                 # repetitions behind mean and std (null: not stated)
     "notes": "...",                            # reading conventions, omissions, the paper's inconsistencies
     "cells": [                                 # one per printed number
       {"method": "helvae",                     # a METHOD_IDS id (PoE-VAE = mvae, MoE-VAE = mmvae, ...)
        "metric": "coherence",                  # a METRICS id
        "setting": "conditional",               # see below; null where the table has one column per data set
        "mean": 0.386, "std": 0.003,            # std null where the paper prints none
        "rank": 1,                              # the printed rank "(1)"; null where none is printed
        "printed": "0.386 ± 0.003 (1)",         # the cell as printed (digits kept, markup removed)
        "source": {"table": "Table 2", "row": "HELVAE", "column": "Conditional Coherence"},
        # optional: "beta" (KL weight of the run: hel-table7, hel-table8), "target" (generated modality,
        # wb-table2 and wb-table4 generation), "dataset" (when the file's is null), "marker" ("*", an
        # asterisk the paper prints without explanation), "note" (about this cell only);
        # source may add "block" (the sub-table, e.g. "beta = 10.0")
       }, ...]}

Settings: ``conditional`` / ``unconditional`` (coherence, FID); the encoded or conditioning subset for latent
probes, conditional coherence and log-likelihoods (``"M"``, ``"M,S"``; CelebA ``"I"``, ``"T"``, ``"I,T"`` =
the papers' "Joint"); ``"X"`` (joint log-likelihood) and ``"X|x_M"``, ``"X|x_M,x_S"`` (conditional
log-likelihoods); ``"avg"`` for a printed row average. Metric ids and their directions are in :data:`METRICS`.
Bold face is not data: it is not transcribed (the notes say where it disagrees with the values). Entries printed
as "—" have no cell; the file's notes list them.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import re
from pathlib import Path
from typing import Any

from .artefacts import RESULTS_DIR, write_json

PAPER_DIR = RESULTS_DIR / "paper"

#: Paper titles -> the prefix of their item ids.
PAPERS: dict[str, str] = {
    "Hellinger Multimodal Variational Autoencoders": "hel",
    "Multimodal Variational Autoencoder: a Barycentric View": "wb",
}

#: Method ids (the keys of ``poolvae.models.METHODS``); the papers' names map onto these.
METHOD_IDS: tuple[str, ...] = ("mvae", "mmvae", "mopoe", "mmvaeplus", "codevae", "wbvae", "mwbvae", "helvae",
                               "helvae-learned", "mohelvae")

#: Metric id -> direction: +1 higher is better, -1 lower is better, 0 not a score.
METRICS: dict[str, int] = {
    "coherence": +1,  # fraction of generated samples classified as the shared label
    "fid": -1,  # Frechet Inception Distance of generated images
    "latent_accuracy": +1,  # linear-probe accuracy on the latent code
    "log_likelihood": +1,  # test-set (conditional) log-likelihood estimate
    "seconds_per_batch": -1,  # training time per batch
    "beta": 0,  # the selected KL weight (hel-table5)
    "latent_average_precision": +1,  # linear probe, mean average precision over attributes (wb-table4)
    "coherence_average_precision": +1,  # coherence as mean average precision over attributes (wb-table4)
    "average_precision": +1,  # wb-table4's Avg. over its latent and generation columns
}

#: Data set ids (as in ``poolvae.datasets.DATASETS``).
DATASETS: tuple[str, ...] = ("polymnist", "mnist-svhn-text", "celeba", "cub")

_DOC_KEYS = {"item", "paper", "source", "caption", "dataset", "scale", "runs", "notes", "cells"}
_CELL_KEYS = {"method", "metric", "setting", "mean", "std", "rank", "printed", "source"}
_CELL_OPTIONAL = {"beta", "target", "dataset", "marker", "note"}
_MARKERS = {"*"}
_PRINTED = re.compile(r"^(-?\d+(?:\.\d+)?)(?: ± (\d+(?:\.\d+)?))?(?: \((\d+)\))?(?: (\*))?$")


class LookupFailed(KeyError):
    """A KeyError whose message prints as written (KeyError itself shows the repr of its message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _item_key(item: str) -> tuple:
    """Natural sort key: hel before wb, table2 before table10, main tables before supplementary ones."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", item))


def _available() -> list[str]:
    """Item ids of the files now in :data:`PAPER_DIR`, naturally sorted."""
    return sorted((p.stem for p in PAPER_DIR.glob("*.json")), key=_item_key)


#: The items present in ``results/paper/`` when the module was imported.
ITEMS: list[str] = _available()


def parse_printed(text: str) -> tuple[float, float | None, int | None, str | None]:
    """Split a normalised printed cell ``"0.386 ± 0.003 (1)"`` into (mean, std, rank, marker)."""
    m = _PRINTED.match(text)
    if m is None:
        raise ValueError(f"printed cell {text!r} is not of the form 'mean[ ± std][ (rank)][ *]'")
    mean, std, rank, marker = m.groups()
    return float(mean), None if std is None else float(std), None if rank is None else int(rank), marker


def _is_number(x: Any) -> bool:
    """A finite int or float (bool excluded)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def group_key(cell: dict) -> tuple:
    """What a cell is compared within (ranks, bold): metric, setting, target, beta and data set."""
    return (cell["metric"], cell.get("setting"), cell.get("target"), cell.get("beta"), cell.get("dataset"))


def validate(doc: Any, path: str | Path | None = None) -> None:
    """Check one document against the schema of the module docstring; raise ValueError naming the file.

    Besides types and id vocabularies this checks that each cell's ``printed`` text gives back its mean, std,
    rank and marker, and that no two cells share method and :func:`group_key`.
    """
    name = str(path) if path is not None else (
        f"results/paper/{doc.get('item')}.json" if isinstance(doc, dict) else "<document>")

    def fail(problem: str) -> None:
        raise ValueError(f"{name}: {problem}")

    if not isinstance(doc, dict):
        fail(f"top level must be an object, not {type(doc).__name__}")
    if missing := _DOC_KEYS - doc.keys():
        fail(f"missing keys {sorted(missing)}")
    if extra := doc.keys() - _DOC_KEYS:
        fail(f"unknown keys {sorted(extra)}")
    item = doc["item"]
    if not isinstance(item, str) or not re.fullmatch(r"(hel|wb)-table(S?\d+)", item):
        fail(f"item {item!r} is not of the form 'hel-tableN' or 'wb-tableN' / 'wb-tableSN'")
    if path is not None and Path(path).stem != item:
        fail(f"item {item!r} does not match the file name")
    if doc["paper"] not in PAPERS:
        fail(f"paper {doc['paper']!r} is not one of {list(PAPERS)}")
    if PAPERS[doc["paper"]] != item.split("-")[0]:
        fail(f"item {item!r} does not belong to paper {doc['paper']!r}")
    if not isinstance(doc["source"], str) or not re.fullmatch(r"Table S?\d+", doc["source"]):
        fail(f"source {doc['source']!r} is not of the form 'Table N'")
    if not isinstance(doc["caption"], str) or not doc["caption"].strip():
        fail("caption must be a non-empty string")
    if not isinstance(doc["notes"], str):
        fail("notes must be a string")
    if doc["dataset"] is not None and doc["dataset"] not in DATASETS:
        fail(f"dataset {doc['dataset']!r} is not one of {list(DATASETS)} (or null)")
    if doc["scale"] != "paper":
        fail(f"scale must be 'paper', not {doc['scale']!r}")
    runs = doc["runs"]
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
        fail(f"runs must be a positive integer or null, not {runs!r}")
    if not isinstance(doc["cells"], list) or not doc["cells"]:
        fail("cells must be a non-empty list")
    seen: dict[tuple, int] = {}
    for i, c in enumerate(doc["cells"]):
        where = f"cell {i}"
        if not isinstance(c, dict):
            fail(f"{where} is not an object")
        if missing := _CELL_KEYS - c.keys():
            fail(f"{where}: missing keys {sorted(missing)}")
        if extra := c.keys() - _CELL_KEYS - _CELL_OPTIONAL:
            fail(f"{where}: unknown keys {sorted(extra)}")
        where = f"cell {i} ({c['method']}, {c['metric']}, {c['setting']})"
        if c["method"] not in METHOD_IDS:
            fail(f"{where}: method {c['method']!r} is not one of {list(METHOD_IDS)}")
        if c["metric"] not in METRICS:
            fail(f"{where}: metric {c['metric']!r} is not one of {list(METRICS)}")
        if c["setting"] is not None and (not isinstance(c["setting"], str) or not c["setting"]):
            fail(f"{where}: setting must be a non-empty string or null")
        if not _is_number(c["mean"]):
            fail(f"{where}: mean must be a finite number, not {c['mean']!r}")
        if c["std"] is not None and (not _is_number(c["std"]) or c["std"] < 0):
            fail(f"{where}: std must be a non-negative number or null, not {c['std']!r}")
        rank = c["rank"]
        if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
            fail(f"{where}: rank must be a positive integer or null, not {rank!r}")
        if not isinstance(c["printed"], str):
            fail(f"{where}: printed must be a string")
        try:
            parsed = parse_printed(c["printed"])
        except ValueError as err:
            fail(f"{where}: {err}")
        if parsed != (c["mean"], c["std"], rank, c.get("marker")):
            fail(f"{where}: printed {c['printed']!r} disagrees with mean/std/rank/marker "
                 f"{(c['mean'], c['std'], rank, c.get('marker'))}")
        src = c["source"]
        if not isinstance(src, dict) or not {"table", "row", "column"} <= src.keys() \
                or not src.keys() <= {"table", "row", "column", "block"} \
                or not all(isinstance(v, str) and v for v in src.values()):
            fail(f"{where}: source must hold non-empty strings table, row, column (and optionally block)")
        if src["table"] != doc["source"]:
            fail(f"{where}: source table {src['table']!r} is not the file's {doc['source']!r}")
        if "beta" in c and (not _is_number(c["beta"]) or c["beta"] <= 0):
            fail(f"{where}: beta must be a positive number, not {c['beta']!r}")
        if "target" in c and c["target"] is not None and (not isinstance(c["target"], str) or not c["target"]):
            fail(f"{where}: target must be a non-empty string or null")
        if "marker" in c and c["marker"] not in _MARKERS:
            fail(f"{where}: marker must be one of {sorted(_MARKERS)}")
        if "note" in c and (not isinstance(c["note"], str) or not c["note"]):
            fail(f"{where}: note must be a non-empty string")
        if doc["dataset"] is None and c.get("dataset") not in DATASETS:
            fail(f"{where}: the file names no dataset, so each cell needs one of {list(DATASETS)}")
        if doc["dataset"] is not None and "dataset" in c:
            fail(f"{where}: the file names its dataset; a cell must not repeat or override it")
        key = (c["method"], *group_key(c))
        if key in seen:
            fail(f"{where}: duplicates cell {seen[key]} (same method, metric, setting, target, beta, dataset)")
        seen[key] = i


@functools.cache
def _read(item: str) -> dict:
    """Read and validate one file (cached; callers get copies)."""
    path = PAPER_DIR / f"{item}.json"
    if not path.exists():
        raise LookupFailed(f"no transcribed paper table {item!r} in {PAPER_DIR}; available: {', '.join(_available())}")
    doc = json.loads(path.read_text())
    validate(doc, path)
    return doc


def load(item: str) -> dict:
    """The validated document of one item (a copy), e.g. ``load("hel-table2")``.

    An unknown item raises KeyError (:class:`LookupFailed`) listing the available ones.
    """
    return copy.deepcopy(_read(item))


def cells(item: str, **filters: Any) -> list[dict]:
    """The cells of ``item`` whose fields equal ``filters`` (e.g. ``method="helvae", beta=10.0``).

    Each returned cell is a copy that carries the file's ``dataset`` when it has none of its own, so
    ``dataset=`` filters every table alike. A filter on a field no cell has is an error, not an empty list.
    """
    doc = _read(item)
    out = []
    for c in doc["cells"]:
        c = copy.deepcopy(c)
        c.setdefault("dataset", doc["dataset"])
        out.append(c)
    known = set().union(*(c.keys() for c in out))
    if unknown := set(filters) - known:
        raise ValueError(f"{item}: no cell has the field(s) {sorted(unknown)}; fields: {sorted(known)}")
    return [c for c in out if all(c.get(k) == v for k, v in filters.items())]


def value(item: str, method: str, metric: str, setting: str | None = None, **extra: Any) -> float:
    """The mean of the one cell of ``item`` matching method, metric, setting (when given) and ``extra``.

    ``value("hel-table8", "helvae", "fid", "conditional", beta=10.0)`` -> 154.63. Raises KeyError
    (:class:`LookupFailed`) when no cell or more than one matches, listing the candidates.
    """
    filters = {"method": method, "metric": metric, **extra}
    if setting is not None:
        filters["setting"] = setting
    found = cells(item, **filters)
    if len(found) != 1:
        pool = cells(item, method=method, metric=metric) if method in METHOD_IDS else []
        options = sorted({f"setting={c['setting']!r}" + "".join(f", {k}={c[k]!r}" for k in ("beta", "target")
                                                                   if k in c) + f", dataset={c['dataset']!r}"
                          for c in pool})
        what = "no cell" if not found else f"{len(found)} cells"
        raise LookupFailed(f"{item}: {what} for {filters}; cells of ({method}, {metric}): {options or 'none'}")
    return found[0]["mean"]


def competition_ranks(values: list[float], direction: int) -> list[int]:
    """Ranks as the papers print them: 1 + the number of strictly better values (ties share a rank)."""
    if direction not in (+1, -1):
        raise ValueError("direction must be +1 (higher is better) or -1 (lower is better)")
    return [1 + sum(direction * (w - v) > 0 for w in values) for v in values]


def rank_disagreements(item: str) -> list[str]:
    """Printed ranks that differ from the ranks of the printed means, one line each (empty when consistent).

    Ranks are compared within :func:`group_key` groups that print ranks and whose metric has a direction.
    """
    groups: dict[tuple, list[dict]] = {}
    for c in cells(item):
        if c["rank"] is not None and METRICS[c["metric"]] != 0:
            groups.setdefault(group_key(c), []).append(c)
    out = []
    for key, group in groups.items():
        expected = competition_ranks([c["mean"] for c in group], METRICS[key[0]])
        for c, r in zip(group, expected, strict=True):
            if c["rank"] != r:
                out.append(f"{item} {c['source']['row']} / {c['source']['column']}"
                           + (f" / {c['source']['block']}" if "block" in c["source"] else "")
                           + f": printed rank {c['rank']}, the values give {r}")
    return out


def main(argv: list[str] | None = None) -> None:
    """Validate every file, print its cell count and rank disagreements; ``--rewrite`` re-emits them canonically."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rewrite", action="store_true", help="rewrite each valid file with artefacts.write_json")
    args = p.parse_args(argv)
    for item in _available():
        doc = load(item)
        problems = rank_disagreements(item)
        print(f"{item:<12} {doc['source']:<9} {len(doc['cells']):>4} cells  {doc['dataset'] or 'several data sets'}")
        for line in problems:
            print(f"    rank: {line}")
        if args.rewrite:
            write_json(PAPER_DIR / f"{item}.json", doc)


if __name__ == "__main__":
    main()
