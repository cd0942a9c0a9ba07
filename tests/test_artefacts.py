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


def test_repo_relative_keeps_a_path_through_a_linked_folder_relative(tmp_path, monkeypatch):
    repo, disk = tmp_path / "repo", tmp_path / "other-disk"
    (disk / "diagnostics").mkdir(parents=True)
    repo.mkdir()
    (repo / "checkpoints").symlink_to(disk)  # checkpoints kept on another disk
    monkeypatch.setattr(A, "REPO_ROOT", repo)
    assert A.repo_relative(repo / "checkpoints" / "diagnostics" / "a.pt") == "checkpoints/diagnostics/a.pt"
    assert A.repo_relative(disk / "diagnostics" / "a.pt") == str(disk / "diagnostics" / "a.pt")  # outside it


def test_a_result_that_differs_only_in_code_hash_and_versions_keeps_its_file_byte_for_byte(tmp_path):
    old = {"x": [1.0, 2.5], "provenance": {"source_hash": "aaaa", "versions": {"torch": "1"}, "seed": 0}}
    path = A.write_json(tmp_path / "r.json", old)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    # later code (another hash, other library versions), same numbers and settings: the file is not touched
    A.write_json(path, {"x": [1.0, 2.5], "provenance": {"source_hash": "bbbb", "versions": {"torch": "2"}, "seed": 0}})
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    # a number that changes, or a provenance field that is a setting (the seed), rewrites it with the new hash
    for new in ({"x": [1.0, 2.6], "provenance": {"source_hash": "cccc", "versions": {}, "seed": 0}},
                {"x": [1.0, 2.5], "provenance": {"source_hash": "dddd", "versions": {}, "seed": 1}}):
        A.write_json(path, new)
        assert json.loads(path.read_text()) == new
    # keep_unchanged=False always writes; rounding happens before the comparison (10 significant digits)
    A.write_json(path, {"x": [1.0, 2.5], "provenance": {"source_hash": "eeee", "versions": {}, "seed": 1}},
                 keep_unchanged=False)
    assert json.loads(path.read_text())["provenance"]["source_hash"] == "eeee"
    before = path.read_bytes()
    A.write_json(path, {"x": [1.0 + 1e-12, 2.5], "provenance": {"source_hash": "ffff", "versions": {}, "seed": 1}})
    assert path.read_bytes() == before


def test_content_drops_only_the_churning_provenance_fields_at_any_depth():
    obj = {"a": (1, float("nan")), "run": {"provenance": {"source_hash": "x", "versions": {}, "device": "cpu"}},
           "provenance": {"source_hash": "y", "scale": "ci"}}
    assert A.content(obj) == {"a": [1, "nan"], "run": {"provenance": {"device": "cpu"}}, "provenance": {"scale": "ci"}}


def test_a_file_that_is_not_json_is_replaced(tmp_path):
    (tmp_path / "r.json").write_text('{"x": [1.0,')  # cut short
    A.write_json(tmp_path / "r.json", {"x": 1})
    assert json.loads((tmp_path / "r.json").read_text()) == {"x": 1}
