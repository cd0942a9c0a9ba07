"""Static checks of the book (book/): fast, no kernel is started.

The chapters themselves are re-executed and their outputs compared by nbval, the second command of
`make test` (``pytest --nbval --nbval-sanitize-with book/sanitize.cfg book/``). This file checks what
nbval does not: that the table of contents and the files agree, that every notebook carries committed
outputs and is in sync with its source in book/src/, that pages import the library instead of
re-implementing it, and that every labelled equation is followed by an ``assert``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import yaml

BOOK = Path(__file__).resolve().parent.parent / "book"


def _toc_files() -> list[str]:
    """Every file named in book/_toc.yml, root first, in reading order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("chapters"))
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def _notebooks() -> list[Path]:
    return sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))


NOTEBOOKS = _notebooks()
LOADED = {p.name: nbformat.read(p, as_version=4) for p in NOTEBOOKS}


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    files = _toc_files()
    missing = [f for f in files if not any((BOOK / f"{f}{ext}").exists() for ext in (".ipynb", ".md"))]
    assert not missing, f"listed in _toc.yml but not in book/: {missing}"
    unlisted = [p.stem for p in NOTEBOOKS if p.stem not in files]
    assert not unlisted, f"chapters not listed in _toc.yml: {unlisted}"
    assert len(NOTEBOOKS) >= 10


def test_chapters_are_numbered_in_reading_order():
    """The toc lists the chapters NN_* as 01, 02, ... without gaps, in that order."""
    numbers = [int(f[:2]) for f in _toc_files() if re.match(r"\d\d_", f)]
    assert numbers == list(range(1, len(numbers) + 1)), f"chapter numbers in _toc.yml: {numbers}"


def test_config_builds_offline_from_stored_outputs():
    cfg = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] in ("off", "cache")
    assert "sphinx-mathjax-offline" in cfg["sphinx"]["extra_extensions"]
    assert not re.search(r"https?://", (BOOK / "_config.yml").read_text()), "no URL (CDN) in the config"


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_outputs_committed_and_clean(name):
    nb = LOADED[name]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a chapter without code"
    counts = [c.execution_count for c in code]
    assert None not in counts, "every code cell must be executed (outputs committed)"
    assert counts == list(range(1, len(code) + 1)), "executed top to bottom in one fresh kernel"
    assert any(c.outputs for c in code)
    for c in code:
        for o in c.outputs:
            assert o.output_type != "error", f"an error output is committed: {o.get('ename')}"
            assert not (o.output_type == "stream" and o.name == "stderr"), f"stderr output: {o.text[:200]}"


# a number at 1e-9 or below in scientific notation; it may be printed only as a bound ("< 1e-10", "below 1e-12")
TINY_NUMBER = re.compile(r"(?<![\w.])\d(\.\d+)?e-(0?9|[1-9]\d)\b")
BOUND_WORD = re.compile(r"(<|<=|below|under)\s*$")


def round_off_digits(text: str) -> list[str]:
    """The numbers at 1e-9 or below in ``text`` that are not stated as a bound."""
    return [m.group(0) for m in TINY_NUMBER.finditer(text) if not BOUND_WORD.search(text[:m.start()])]


def _shown_text(output) -> str:
    """What a notebook output shows as text: a stream, or the plain, Markdown or HTML form of a result."""
    if output.output_type == "stream":
        return output.text
    data = output.get("data", {})
    return "".join(data.get(k, "") for k in ("text/plain", "text/markdown", "text/html"))


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_outputs_print_no_round_off_digits(name):
    """A value at round-off (a residual, a gap, a slope that should be zero) is printed as the bound it is
    checked against, never as its digits: those differ from one machine to the next (a slope printed 1.7e-12
    on one, 5.6e-13 on another), and nbval compares the printed text, so CI would fail on a new machine."""
    for i, cell in enumerate(c for c in LOADED[name].cells if c.cell_type == "code"):
        for output in cell.outputs:
            found = round_off_digits(_shown_text(output))
            assert not found, f"code cell {i + 1} prints round-off digits {found}: print the bound instead"


def test_round_off_digits_spares_bounds_only():
    assert round_off_digits("slope at s = 0: 5.6e-13; gap 1.7e-09") == ["5.6e-13", "1.7e-09"]
    assert round_off_digits("to < 1e-10, gap below\n1e-12, error under 2e-15") == []
    assert round_off_digits("residual 3.2e-04 and 1e-8") == []


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_imports_the_library(name):
    source = "\n".join(_code(LOADED[name]))
    assert re.search(r"^\s*(from poolvae(\.\w+)? import|import poolvae)", source, re.M), "must import poolvae"


