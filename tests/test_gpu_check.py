"""The accelerator check runs end to end on the CPU in its fast mode, so it is known to work when a GPU is lent."""

import json

import pytest

from poolvae import gpu_check as G


def test_finite_looks_into_nested_records():
    assert G._finite({"a": [1.0, {"b": 2}], "c": "text", "d": None, "e": True})
    assert not G._finite({"a": [1.0, {"b": float("nan")}]}) and not G._finite([float("inf")])


def test_a_device_torch_cannot_use_is_refused(tmp_path, capsys):
    assert G.main(["--device", "tpu", "--out-dir", str(tmp_path)]) == 2
    assert "unknown device 'tpu'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_check_passes_on_the_cpu_in_fast_mode(tmp_path):
    """About a minute: three ci runs trained and evaluated, a resumed run, the tiny benchmark."""
    assert G.main(["--device", "cpu", "--out-dir", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "gpu-check-cpu.json").read_text())
    assert record["passed"] and record["fast"] and record["device"]["device"] == "cpu"
    checks = record["checks"]
    assert set(checks["train_evaluate"]["methods"]) == set(G.METHODS)
    assert all(r["environment_device"] == "cpu" for r in checks["train_evaluate"]["methods"].values())
    assert checks["resume"]["max_abs_difference"] == 0 and checks["resume"]["bitwise"]
    bench = json.loads((tmp_path / "train-cpu.json").read_text())
    assert set(bench["settings"]) == {"tiny"}
    log = (tmp_path / "gpu-check-cpu.log").read_text()
    assert "== resume: passed" in log and "gpu-check: all passed" in log
