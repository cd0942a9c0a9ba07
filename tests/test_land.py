"""Landing runs from another checkout (poolvae.land): what lands and what is left, with the reason, on copies of a
committed, up-to-date cpu run in a temporary source and destination; nothing here writes to the repository."""

import json
import shutil

import pytest

from poolvae import land as L
from poolvae.experiments import RUNS_DIR, get_experiment
from poolvae.train import run_path


@pytest.fixture(scope="module")
def committed():
    """(config, folder) of a committed hel-table8 cpu run that is finished, evaluated and up to date."""
    for cfg in get_experiment("hel-table8").runs("cpu"):
        folder = RUNS_DIR / run_path(cfg)
        if folder.is_dir() and L.landing_reason(cfg, folder, folder.parent / "absent") is None:
            return cfg, folder
    pytest.fail("no committed hel-table8 cpu run is up to date: the repository should hold calibrated runs")


@pytest.fixture
def source(tmp_path, committed):
    """A source checkout holding a copy of the committed run; returns (config, its folder there, dest runs dir)."""
    cfg, folder = committed
    src = tmp_path / "other" / "results" / "runs" / run_path(cfg)
    shutil.copytree(folder, src)
    return cfg, src, tmp_path / "here" / "runs"


def _reason(cfg, src, dest_runs):
    return L.landing_reason(cfg, src, dest_runs / run_path(cfg))


def _edit_json(path, **fields):
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


def test_a_finished_evaluated_run_lands_byte_for_byte(source):
    cfg, src, dest_runs = source
    found = L.candidates(src.parents[6], "cpu", ("hel-table8",), runs_dir=dest_runs)
    assert [c.cfg for c in found] == [cfg] and found[0].reason is None
    assert L.land(found, runs_dir=dest_runs) == [cfg]
    dest = dest_runs / run_path(cfg)
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in src.iterdir())
    assert all((dest / p.name).read_bytes() == p.read_bytes() for p in src.iterdir())
    assert _reason(cfg, src, dest_runs) == "already here"  # a second landing copies nothing


def test_a_dry_run_copies_nothing(source):
    cfg, src, dest_runs = source
    found = L.candidates(src.parents[4], "cpu", ("hel-table8",), runs_dir=dest_runs)
    assert L.land(found, runs_dir=dest_runs, dry_run=True) == [cfg]
    assert not dest_runs.exists()


def test_landing_replaces_an_older_folder_whole(source):
    cfg, src, dest_runs = source
    dest = dest_runs / run_path(cfg)
    dest.mkdir(parents=True)
    (dest / "left-over.json").write_text("{}")
    (dest / "metrics.json").write_text("{}")
    assert _reason(cfg, src, dest_runs) is None
    L.land(L.candidates(src.parents[6], "cpu", ("hel-table8",), runs_dir=dest_runs), runs_dir=dest_runs)
    assert not (dest / "left-over.json").exists()
    assert (dest / "metrics.json").read_bytes() == (src / "metrics.json").read_bytes()
    assert not list(dest.parent.glob("*.tmp"))


def test_an_unfinished_run_is_left(source):
    cfg, src, dest_runs = source
    _edit_json(src / "metrics.json", finished=False)
    assert _reason(cfg, src, dest_runs) == "still training"


def test_an_unevaluated_run_is_left(source):
    cfg, src, dest_runs = source
    (src / "evaluation.json").unlink()
    assert _reason(cfg, src, dest_runs) == "not evaluated yet"


def test_a_run_made_with_other_defaults_is_left_as_stale(source):
    cfg, src, dest_runs = source
    _edit_json(src / "config.json", epochs=cfg.epochs + 1)
    reason = _reason(cfg, src, dest_runs)
    assert reason.startswith("stale (") and f"epochs: {cfg.epochs + 1} there, {cfg.epochs} now" in reason


def test_a_run_evaluated_with_other_settings_is_left_as_stale(source):
    cfg, src, dest_runs = source
    ev = json.loads((src / "evaluation.json").read_text())
    k = ev["settings"]["K"]
    ev["settings"]["K"] = k + 1  # importance samples of the log-likelihood: another evaluation than today's
    (src / "evaluation.json").write_text(json.dumps(ev))
    assert _reason(cfg, src, dest_runs) == f"stale (K: {k + 1} there, {k} now)"


def test_sample_files_from_another_checkpoint_are_left(source):
    cfg, src, dest_runs = source
    ev = json.loads((src / "evaluation.json").read_text())
    ev["run"]["checkpoint_sha256"] = "0" * 64
    (src / "evaluation.json").write_text(json.dumps(ev))
    assert "sample files" in _reason(cfg, src, dest_runs)


def test_a_run_never_started_is_left(tmp_path, committed):
    cfg, _ = committed
    src = tmp_path / "runs" / run_path(cfg)
    src.mkdir(parents=True)
    assert _reason(cfg, src, tmp_path / "here") == "not started"


def test_the_source_must_hold_runs_and_not_be_this_checkout(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no run folders"):
        L.candidates(tmp_path / "nothing", "cpu")
    with pytest.raises(ValueError, match="is this checkout"):
        L.candidates(RUNS_DIR.parent.parent, "cpu")


def test_items_touched_are_the_items_holding_a_landed_run():
    table8 = get_experiment("hel-table8").runs("cpu")
    at_2_5 = next(c for c in table8 if c.beta == 2.5 and c.seed == 0)
    touched = L.items_touched([at_2_5], "cpu")
    assert "hel-table8" in touched and "hel-fig6" in touched
    only_fig6 = next(c for c in get_experiment("hel-fig6").runs("cpu") if c.beta == 0.03)
    assert "hel-table8" not in L.items_touched([only_fig6], "cpu")
    assert L.items_touched([], "cpu") == []


def test_command_line_dry_run_names_each_run(source, capsys):
    cfg, src, _ = source
    _edit_json(src / "metrics.json", landed_from="elsewhere")  # differs from the committed folder: it would land
    assert L.main([str(src.parents[6]), "--items", "hel-table8", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would land {run_path(cfg)}" in out and "1 of 1 run folders would land" in out
    assert L.main([str(src.parents[6] / "missing"), "--dry-run"]) == 1


def test_left_runs_are_counted_by_kind_of_reason(tmp_path, committed):
    cfg, _ = committed
    found = [L.Candidate(cfg, tmp_path, None), L.Candidate(cfg, tmp_path, "already here"),
             L.Candidate(cfg, tmp_path, "stale (epochs: 60 there, 65 now)"),
             L.Candidate(cfg, tmp_path, "stale (tuples: 1 there, 4 now)")]
    assert L.left_summary(found) == "; left: 1 already here, 2 stale"
    assert L.left_summary(found[:1]) == ""