#: Names of library logic that a page must import, never define (pooling rules, divergences, metrics).
LIBRARY_NAMES = (
    r"poe|moe|mopoe|mwb|mohel|mocode|code|hellinger\w*|wb|holder\w*|bures\w*|mixture_of_pools|"
    r"pool\w*|aggregat\w*|kl_\w*|w2_\w*|\w*bhattacharyya\w*|moment_match\w*|log_prob|"
    r"pair_terms|pair_components|elbo\w*|nll\w*|coherence\w*|fid\w*"
)
DEFINES = re.compile(rf"^\s*(def\s+({LIBRARY_NAMES})\s*\(|({LIBRARY_NAMES})\s*=\s*lambda\b)", re.M)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_pages_never_define_library_logic(name):
    for src in _code(LOADED[name]):
        m = DEFINES.search(src)
        assert m is None, f"a page defines {m.group(0).strip()!r}; import it from poolvae instead"


LABEL = re.compile(r"^\$\$\s*\(([\w-]+)\)\s*$", re.M)
HEADING = re.compile(r"^#{1,6} ", re.M)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_every_labelled_equation_is_followed_by_an_assert(name):
    """Each markdown cell with a labelled equation is followed, within its section, by an assert."""
    cells = LOADED[name].cells
    assert any("assert " in s for s in _code(LOADED[name])), "a chapter without a single assert"
    for k, cell in enumerate(cells):
        if cell.cell_type != "markdown" or not LABEL.search(cell.source):
            continue
        labels = LABEL.findall(cell.source)
        checked = False
        for later in cells[k + 1 :]:
            if later.cell_type == "markdown" and HEADING.search(later.source):
                break
            if later.cell_type == "code" and re.search(r"^\s*assert\b", later.source, re.M):
                checked = True
                break
        assert checked, f"equation(s) {labels} are not followed by an assert before the next section"


def test_equation_labels_are_unique_and_references_resolve():
    labels, refs = [], set()
    for nb in LOADED.values():
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                labels += LABEL.findall(cell.source)
                refs |= set(re.findall(r"\{eq\}`([\w-]+)`", cell.source))
    for md in BOOK.glob("*.md"):
        refs |= set(re.findall(r"\{eq\}`([\w-]+)`", md.read_text()))
    assert len(labels) == len(set(labels)), "duplicate equation labels"
    assert refs <= set(labels), f"references to unknown equations: {sorted(refs - set(labels))}"


def test_citations_resolve():
    keys = set(re.findall(r"^@\w+\{([^,]+),", (BOOK / "references.bib").read_text(), re.M))
    cited = set()
    texts = [c.source for nb in LOADED.values() for c in nb.cells]
    texts += [p.read_text() for p in BOOK.glob("*.md")]
    for text in texts:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited |= {k.strip() for k in group.split(",")}
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


def test_notebooks_in_sync_with_sources():
    spec = importlib.util.spec_from_file_location("make_notebooks", BOOK / "make_notebooks.py")
    make_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_notebooks)
    sources = make_notebooks.sources()
    assert [s.stem for s in sources] == [p.stem for p in NOTEBOOKS], "one source per chapter notebook"
    problems = [p for p in map(make_notebooks.out_of_sync, sources) if p]
    assert not problems, f"{problems}; run `make book-notebooks`"


def test_sanitizers_never_hide_checked_numbers():
    """The nbval sanitizers may only touch addresses, timings and progress bars, never plain numbers."""
    from nbval.plugin import get_sanitize_patterns  # the parser nbval itself uses

    text = (BOOK / "sanitize.cfg").read_text()
    patterns = get_sanitize_patterns(text)
    assert len(patterns) == text.count("\nregex: "), "every regex: line needs a replace: line right after it"
    samples = ["S_ij: [0.268169, 0.003922, 0.169696]", "mean 0.773817 (quadrature 0.773817)",
               "trace: [0.692, 2.386, 3.206]", "1.5e-05", "D_1/2 = 1.329006", "100 random points",
               "executed in 6.8 s", "<Figure size 770x210 with 3 Axes>"]
    for regex, _ in patterns:
        for s in samples:
            assert not re.search(regex, s), f"sanitizer {regex!r} would hide part of {s!r}"


# --------------------------------------------------------------------------------------------------
# A chapter is a reader's path (STYLE.md, principle 12): it opens with what it shows, closes with
# takeaways and how to run it, has an exercise, numbers and captions every figure, keeps printed lines
# under 100 characters, and keeps every label next to the table it names.
# --------------------------------------------------------------------------------------------------

