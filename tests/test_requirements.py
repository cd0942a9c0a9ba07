"""The environment is pinned twice: `requirements.txt` names what poolvae needs, `requirements.lock` freezes the
whole tree. `make setup` installs the first under the second as constraints, so a transitive dependency cannot drift
with the registry (a newer fontTools subsets fonts differently and changes the bytes of every committed PDF)."""

import re

from poolvae.artefacts import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;#]+)", re.M)


def _pins(name: str) -> dict[str, str]:
    """``{package: version}`` for each ``package==version`` line of a requirements file (names normalised)."""
    text = (REPO_ROOT / name).read_text()
    return {re.sub(r"[-_.]+", "-", p.split("[")[0]).lower(): v for p, v in PIN.findall(text)}


def test_the_lock_pins_what_requirements_pin_at_the_same_version():
    direct, lock = _pins("requirements.txt"), _pins("requirements.lock")
    assert direct, "requirements.txt pins nothing"
    missing = sorted(set(direct) - set(lock))
    assert not missing, f"requirements.lock lacks {missing}: install, then refreeze it (pip freeze)"
    differ = {p: (v, lock[p]) for p, v in direct.items() if lock[p] != v}
    assert not differ, f"requirements.txt and requirements.lock pin these differently (txt, lock): {differ}"


def test_setup_installs_under_the_lock_and_reinstalls_when_it_changes():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-r requirements\.txt -c requirements\.lock", makefile)
    stamp = next(line for line in makefile.splitlines() if line.startswith("STAMP :="))
    assert "requirements.lock" in stamp
