"""Every module of poolvae opens with a paragraph saying what it is for, and every public function, class and
method has a docstring (the contributors' standard), checked on the source so that a new function without one
fails here rather than in review."""

import ast
from pathlib import Path

import pytest

CODE = Path(__file__).resolve().parents[1] / "code"
MODULES = sorted(CODE.glob("*.py"))


def undocumented(tree: ast.Module) -> list[str]:
    """Public functions, classes and methods of public classes without a docstring, as ``name (line N)``."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if child.name.startswith("_"):  # private (and dunder): documented where it helps, not required
                continue
            if ast.get_docstring(child) is None:
                found.append(f"{prefix}{child.name} (line {child.lineno})")
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def test_the_check_finds_what_it_should():
    tree = ast.parse('"""m"""\ndef f():\n    pass\nclass C:\n    """c"""\n    def g(self):\n        pass\n'
                     '    def _h(self):\n        pass\nclass _P:\n    def k(self):\n        pass\n')
    assert undocumented(tree) == ["f (line 2)", "C.g (line 6)"]


@pytest.mark.parametrize("module", MODULES, ids=[m.name for m in MODULES])
def test_every_module_and_public_function_has_a_docstring(module):
    tree = ast.parse(module.read_text())
    doc = ast.get_docstring(tree)
    assert doc and len(doc.split()) >= 8, f"{module.name}: no opening paragraph saying what the module is for"
    assert undocumented(tree) == [], f"{module.name}: public names without a docstring"


def test_readme_layout_names_every_module():
    """A newcomer finds every module in the README's layout, so a new module must be placed there."""
    readme = (CODE.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[:layout.index("tests/ ")]
    names = {m.stem for m in MODULES} - {"__init__"}
    words = set(layout.replace(",", " ").split())
    assert not names - words, f"README's layout does not name: {', '.join(sorted(names - words))}"