def _markdown(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def _admonition(title: str) -> re.Pattern:
    """A MyST admonition whose title starts with ``title`` (colon or backtick fence)."""
    return re.compile(rf"^(:{{3,}}|`{{3,}})\{{admonition\}}\s+{title}", re.M)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_chapter_opens_with_what_it_shows(name):
    first = _markdown(LOADED[name])[0]
    assert first.startswith("# "), "a chapter starts with its title"
    assert _admonition("What you will learn").search(first), \
        "the title cell holds a ':::{admonition} What you will learn' block"


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_chapter_closes_with_takeaways_and_how_to_run_it(name):
    last = LOADED[name].cells[-1]
    assert last.cell_type == "markdown", "a chapter ends in prose: the takeaways, not a code cell"
    assert _admonition("Takeaways").search(last.source), "the last cell holds a Takeaways admonition"
    assert "Run it yourself" in last.source, "the last cell says how to run the chapter"
    assert "make book-notebooks" in last.source and f"book/src/{name[:-6]}.md" in last.source


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_chapter_has_an_exercise(name):
    assert any(_admonition("Exercise").search(s) for s in _markdown(LOADED[name])), \
        "at least one ':::{admonition} Exercise' block: change one number, see the theory bend"


GLUE_FIGURE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{glue:figure\}[ \t]+(?P<key>\S+)[ \t]*\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
GLUE_PREFIX = "application/papermill.record/"


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_every_figure_is_numbered_and_captioned(name):
    """No figure is shown bare: each is glued (myst_nb.glue) and placed by a {glue:figure} directive with a
    label (numfig numbers it) and a caption."""
    nb = LOADED[name]
    glued, figures = set(), set()
    for c in nb.cells:
        for o in c.get("outputs", []):
            data = o.get("data", {})
            bare = [k for k in data if k.startswith("image/")]
            assert not bare, "a figure shown without a caption: glue it and place it with {glue:figure}"
            key = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if key:
                glued.add(key)
                if any(k.startswith(GLUE_PREFIX + "image/") for k in data):
                    figures.add(key)
    placed = {}
    for source in _markdown(nb):
        for m in GLUE_FIGURE.finditer(source):
            lines = m.group("body").strip().splitlines()
            options = [ln for ln in lines if re.match(r"^:\w+:", ln)]
            caption = " ".join(ln for ln in lines if ln not in options).strip()
            assert any(o.startswith(":name:") for o in options), f"{m.group('key')}: give the figure a :name:"
            assert caption, f"{m.group('key')}: the figure has no caption"
            placed[m.group("key")] = caption
    assert figures <= set(placed), f"glued figures never placed: {sorted(figures - set(placed))}"
    assert set(placed) <= glued, f"{{glue:figure}} of keys never glued: {sorted(set(placed) - glued)}"


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_printed_lines_fit_the_column(name):
    """Printed output (streams, plain-text results) stays under 100 characters a line."""
    for k, c in enumerate(LOADED[name].cells):
        for o in c.get("outputs", []):
            data = o.get("data", {})
            if o.output_type == "stream":
                text = o.text
            elif "text/plain" in data and not any(m in data for m in ("text/html", "text/markdown")):
                text = data["text/plain"]
            else:
                continue
            long = [ln for ln in text.splitlines() if len(ln) >= 100]
            assert not long, f"cell {k}: {len(long[0])} characters: {long[0][:60]}..."


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_each_table_follows_its_own_label(name):
    """In a cell that shows several tables, each table comes right after its own label (a markdown or printed
    output), so the book never shows a block of labels and then a block of tables."""
    for k, c in enumerate(LOADED[name].cells):
        outs = c.get("outputs", [])
        tables = [i for i, o in enumerate(outs) if "text/html" in o.get("data", {})]
        if len(tables) < 2:
            continue
        for i in tables:
            prev = outs[i - 1] if i else None
            labelled = prev is not None and (prev.output_type == "stream" or "text/markdown" in prev.get("data", {}))
            assert labelled, f"cell {k}: table {i} has no label right before it"


def test_streams_are_not_merged():
    """nb_merge_streams moves every printed line of a cell above its displays; the book keeps them in order."""
    cfg = yaml.safe_load((BOOK / "_config.yml").read_text())
    assert not cfg["sphinx"]["config"].get("nb_merge_streams", False)


def _landing_chapters() -> set[str]:
    """The chapter prefixes the Makefile's ``LANDING_CHAPTERS`` names (what `make land` re-executes)."""
    text = (BOOK.parent / "Makefile").read_text()
    found = re.search(r"^LANDING_CHAPTERS\s*=\s*(.*)$", text, re.M)
    assert found, "the Makefile defines no LANDING_CHAPTERS"
    return set(found.group(1).split())


def test_make_land_re_executes_every_chapter_that_reads_landed_runs():
    """A chapter that reads a PolyMNIST item, its run folders or the claims ledger shows numbers a landing changes;
    unless `make land` re-executes it, nbval fails on the next `make test`. Independent of the list: the sources
    are scanned for the item ids (:data:`poolvae.experiments.POLYMNIST_ITEMS`), the run folders and the ledger."""
    from poolvae.experiments import POLYMNIST_ITEMS

    marks = [*(f'"{item}' for item in POLYMNIST_ITEMS), *(f"'{item}" for item in POLYMNIST_ITEMS),
             'RESULTS_DIR / "runs"', "claims.json"]
    reading = {src.name[:2] for src in sorted((BOOK / "src").glob("[0-9][0-9]_*.md"))
               if any(mark in src.read_text() for mark in marks)}
    assert reading, "the scan finds no chapter at all: the marks no longer match how chapters read results"
    assert _landing_chapters() == reading, (
        f"set LANDING_CHAPTERS in the Makefile to {' '.join(sorted(reading))}: these chapters read landed runs")
