"""Tests for poolvae.paper_numbers and the transcribed tables in results/paper/.

Four kinds of check: every file passes the schema; numbers re-read here from the papers' markdown (with this
file's own parsing, not the transcription's) equal the transcribed ones; each table has the number of cells its
shape implies; printed ranks, row averages and spreads agree with the printed values, except for the
inconsistencies of the papers themselves, which are listed here and must be recorded in the files' notes.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pytest

from poolvae import paper_numbers as pn
from poolvae.artefacts import write_json

PAPERS_DIR = Path(__file__).resolve().parents[2] / "shared" / "papers"  # the repo's sibling folder ../shared
HEL_MD = PAPERS_DIR / "hellinger-multimodal-vae.md"
WB_MD = PAPERS_DIR / "barycentric-multimodal-vae.md"
needs_papers = pytest.mark.skipif(not PAPERS_DIR.is_dir(),
                                  reason=f"the papers' markdown is not at {PAPERS_DIR} (sibling folder ../shared "
                                         "of the repository); the re-reading tests need it")

#: item -> (methods, cells per method per block, blocks, entries printed as "—"); cells = m * c * b - omitted.
SHAPES = {
    "hel-table1": (7, 2, 1, 0),  # CUB: conditional coherence, FID
    "hel-table2": (7, 4, 1, 0),  # CelebA: (conditional, unconditional) x (coherence, FID)
    "hel-table3": (7, 3, 1, 0),  # CelebA latent: I, T, Joint
    "hel-table4": (2, 7, 1, 0),  # HELVAE, MoHELVAE x 7 metric rows
    "hel-table5": (7, 3, 1, 0),  # best beta x 3 data sets
    "hel-table6": (8, 3, 1, 2),  # seconds per batch x 3 data sets; MoHELVAE PolyMNIST and CUB are "—"
    "hel-table7": (2, 4, 1, 0),  # uniform vs learned weights
    "hel-table8": (7, 4, 4, 0),  # 4 betas x 7 methods x 4
    "wb-table1": (5, 8, 1, 0),  # 7 subsets + Avg.
    "wb-table2": (5, 10, 1, 0),  # 9 (target, subset) + Avg.
    "wb-table3": (5, 7, 1, 0),  # X and 6 conditionals
    "wb-table4": (5, 6, 1, 0),  # 3 latent + 2 generation + Avg.
}
RANKED = {"hel-table1", "hel-table2", "hel-table3", "hel-table8"}  # tables that print "(rank)" in every cell

#: Printed ranks that disagree with the printed values: none in either paper (checked by the test below).
KNOWN_RANK_DISAGREEMENTS: dict[str, list[str]] = {}
#: Row averages that disagree with their row: (item, method) -> a phrase the file's notes must contain.
KNOWN_AVG_MISMATCHES = {("wb-table2", "mvae"): "0.331"}
#: Spreads that non-negative runs cannot have: (item, method, metric, setting, beta) -> phrase in the notes.
KNOWN_INFEASIBLE_STD = {("hel-table8", "mvae", "coherence", "unconditional", 5.0): "0.019 ± 0.057"}


def _file(item: str) -> Path:
    """Path of one transcribed table."""
    return pn.PAPER_DIR / f"{item}.json"


# ---- (a) schema --------------------------------------------------------------------------------------------


def test_items_are_the_twelve_tables():
    """Both papers' tables are present (the barycentric supplementary has figures only) and nothing else."""
    assert pn.ITEMS == [f"hel-table{i}" for i in range(1, 9)] + [f"wb-table{i}" for i in range(1, 5)]
    assert set(SHAPES) == set(pn.ITEMS)


@pytest.mark.parametrize("item", sorted(SHAPES))
def test_file_validates_and_is_canonical(item, tmp_path):
    """Each file passes validate() and is byte-identical to its write_json rendering (deterministic form)."""
    path = _file(item)
    doc = json.loads(path.read_text())
    pn.validate(doc, path)
    write_json(tmp_path / path.name, doc)
    assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    assert pn.load(item) == doc


def test_method_and_dataset_ids_are_the_projects():
    """Method ids are exactly poolvae.models.METHODS; data set ids are registered in poolvae.datasets."""
    from poolvae import datasets, models

    assert set(pn.METHOD_IDS) == set(models.METHODS)
    assert set(pn.DATASETS) <= set(datasets.DATASETS)


