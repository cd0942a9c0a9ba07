"""Artefact writers: atomic, deterministic JSON; repository-relative paths for messages and records."""

import json

from poolvae import artefacts as A


def test_json_is_deterministic_and_rounded(tmp_path):
    path = A.write_json(tmp_path / "x.json", {"b": 1 / 3, "a": [float("nan"), 2]})
    text = path.read_text()
    assert text == A.write_json(tmp_path / "y.json", {"a": [float("nan"), 2], "b": 1 / 3}).read_text()
    assert json.loads(text) == {"a": ["nan", 2], "b": 0.3333333333}
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_repo_relative_paths():
    assert A.repo_relative(A.RESULTS_DIR / "x.json") == "results/x.json"
    assert A.repo_relative("/somewhere/else.json") == "/somewhere/else.json"
