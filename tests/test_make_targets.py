"""Every ``make <target>`` the README, docs/ and the book's sources tell a reader to type names a target the Makefile
defines (explicitly, or through a pattern rule such as ``reproduce-%``), so that no instruction goes stale when a
target is renamed."""

import re
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "book" / "src").glob("*.md"))]
TARGET = r"([a-z][a-z0-9<>-]*[a-z0-9>])"  # a placeholder such as reproduce-<id> stands for any name
OPTIONS = r"(?:-[A-Za-z]\S*\s+)*"  # make's own flags before the target (-j2, -k)
INLINE = re.compile(rf"`make {OPTIONS}{TARGET}[^`]*`")  # `make land FROM=..` in prose
CODE_LINE = re.compile(rf"^\s*make {OPTIONS}{TARGET}(?![a-z0-9<>-])")  # a line of a code block


def makefile_targets() -> list[str]:
    """The targets the Makefile defines (``name:`` at the start of a line; ``%`` patterns kept as globs)."""
    text = (ROOT / "Makefile").read_text()
    names = re.findall(r"^([A-Za-z0-9%_.-]+(?:\s+[A-Za-z0-9%_.-]+)*)\s*:(?!=)", text, flags=re.M)
    return [t.replace("%", "*") for group in names for t in group.split()]


def instructed_targets() -> dict[str, set[str]]:
    """{target: files that tell a reader to run it}, from inline code and code-block lines."""
    found: dict[str, set[str]] = {}
    for f in TEXTS:
        in_block = False
        for line in f.read_text().splitlines():
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            hits = CODE_LINE.findall(line) if in_block else INLINE.findall(line)
            for target in hits:
                found.setdefault(re.sub(r"<[^>]*>", "*", target), set()).add(f.relative_to(ROOT).as_posix())
    return found


def test_the_makefile_parser_sees_known_targets():
    targets = makefile_targets()
    assert {"test", "setup", "figures", "land", "sweep-plan"} <= set(targets)
    assert any(fnmatch("reproduce-hel-table8", t) for t in targets)
    assert not any(fnmatch("no-such-target", t) for t in targets)


def test_the_scan_reads_the_target_after_make_options():
    assert CODE_LINE.findall("make -j2 diagnose-warmup WARMUP_THREADS=1 # both at once") == ["diagnose-warmup"]
    assert INLINE.findall("run `make -j2 -k figures` here") == ["figures"]
    assert CODE_LINE.findall("make test") == ["test"]


def test_every_instructed_make_target_exists():
    targets = makefile_targets()
    found = instructed_targets()
    assert {"test", "land", "claims"} <= set(found)  # the scan finds instructions at all
    missing = {t: sorted(files) for t, files in found.items() if not any(fnmatch(t, p) for p in targets)}
    assert not missing, f"instructions name make targets the Makefile lacks: {missing}"