def _good() -> dict:
    """A valid document to break."""
    return copy.deepcopy(pn.load("hel-table2"))


@pytest.mark.parametrize("breaker, message", [
    (lambda d: d.pop("caption"), "missing keys"),
    (lambda d: d.update(extra=1), "unknown keys"),
    (lambda d: d.update(scale="cpu"), "scale"),
    (lambda d: d.update(paper="Another paper"), "paper"),
    (lambda d: d.update(dataset=None), "needs one of"),
    (lambda d: d["cells"][0].update(method="poe-vae"), "method"),
    (lambda d: d["cells"][0].update(metric="accuracy"), "metric"),
    (lambda d: d["cells"][0].update(mean=0.999), "disagrees"),
    (lambda d: d["cells"][0].update(rank=0), "rank"),
    (lambda d: d["cells"][0].update(std=-1.0), "std"),
    (lambda d: d["cells"][0].update(colour="bold"), "unknown keys"),
    (lambda d: d["cells"][0]["source"].update(table="Table 3"), "source table"),
    (lambda d: d["cells"].append(copy.deepcopy(d["cells"][0])), "duplicates"),
])
def test_validate_names_file_and_problem(breaker, message):
    """A broken document raises ValueError naming the file and the problem."""
    doc = _good()
    breaker(doc)
    with pytest.raises(ValueError, match=re.escape("results/paper/hel-table2.json") + ".*" + message):
        pn.validate(doc)


def test_validate_checks_file_name():
    """The item must match the file it is read from."""
    with pytest.raises(ValueError, match="does not match the file name"):
        pn.validate(_good(), "results/paper/hel-table3.json")


# ---- the API ------------------------------------------------------------------------------------------------


def test_load_unknown_item_lists_available():
    """A missing item is a KeyError that lists what there is."""
    with pytest.raises(KeyError, match="available: hel-table1, .*wb-table4"):
        pn.load("hel-table99")


def test_value_and_cells():
    """value() finds one cell; filters cover beta, target and a dataset taken from the file."""
    assert pn.value("hel-table2", "helvae", "coherence", "conditional") == 0.386
    assert pn.value("hel-table8", "helvae", "fid", "conditional", beta=10.0) == 154.63
    assert pn.value("hel-table6", "mohelvae", "seconds_per_batch", dataset="celeba") == 0.5918
    assert pn.value("hel-table5", "helvae", "beta", dataset="cub") == 2.5
    assert pn.value("wb-table2", "mwbvae", "coherence", "S,T", target="M") == 0.99
    assert pn.value("wb-table3", "wbvae", "log_likelihood", "X") == -1785
    assert len(pn.cells("hel-table2", dataset="celeba")) == 28
    assert {c["beta"] for c in pn.cells("hel-table8", method="helvae")} == {1.0, 2.5, 5.0, 10.0}
    assert pn.cells("hel-table8", method="helvae", beta=10.0, metric="fid", setting="unconditional")[0]["rank"] == 1


def test_value_errors_list_candidates():
    """Ambiguous, empty and unknown-field queries fail loudly."""
    with pytest.raises(KeyError, match="4 cells.*beta=10.0"):
        pn.value("hel-table8", "helvae", "fid", "conditional")
    with pytest.raises(KeyError, match=r"no cell.*'cub'.*cells of \(mohelvae, seconds_per_batch\).*'celeba'"):
        pn.value("hel-table6", "mohelvae", "seconds_per_batch", dataset="cub")
    with pytest.raises(ValueError, match="no cell has the field"):
        pn.cells("hel-table2", colour="bold")


def test_main_prints_every_item(capsys):
    """``python -m poolvae.paper_numbers`` validates and lists every file."""
    pn.main([])
    out = capsys.readouterr().out
    assert all(item in out for item in pn.ITEMS) and "rank:" not in out


def test_competition_ranks():
    """Ties share a rank and the next rank skips, as in the papers' "(1) (1) (3)"."""
    assert pn.competition_ranks([0.75, 0.72, 0.75, 0.2], +1) == [1, 3, 1, 4]
    assert pn.competition_ranks([80.0, 75.0, 90.0], -1) == [2, 1, 3]


# ---- (b) numbers re-read from the markdown -----------------------------------------------------------------


def _strip(text: str) -> str:
    """Drop HTML tags and math delimiters; '\\pm' and '±' both become ' ± '."""
    text = re.sub(r"<[^>]+>", " ", text).replace("$", " ")
    text = text.replace(r"{\pm}", " ± ").replace(r"\pm", " ± ")
    return re.sub(r"\s+", " ", text)


