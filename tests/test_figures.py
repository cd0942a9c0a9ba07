"""Tests for poolvae.figures: the command writes results and figures deterministically, into the
folders it is given, and says which trained items it skipped and why."""

import dataclasses
import json
import subprocess
import sys

import pytest

from poolvae import figures


def test_only_wb_fig2_writes_both_files_and_twice_gives_identical_bytes(tmp_path):
    args = ["--only", "wb-fig2", "--results-dir", str(tmp_path / "r"), "--figures-dir", str(tmp_path / "f")]
    # the real command line once ...
    out = subprocess.run([sys.executable, "-m", "poolvae.figures", *args], capture_output=True, text=True,
                         check=True)
    assert "wb-fig2" in out.stdout and "1 drawn, 0 skipped" in out.stdout
    files = [tmp_path / "r" / "wb-fig2.json", tmp_path / "f" / "wb-fig2.png", tmp_path / "f" / "wb-fig2.pdf"]
    first = {f.name: f.read_bytes() for f in files}
    # ... and once in-process: same bytes
    assert figures.main(args) == 0
    assert {f.name: f.read_bytes() for f in files} == first
    data = json.loads(first["wb-fig2.json"])
    assert data["provenance"]["seed"] == 0 and data["provenance"]["scale"] == "exact"
    assert first["wb-fig2.png"].startswith(b"\x89PNG") and first["wb-fig2.pdf"].startswith(b"%PDF")


def test_trained_item_without_results_is_skipped_with_the_reason(tmp_path, capsys):
    figures.main(["--only", "hel-fig3", "wb-fig3", "--results-dir", str(tmp_path), "--figures-dir",
                  str(tmp_path)])
    out = capsys.readouterr().out
    assert f"skipped hel-fig3: {tmp_path / 'hel-fig3.json'} not found (run `make reproduce-hel-fig3`)" in out
    assert "skipped wb-fig3:" in out and "0 drawn, 2 skipped" in out
    assert not list(tmp_path.iterdir())  # nothing written


def test_trained_item_with_results_but_no_drawer_is_skipped(tmp_path, capsys, monkeypatch):
    # every trained item has a drawer now: take hel-fig10's away to check the message
    monkeypatch.setitem(figures.ITEMS, "hel-fig10", dataclasses.replace(figures.ITEMS["hel-fig10"], draw=None))
    (tmp_path / "hel-fig10.json").write_text("{}")
    figures.main(["--only", "hel-fig10", "--results-dir", str(tmp_path), "--figures-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "skipped hel-fig10:" in out and "exists but no drawing function is registered yet" in out


def test_registry_kinds_and_unknown_ids():
    exact = {k for k, v in figures.ITEMS.items() if v.kind == "exact"}
    assert exact == {"hel-fig1", "hel-fig2", "hel-fig7", "wb-fig2", "holder-alpha"}
    assert all(v.compute is not None and v.draw is not None for k, v in figures.ITEMS.items() if k in exact)
    assert all(v.compute is None for k, v in figures.ITEMS.items() if k not in exact)
    try:
        figures.main(["--only", "hel-fig99"])
    except SystemExit as err:
        assert err.code == 2
    else:
        raise AssertionError("an unknown id must be an error")


def test_split_limits_put_poe_on_its_own_part_of_a_broken_axis():
    curves = {"poe": [150.0, 80.0], "moe": [4.0, 3.0], "holder": [5.0, 3.2]}
    bottom, top = figures._split_limits(curves)
    assert bottom[0] < 3.0 and 5.0 < bottom[1] < 80.0 and top[0] < 80.0 and top[1] > 150.0
    assert figures._split_limits({"poe": [4.0, 3.0], "moe": [4.1, 3.0]}) is None


def test_preview_png_scales_down_to_the_width_and_keeps_the_aspect(tmp_path):
    import io

    from PIL import Image

    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.new("RGB", (1600, 600), "white").save(big)
    Image.new("RGB", (300, 200), "white").save(small)
    with Image.open(io.BytesIO(figures.preview_png(big, width=800))) as im:
        assert im.size == (800, 300) and im.mode == "P"  # a palette image
    with Image.open(io.BytesIO(figures.preview_png(small, width=800))) as im:
        assert im.size == (300, 200)  # never scaled up


@pytest.mark.parametrize("item", ["hel-fig1", "hel-fig2", "wb-fig2", "holder-alpha",
                                  pytest.param("hel-fig7", marks=pytest.mark.slow)])
def test_committed_exact_results_are_what_the_code_computes_now(item):
    # CI fails when a committed exact result is stale: recompute it and compare numbers and settings (every
    # field but the code hash and library versions, which poolvae.artefacts.write_json does not rewrite for)
    import torch

    from poolvae import artefacts as A

    committed = A.RESULTS_DIR / f"{item}.json"
    torch.manual_seed(0)
    fresh = A.content(figures.exact_result(item, seed=0))
    assert A.content(json.loads(committed.read_text())) == fresh, (
        f"{A.repo_relative(committed)} is out of date: run `make reproduce-{item}` and commit it")
