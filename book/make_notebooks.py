"""Build the book's chapter notebooks from their text sources and execute them, keeping the outputs.

    .venv/bin/python book/make_notebooks.py          # every chapter (what `make book-notebooks` runs)
    .venv/bin/python book/make_notebooks.py 04 07    # only the chapters whose file name starts so
    .venv/bin/python book/make_notebooks.py --check  # exit 1 if a notebook's cells differ from its source

The source of chapter ``NN_name`` is ``book/src/NN_name.md``, a MyST Markdown notebook: markdown, code
cells fenced with ```` ```{code-cell} ipython3 ```` and ```` ``` ```` (optionally starting with a
``:tags: [hide-input]`` line), and a ``+++`` line between two markdown cells. Edit the source, then
run this script: it writes ``book/NN_name.ipynb`` with the outputs of a fresh, seeded execution (the
book is built from these stored outputs, and nbval re-runs the notebooks and compares). Edits made
directly in a notebook are overwritten by the next run, and ``tests/test_book.py`` fails while a
notebook and its source disagree.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import nbformat

BOOK = Path(__file__).resolve().parent
SRC = BOOK / "src"
CODE_START = re.compile(r"^```\{code-cell\}")
TAGS = re.compile(r"^:tags:\s*\[(.*)\]\s*$")
KERNEL = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def parse(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Split a MyST notebook source into ``[(cell_type, source, tags), ...]``.

    ``cell_type`` is ``"markdown"`` or ``"code"``; a code cell may start with a ``:tags: [a, b]`` line
    (e.g. ``hide-input`` for a plotting cell, which the book then shows folded).
    """
    cells: list[tuple[str, str, tuple[str, ...]]] = []
    buf: list[str] = []
    kind = "markdown"
    tags: tuple[str, ...] = ()

    def flush() -> None:
        body = "\n".join(buf).strip("\n")
        if body.strip():
            cells.append((kind, body, tags if kind == "code" else ()))
        buf.clear()

    for line in text.splitlines():
        if kind == "markdown" and CODE_START.match(line):
            flush()
            kind, tags = "code", ()
        elif kind == "code" and not buf and TAGS.match(line):
            tags = tuple(t.strip() for t in TAGS.match(line).group(1).split(",") if t.strip())
        elif kind == "code" and line.rstrip() == "```":
            flush()
            kind = "markdown"
        elif kind == "markdown" and line.rstrip() == "+++":
            flush()
        else:
            buf.append(line)
    if kind == "code":
        raise ValueError("unterminated code cell")
    flush()
    return cells


def build(cells: list[tuple[str, str, tuple[str, ...]]]) -> nbformat.NotebookNode:
    """An unexecuted notebook with the given cells and the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    for kind, body, tags in cells:
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(make(body))
        if tags:
            nb.cells[-1].metadata["tags"] = list(tags)
    for k, cell in enumerate(nb.cells):  # stable ids, so re-running changes no byte that need not change
        cell["id"] = f"c{k:03d}"
    return nb


def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in book/; stop at the first error."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(BOOK)}})
    client.execute()
    for cell in nb.cells:  # one stream output per name and cell, so equal runs give equal bytes
        merged: list = []
        for out in cell.get("outputs", []):
            prev = merged[-1] if merged else None
            if out.output_type == "stream" and prev is not None and prev.output_type == "stream" \
                    and prev.name == out.name:
                prev.text += out.text
            else:
                merged.append(out)
        if cell.cell_type == "code":
            cell.outputs = merged
    nb.metadata["language_info"] = {k: v for k, v in nb.metadata["language_info"].items()
                                    if k in ("name", "mimetype", "file_extension", "nbconvert_exporter",
                                             "pygments_lexer", "codemirror_mode")}
    return nb


def sources() -> list[Path]:
    """Every chapter source, in file-name order."""
    return sorted(SRC.glob("[0-9][0-9]_*.md"))


def notebook_for(src: Path) -> Path:
    """The notebook a source is built into."""
    return BOOK / f"{src.stem}.ipynb"


def out_of_sync(src: Path) -> str | None:
    """Why a notebook disagrees with its source (None when the cells agree)."""
    nb_path = notebook_for(src)
    if not nb_path.exists():
        return f"{nb_path.name} does not exist"
    want = parse(src.read_text())
    cells = nbformat.read(nb_path, as_version=4).cells
    got = [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in cells]
    if want != got:
        first = (k for k, (a, b) in enumerate(zip(want, got, strict=False)) if a != b)
        diff = next(first, min(len(want), len(got)))
        return f"{nb_path.name}: cell {diff} differs from {src.relative_to(BOOK)}"
    return None


def main(argv: list[str]) -> int:
    """Command line: see the module docstring."""
    if "--check" in argv:
        problems = [p for p in map(out_of_sync, sources()) if p]
        for p in problems:
            print(p)
        return 1 if problems else 0
    chosen = [s for s in sources() if not argv or any(s.name.startswith(a) for a in argv)]
    if not chosen:
        print(f"no source matches {argv}; sources: {[s.name for s in sources()]}")
        return 1
    for src in chosen:
        t0 = time.perf_counter()
        nb = execute(build(parse(src.read_text())))
        nbformat.write(nb, notebook_for(src))
        took = time.perf_counter() - t0
        print(f"{notebook_for(src).name}: {len(nb.cells)} cells, executed in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