def _rows_after(lines: list[str], start: str, label: str) -> list[str]:
    """Tab-separated fields of the first row labelled ``label`` after the first line starting with ``start``."""
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    for line in lines[i + 1:]:
        fields = line.split("\t")
        if re.sub(r"<[^>]+>", "", fields[0]).strip() == label:
            return fields
    raise AssertionError(f"no row {label!r} after {start!r}")


def _triples(fields: list[str]) -> list[tuple[float, float, int | None]]:
    """(mean, std, rank) of each 'mean ± std (rank)' field of a row (rank None when absent)."""
    out = []
    for f in fields:
        m = re.fullmatch(r"\s*(-?\d+\.\d+) ± (\d+\.\d+)(?: \((\d+)\))?\s*", _strip(f))
        assert m, f
        out.append((float(m[1]), float(m[2]), int(m[3]) if m[3] else None))
    return out


def _as_triples(cells: list[dict]) -> list[tuple]:
    return [(c["mean"], c["std"], c["rank"]) for c in cells]


COND4 = [("coherence", "conditional"), ("fid", "conditional"), ("coherence", "unconditional"),
         ("fid", "unconditional")]
HEL_NAMES = {"MVAE": "mvae", "MMVAE": "mmvae", "MoPoE": "mopoe", "MMVAE+": "mmvaeplus", "MWBVAE": "mwbvae",
             "CoDEVAE": "codevae", "HELVAE": "helvae"}


def _ordered(item: str, method: str, columns, **extra) -> list[dict]:
    """The cells of one method in the paper's column order."""
    out = []
    for metric, setting in columns:
        (c,) = pn.cells(item, method=method, metric=metric, setting=setting, **extra)
        out.append(c)
    return out


@needs_papers
def test_hel_table2_helvae_row():
    """The HELVAE row of Table 2: 0.386 ± 0.003 (1), 80.17 ± 1.52 (2), 0.204 ± 0.013 (5), 81.89 ± 1.56 (2)."""
    fields = _rows_after(HEL_MD.read_text().splitlines(), "Table 2:", "HELVAE")
    assert _triples(fields[1:]) == _as_triples(_ordered("hel-table2", "helvae", COND4))


@needs_papers
@pytest.mark.parametrize("beta", ["1.0", "2.5", "5.0", "10.0"])
@pytest.mark.parametrize("label", list(HEL_NAMES))
def test_hel_table8_rows(label, beta):
    """Every row of every beta block of Table 8 (the beta = 10.0 HELVAE row among them)."""
    fields = _rows_after(HEL_MD.read_text().splitlines(), rf"$\beta = {beta}$", label)
    assert _triples(fields[1:]) == _as_triples(_ordered("hel-table8", HEL_NAMES[label], COND4, beta=float(beta)))


@needs_papers
@pytest.mark.parametrize("table, item, columns", [
    ("Table 1:", "hel-table1", COND4[:2]),
    ("Table 3:", "hel-table3", [("latent_accuracy", s) for s in ("I", "T", "I,T")]),
])
@pytest.mark.parametrize("label", list(HEL_NAMES))
def test_hel_tables_1_and_3_rows(table, item, columns, label):
    """Every row of Tables 1 and 3 of the HELVAE paper."""
    fields = _rows_after(HEL_MD.read_text().splitlines(), table, label)
    assert _triples(fields[1:]) == _as_triples(_ordered(item, HEL_NAMES[label], columns))


@needs_papers
def test_hel_table7_rows():
    """Table 7: uniform = helvae, learned = helvae-learned, both at beta 5.0."""
    lines = HEL_MD.read_text().splitlines()
    for label, method in (("HELVAE (uniform)", "helvae"), ("HELVAE (learned)", "helvae-learned")):
        fields = _rows_after(lines, "Table 7:", label)
        assert _triples(fields[1:]) == _as_triples(_ordered("hel-table7", method, COND4, beta=5.0))


