"""``--executor slurm`` asks for one GPU per run, with the partition and time limit that make's variables set."""

import os

import pytest

from poolvae.cluster import slurm_parameters


def test_defaults_ask_for_one_gpu_per_run_for_a_day():
    assert slurm_parameters(16, {}) == {"slurm_array_parallelism": 16, "nodes": 1, "tasks_per_node": 1,
                                        "timeout_min": 1440, "gpus_per_node": 1, "cpus_per_task": 8}
    # make passes every variable, empty where unset: empty is unset
    empty = {k: "" for k in ("POOLVAE_SLURM_PARTITION", "POOLVAE_SLURM_TIME", "POOLVAE_SLURM_GPUS",
                             "POOLVAE_SLURM_CPUS", "POOLVAE_SLURM_MEM_GB")}
    assert slurm_parameters(0, empty) == {**slurm_parameters(1, {}), "slurm_array_parallelism": 1}


def test_make_variables_reach_the_parameters_and_bad_values_name_them():
    env = {"POOLVAE_SLURM_PARTITION": "gpu", "POOLVAE_SLURM_TIME": "2880", "POOLVAE_SLURM_MEM_GB": "64"}
    p = slurm_parameters(4, env)
    assert (p["slurm_partition"], p["timeout_min"], p["mem_gb"], p["gpus_per_node"]) == ("gpu", 2880, 64, 1)
    with pytest.raises(ValueError, match=r"POOLVAE_SLURM_TIME='2d' \(make TIME_LIMIT=...\) must be a positive"):
        slurm_parameters(1, {"POOLVAE_SLURM_TIME": "2d"})
    with pytest.raises(ValueError, match="GPUS_PER_RUN"):
        slurm_parameters(1, {"POOLVAE_SLURM_GPUS": "0"})


def test_the_sbatch_script_asks_for_them(tmp_path, monkeypatch):
    submitit = pytest.importorskip("submitit")
    srun = tmp_path / "bin" / "srun"  # submitit's SLURM executor wants srun on the PATH; the script is only written
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}:{os.environ['PATH']}")
    ex = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    ex.update_parameters(**slurm_parameters(4, {"POOLVAE_SLURM_PARTITION": "gpu", "POOLVAE_SLURM_TIME": "2880"}))
    script = ex._executor._make_submission_file_text("python -c pass", "0")
    for line in ("--gpus-per-node=1", "--partition=gpu", "--time=2880", "--cpus-per-task=8"):
        assert f"#SBATCH {line}" in script
