"""What ``--executor slurm`` asks a SLURM cluster for: one GPU per run, the partition and the time limit.

:func:`poolvae.experiments.reproduce` submits each run of an item as one task of a submitit job array
(``submitit.AutoExecutor``). The Makefile passes its variables through the environment::

    make reproduce-hel-table8 SCALE=paper EXECUTOR=slurm JOBS=16 PARTITION=gpu TIME_LIMIT=2880

============================  ======================  ==========================================================
environment variable          Make variable           meaning (default)
============================  ======================  ==========================================================
``POOLVAE_SLURM_PARTITION``   ``PARTITION``           the partition (unset: the cluster's default)
``POOLVAE_SLURM_TIME``        ``TIME_LIMIT``          minutes per run before SLURM stops it (1440)
``POOLVAE_SLURM_GPUS``        ``GPUS_PER_RUN``        GPUs per run, ``--gpus-per-node`` (1)
``POOLVAE_SLURM_CPUS``        ``CPUS_PER_RUN``        CPU cores per run, for the data loader's workers (8)
``POOLVAE_SLURM_MEM_GB``      ``MEM_PER_RUN``         host memory per run in GB (unset: the partition's default)
============================  ======================  ==========================================================

``JOBS`` is the array's parallelism (how many runs at once). A run that reaches its time limit is killed with its
last epoch's checkpoint on disk; running the same command again resumes it (finished runs are skipped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: (environment variable, submitit parameter, type, default); None: leave it to the cluster.
SLURM_VARIABLES = (
    ("POOLVAE_SLURM_PARTITION", "slurm_partition", str, None),
    ("POOLVAE_SLURM_TIME", "timeout_min", int, 24 * 60),
    ("POOLVAE_SLURM_GPUS", "gpus_per_node", int, 1),
    ("POOLVAE_SLURM_CPUS", "cpus_per_task", int, 8),
    ("POOLVAE_SLURM_MEM_GB", "mem_gb", int, None),
)


def slurm_parameters(jobs: int, environ: Mapping[str, str] | None = None) -> dict:
    """``submitit.AutoExecutor.update_parameters`` keywords for a sweep of ``jobs`` runs at once, from ``environ``
    (default ``os.environ``). An empty variable counts as unset; a value that is not a positive whole number where
    one is needed raises a ValueError naming the variable and the Make variable that sets it."""
    environ = os.environ if environ is None else environ
    out: dict = {"slurm_array_parallelism": max(1, jobs), "nodes": 1, "tasks_per_node": 1}
    make_names = {"POOLVAE_SLURM_PARTITION": "PARTITION", "POOLVAE_SLURM_TIME": "TIME_LIMIT",
                  "POOLVAE_SLURM_GPUS": "GPUS_PER_RUN", "POOLVAE_SLURM_CPUS": "CPUS_PER_RUN",
                  "POOLVAE_SLURM_MEM_GB": "MEM_PER_RUN"}
    for var, key, typ, default in SLURM_VARIABLES:
        raw = environ.get(var, "").strip()
        if not raw:
            if default is not None:
                out[key] = default
            continue
        if typ is int:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{var}={raw!r} (make {make_names[var]}=...) must be a positive whole number")
            out[key] = int(raw)
        else:
            out[key] = raw
    return out