@needs_papers
def test_hel_table6_times():
    """Table 6, every entry (MMVAE's PolyMNIST time is 0.2362); '—' entries have no cell."""
    lines = HEL_MD.read_text().splitlines()
    assert _rows_after(lines, "Table 6:", "MMVAE")[1] == "0.2362"
    assert pn.value("hel-table6", "mmvae", "seconds_per_batch", dataset="polymnist") == 0.2362
    for label, method in {**HEL_NAMES, "MoHELVAE": "mohelvae"}.items():
        fields = _rows_after(lines, "Table 6:", label)
        for ds, text in zip(("polymnist", "cub", "celeba"), fields[1:], strict=True):
            found = pn.cells("hel-table6", method=method, dataset=ds)
            if text.strip() == "—":
                assert found == []
            else:
                assert [c["mean"] for c in found] == [float(text)]


@needs_papers
def test_wb_table1_mwb_average():
    """The WB-VAE / MWB-VAE line of barycentric Table 1 ends in Avg. '0.89 <b>0.97</b> *'."""
    lines = WB_MD.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("Table 1:"))
    row = next(line for line in lines[i:] if line.startswith("WB-VAE MWB-VAE\t"))
    avg = re.findall(r"\d+\.\d+", _strip(row.split("\t")[-1]))
    assert [float(a) for a in avg] == [pn.value("wb-table1", m, "latent_accuracy", "avg") for m in ("wbvae", "mwbvae")]
    assert avg[1] == "0.97" and pn.cells("wb-table1", method="mwbvae", setting="avg")[0].get("marker") == "*"


@needs_papers
@pytest.mark.parametrize("label, method", [("PoE-VAE", "mvae"), ("MoE-VAE", "mmvae"), ("MoPoE-VAE", "mopoe"),
                                           ("WB-VAE", "wbvae"), ("MWB-VAE", "mwbvae")])
def test_wb_tables_2_3_4_rows(label, method):
    """Every row of barycentric Tables 2 (coherence), 3 (log-likelihood) and 4 (CelebA)."""
    lines = WB_MD.read_text().splitlines()
    t2 = [float(x) for x in re.findall(r"\d+\.\d+", _strip(" ".join(_rows_after(lines, "Table 2:", label)[1:])))]
    order2 = [(t, s) for t, ss in (("M", "S T S,T"), ("S", "M T M,T"), ("T", "M S M,S")) for s in ss.split()]
    want2 = [pn.value("wb-table2", method, "coherence", s, target=t) for t, s in order2]
    assert t2 == want2 + [pn.value("wb-table2", method, "coherence", "avg")]

    # "- <b>1857</b> ±12": the minus sits outside the bold; read it back as one negative number
    t3 = re.findall(r"(-)\s*(\d+)\s*±\s*(\d+(?:\.\d+)?)", _strip(" ".join(_rows_after(lines, "Table 3:", label)[1:])))
    settings3 = ["X", "X|x_M", "X|x_S", "X|x_T", "X|x_M,x_S", "X|x_M,x_T", "X|x_S,x_T"]
    got3 = [(-float(n), float(s)) for _, n, s in t3]
    want3 = [(c["mean"], c["std"]) for c in _ordered("wb-table3", method, [("log_likelihood", s) for s in settings3])]
    assert got3 == want3

    t4 = [float(x) for x in re.findall(r"\d+\.\d+", _strip(" ".join(_rows_after(lines, "Table 4:", label)[1:])))]
    want4 = [pn.value("wb-table4", method, "latent_average_precision", s) for s in ("I", "T", "I,T")]
    want4 += [pn.value("wb-table4", method, "coherence_average_precision", "I", target="T"),
              pn.value("wb-table4", method, "coherence_average_precision", "T", target="I"),
              pn.value("wb-table4", method, "average_precision", "avg")]
    assert t4 == want4


# ---- (c) shapes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", sorted(SHAPES))
def test_cell_counts_match_table_shape(item):
    """Cells = methods x columns x blocks - omitted; every method has its full row except omitted entries."""
    methods, columns, blocks, omitted = SHAPES[item]
    cs = pn.cells(item)
    assert len(cs) == methods * columns * blocks - omitted
    assert len({c["method"] for c in cs}) == methods
    assert len({pn.group_key(c) for c in cs}) == columns * blocks
    per_method = [len(pn.cells(item, method=m)) for m in sorted({c["method"] for c in cs})]
    assert sum(columns * blocks - n for n in per_method) == omitted
    if omitted:
        assert "—" in pn.load(item)["notes"]


def test_total_cell_count():
    """240 numbers in the HELVAE paper, 155 in the barycentric paper."""
    assert sum(len(pn.cells(i)) for i in pn.ITEMS if i.startswith("hel-")) == 240
    assert sum(len(pn.cells(i)) for i in pn.ITEMS if i.startswith("wb-")) == 155


# ---- (d) consistency of the printed numbers -------------------------------------------------------------------


@pytest.mark.parametrize("item", sorted(SHAPES))
def test_ranks_printed_where_the_paper_prints_them(item):
    """Ranked tables rank every cell; the others rank none."""
    ranks = [c["rank"] for c in pn.cells(item)]
    assert all(r is not None for r in ranks) if item in RANKED else all(r is None for r in ranks)


@pytest.mark.parametrize("item", sorted(RANKED))
def test_best_value_has_rank_one(item):
    """Within each comparison group the best printed value, and only it, carries rank 1."""
    groups: dict[tuple, list[dict]] = {}
    for c in pn.cells(item):
        groups.setdefault(pn.group_key(c), []).append(c)
    for key, group in groups.items():
        sign = {"coherence": 1, "latent_accuracy": 1, "fid": -1}[key[0]]
        best = max(sign * c["mean"] for c in group)
        for c in group:
            assert (c["rank"] == 1) == (sign * c["mean"] == best), (key, c["method"], c["printed"])


@pytest.mark.parametrize("item", sorted(RANKED))
def test_printed_ranks_match_values(item):
    """Every printed rank equals 1 + the number of strictly better values, except known disagreements."""
    found = pn.rank_disagreements(item)
    assert found == KNOWN_RANK_DISAGREEMENTS.get(item, [])
    notes = pn.load(item)["notes"]
    assert ("every printed rank agrees" in notes) == (not found)


@pytest.mark.parametrize("item", ["wb-table1", "wb-table2", "wb-table4"])
def test_row_averages(item):
    """Avg. is the mean of the row's other entries up to rounding (each entry and Avg. rounded to 0.01)."""
    for method in sorted({c["method"] for c in pn.cells(item)}):
        row = pn.cells(item, method=method)
        (avg,) = [c["mean"] for c in row if c["setting"] == "avg"]
        rest = [c["mean"] for c in row if c["setting"] != "avg"]
        agrees = abs(avg - sum(rest) / len(rest)) <= 0.01 + 1e-9
        if (item, method) in KNOWN_AVG_MISMATCHES:
            assert not agrees
            assert KNOWN_AVG_MISMATCHES[item, method] in pn.load(item)["notes"]
        else:
            assert agrees, (item, method, avg, sum(rest) / len(rest))


@pytest.mark.parametrize("item", sorted(set(SHAPES) - {"hel-table5", "hel-table6"}))  # those have no spread
def test_spreads_are_possible(item):
    """Over n runs of a non-negative score the standard deviation is at most sqrt(n) x mean (rounding allowed).

    (n values >= 0 with mean m each lie in [0, n m], so their variance is at most (n m - m) m; the sample
    standard deviation is then at most sqrt(n) m, the population one smaller still.)
    """
    runs = pn.load(item)["runs"]
    for c in pn.cells(item):
        if c["std"] is None or c["metric"] == "log_likelihood":
            continue
        possible = c["std"] - 0.0005 <= math.sqrt(runs) * (c["mean"] + 0.0005)
        key = (item, c["method"], c["metric"], c["setting"], c.get("beta"))
        if key in KNOWN_INFEASIBLE_STD:
            assert not possible
            assert KNOWN_INFEASIBLE_STD[key] in pn.load(item)["notes"]
        else:
            assert possible, (key, c["printed"])


def test_repeated_rows_agree():
    """hel-table4's HELVAE column repeats Tables 2 and 3; hel-table7's uniform row repeats Table 8 at beta 5."""
    for c in pn.cells("hel-table4", method="helvae"):
        other = "hel-table2" if c["metric"] in ("coherence", "fid") else "hel-table3"
        (o,) = pn.cells(other, method="helvae", metric=c["metric"], setting=c["setting"])
        assert (c["mean"], c["std"]) == (o["mean"], o["std"])
    for c in pn.cells("hel-table7", method="helvae"):
        (o,) = pn.cells("hel-table8", method="helvae", metric=c["metric"], setting=c["setting"], beta=5.0)
        assert (c["mean"], c["std"]) == (o["mean"], o["std"])


def test_notes_list_unexplained_asterisks():
    """Every '*' marker the barycentric paper prints is mentioned in its file's notes."""
    for item in pn.ITEMS:
        marked = [c for c in pn.cells(item) if c.get("marker")]
        if marked:
            assert "asterisk" in pn.load(item)["notes"]
