"""Train one multimodal VAE run: resumable, idempotent, with its config and environment on disk.

    python -m poolvae.train --dataset polymnist-mini --method helvae --beta 2.5 --seed 0 --scale cpu

A run is identified by (scale, dataset, method, beta, seed) and writes
``results/runs/<scale>/<dataset>/<method>/beta=<b>/seed=<s>/`` with ``config.json``,
``metrics.json`` (one entry per epoch, then ``finished: true``) and ``environment.json``; its
checkpoint goes to the git-ignored ``checkpoints/`` folder under the same relative path. A finished
run is skipped; an interrupted one (Ctrl-C, SIGTERM, a killed job) resumes from its checkpoint and
ends with the same weights as an uninterrupted run of the same seed: the checkpoint holds the model,
the optimiser, the random state and the position inside the epoch, and the data order of each epoch
is drawn from a generator seeded by (seed, epoch). The scale level in the path is an addition to
DESIGN.md's layout so that runs of different scales can never be mixed up.

Devices (``--device``, ``TrainConfig.device``): ``auto`` (``$POOLVAE_DEVICE`` if set, as the Makefile's
``DEVICE=`` sets it, else the GPU when torch sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. The model is
initialised on the CPU from the seed and moved there with its optimiser state; batches are gathered there
(:func:`batches`), and the sampling noise comes from the device's generator, whose state the checkpoint keeps. The
device is an execution field (:data:`EXECUTION_FIELDS`): checkpoints load through the CPU (``map_location``), so a
run interrupted on one device resumes on another. On the CPU a run computes exactly what it did before devices
existed (same batches, same noise, same numbers). ``--amp bf16|fp16`` runs the networks in mixed precision (the
pooling, sampling, KL and likelihoods stay float32; fp16 with a gradient scaler) and is part of a run's identity;
``--compile`` compiles the whole model and is not.

Scales: ``ci`` (seconds, tests), ``cpu`` (PolyMNIST-mini for 60 epochs, 7 to 20 minutes a run on one core and
CoDEVAE about 1.7 h; too few epochs for HELVAE to reach its rank, as book chapter 9 measures; the other data sets
as seeded subsets in a few minutes), ``paper`` (the appendix settings of the papers; GPUs and
downloaded data sets). Every data set gets its own encoder/decoder family (:func:`poolvae.networks.networks_for`).
Data sets are read from ``poolvae.datasets.DATA_DIR`` (``<repo>/data``). ``--runs-dir`` and
``--checkpoint-dir`` put a run elsewhere, for runs outside a scale's settings (a longer training budget,
say), which a scale's own folder refuses.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import platform
import re
import signal
import socket
import subprocess
import time
import types
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in every notebook

from . import aggregators as agg
from . import datasets as ds
from .artefacts import REPO_ROOT, RESULTS_DIR, provenance, read_json, write_json
from .configs import typed
from .models import METHODS, Modality, MultimodalVAE
from .networks import DATASET_ARCH, architectures_for, networks_for

SCALES = ("ci", "cpu", "paper")
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
RUNS_DIR = RESULTS_DIR / "runs"  # the run folders of every scale's own settings


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults are the ``cpu`` scale on PolyMNIST-mini."""

    dataset: str = "polymnist-mini"  # key of poolvae.datasets.DATASETS
    method: str = "helvae"  # key of poolvae.models.METHODS
    beta: float = 1.0  # weight of the KL term
    seed: int = 0  # seeds data order, initialisation and sampling
    scale: str = "cpu"  # ci | cpu | paper
    arch: str = "conv28"  # encoder/decoder family; PolyMNIST: conv28 | res28, others: poolvae.networks.DATASET_ARCH
    width: int = 32  # base channel count of the networks
    latent_dim: int = 64  # shared latent size D
    private_dim: int = 0  # modality-specific latent size per modality (MMVAE+ needs one; CelebA gives every method one)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 5e-4  # Adam learning rate (HEL B.3)
    K: int = 1  # importance samples (MMVAE, MMVAE+)
    dreg: bool = True  # DReG gradient estimator for the importance-weighted objectives
    rho: float = 0.5  # CoDE correlation
    train_limit: int = 0  # 0: the whole training split; n: a seeded subset of n rows
    test_limit: int = 0
    tuples: int = 1  # PolyMNIST-mini: training tuples per training digit (poolvae.polymnist.build_polymnist_mini);
    # R > 1 draws R x 4,000 tuples from the same 4,000 digits (data/polymnist-mini-x<R>); other data sets: 1 only
    laplace_scale: str = "softmax"  # MMVAE/MMVAE+ Laplace scales: softmax(a) * D + 1e-6 and prior scale 1 (the
    # authors' code) | "free" (free log-variances, unit-variance prior); poolvae.models
    mopoe_prior: str = "full"  # MoPoE: N(0, I) in the full set's PoE only (Sutter et al.'s code) | "none" | "all"
    subset_entropy_coef: float = 1000.0  # CoDEVAE: + coef * entropy of the subset weights (the authors' code); 0: free
    kl_warmup: int = 0  # epochs over which the KL weight rises linearly from 0 to beta (kl_weight); 0: beta from the
    # first step, as the references the papers name (MultiVAE's PolyMNIST configurations: warmup=0)
    threads: int = 0  # torch threads; 0 keeps torch's default
    compile_pool: bool = False  # pool through torch.compile (poolvae.aggregators.compiled); same numbers, faster
    device: str = "auto"  # auto ($POOLVAE_DEVICE if set, else cuda when present, else cpu) | cpu | cuda | cuda:N
    amp: str = "off"  # mixed precision of the networks: off (float32, as the papers) | bf16 | fp16 (gradient scaler);
    # the pooling, sampling, KL and likelihoods stay float32 (build_model)
    compile: bool = False  # torch.compile the whole model for the training step (same computation, fused kernels)
    workers: int = -1  # DataLoader worker processes for data sets read from disk (CelebA, CUB); -1: 0 on the CPU,
    # min(8, cores / 2) on an accelerator. In-memory data sets gather their batches on the device instead.


#: Fields that change how a run executes, not what it computes: a finished run made with other values is the same run.
EXECUTION_FIELDS = ("threads", "compile_pool", "device", "compile", "workers")

#: Fields added after runs were committed, with the value the code used before each existed. A stored config.json
#: without the field was made with that value (the fidelity changes of issue #16 made the reference the default).
LEGACY_VALUES = {"laplace_scale": "free", "mopoe_prior": "none", "subset_entropy_coef": 0.0, "amp": "off",
                 "tuples": 1, "kl_warmup": 0}


def irrelevant_fields(method: str) -> set[str]:
    """Config fields that do not change what ``method`` computes (its identity ignores them)."""
    spec = METHODS[method]
    out = set()
    if spec.objective != "iwae":
        out |= {"K", "dreg"}
    if spec.pool != "mocode":
        out.add("rho")
    if not spec.learn_subset_weights:
        out.add("subset_entropy_coef")
    if spec.latent_family != "laplace":
        out.add("laplace_scale")
    if spec.pool != "mopoe":
        out.add("mopoe_prior")
    return out


def stored_config(values: dict) -> TrainConfig:
    """A config read from a run's ``config.json`` (or a checkpoint): unknown keys dropped, fields added since it was
    written take their :data:`LEGACY_VALUES` (what made the run), not today's defaults."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return _typed({**{k: v for k, v in LEGACY_VALUES.items() if k not in values},
                   **{k: v for k, v in values.items() if k in known}})


def resumable(stored: TrainConfig, current: TrainConfig, epochs_done: int, extend: bool = False) -> bool:
    """Whether a checkpoint of ``stored`` after ``epochs_done`` epochs can go on as run ``current``: the same
    config, or, with ``extend``, one that differs in ``epochs`` only and has at least ``epochs_done`` of them
    (nothing in training depends on the total, so training longer continues the same trajectory)."""
    diff = config_differences(stored, current)
    return not diff or (extend and set(diff) == {"epochs"} and current.epochs >= epochs_done)


def config_differences(stored: TrainConfig, current: TrainConfig) -> dict[str, tuple]:
    """``{field: (stored value, current value)}`` for the fields that make two configs different runs (execution
    fields and fields irrelevant to the method aside)."""
    skip = set(EXECUTION_FIELDS) | irrelevant_fields(current.method)
    a, b = dataclasses.asdict(stored), dataclasses.asdict(current)
    return {k: (a[k], b[k]) for k in b if k not in skip and a[k] != b[k]}


# Settings per (dataset, scale) and per-method overrides, each citing its source.
SCALE_DEFAULTS: dict[tuple[str, str], dict] = {
    ("polymnist-mini", "ci"): dict(latent_dim=16, width=8, epochs=2, batch_size=64, train_limit=256, test_limit=64),
    # Calibrated by poolvae.convergence (issue #18, book chapter 11, results/diagnostics/convergence/tuples=4/
    # summary.json). 16,000 training tuples drawn from the same 4,000 digits (tuples=4): on the 4,000 tuples every
    # method's held-out objective peaked by epoch 70 and fell (overfitting) while coherence kept rising; with 4x the
    # tuples coherence at equal steps ends higher (HELVAE 0.799 vs 0.712 after 27,500 steps, MoPoE 0.849 vs 0.749 after
    # 25,000). Early stopping on the held-out objective would have kept HELVAE at 0.358 of its 0.713. The rule (every
    # method within 0.02 of its best conditional coherence in 75 epochs, the ranking unchanged at every later
    # evaluation, pairs within 0.01 tied) gives 65 epochs, 32,500 steps, once all six calibrated curves were complete
    # (MVAE, MMVAE, MoPoE, MMVAE+ and MWB-VAE plateaued at 50, 35, 60, 55, 60; HELVAE ran to 75: 0.809 at 65, 0.827 at
    # 75). cpu-scale numbers compare the methods at one budget; they are not the papers' values.
    ("polymnist-mini", "cpu"): dict(latent_dim=64, width=16, epochs=65, batch_size=32, lr=1e-3, tuples=4),
    # HEL appendix B.3: 500 epochs, lr 5e-4, latent 512, batch 256, ResNet networks (Daunhawer et al.)
    ("polymnist", "paper"): dict(arch="res28", latent_dim=512, width=32, epochs=500, batch_size=256, lr=5e-4),
    # The other data sets: ci is a few tiny steps; cpu trains on a seeded subset (train_limit rows, drawn by the
    # data set from its own seed, the same for every run seed) in a few minutes on two cores. The times below are
    # the fastest steps on one thread of a shared two-core machine, HELVAE and MMVAE+, synthetic batches.
    ("mnist-svhn-text", "ci"): dict(latent_dim=8, width=4, epochs=2, batch_size=32, train_limit=128, test_limit=32),
    # the paper's networks (width 32) and latent size; 1,878 steps of batch 64 at 75-155 ms: 2-5 minutes
    ("mnist-svhn-text", "cpu"): dict(latent_dim=20, width=32, epochs=6, batch_size=64, lr=1e-3, train_limit=20000,
                                     test_limit=2000),
    # WB App. B.2: 150 epochs, Adam lr 1e-3, batch 256, latent 20, networks of Sutter et al. (2021) (width 32);
    # the paper's beta is 5 (a run argument, not a default here)
    ("mnist-svhn-text", "paper"): dict(latent_dim=20, width=32, epochs=150, batch_size=256, lr=1e-3),
    # MNIST-SVHN-Text-mini (poolvae.mstmini, the offline stand-in): its ci build (2,500 training pairs) cut further
    ("mnist-svhn-text-mini", "ci"): dict(latent_dim=8, width=4, epochs=2, batch_size=32, train_limit=128,
                                         test_limit=32),
    # the real one's cpu settings on the whole stand-in (20,000 training pairs, 5,000 test pairs): the paper's
    # networks (width 32) and latent size, 1,878 steps; MVAE took 4.3 minutes of CPU time on one thread (12 minutes
    # of wall time on two cores shared with five other processes)
    ("mnist-svhn-text-mini", "cpu"): dict(latent_dim=20, width=32, epochs=6, batch_size=64, lr=1e-3),
    ("celeba", "ci"): dict(latent_dim=8, private_dim=4, width=4, epochs=2, batch_size=16, train_limit=64,
                           test_limit=16),
    # width 16 instead of the paper's 128 (43M image-network parameters at 128); 500 steps at 180-290 ms plus
    # decoding 16,000 JPEGs: 3-4 minutes
    ("celeba", "cpu"): dict(latent_dim=32, private_dim=32, width=16, epochs=4, batch_size=32, lr=1e-3,
                            train_limit=4000, test_limit=500),
    # HEL App. B.3: 200 epochs, lr 1e-4, batch 256, latent 32, residual networks of Sutter et al. (2020)
    # (DIM 128). WB App. B.3 trained 150 epochs at lr 1e-3 (same batch, latent, networks); one run serves both
    # papers' tables, so HEL's schedule is the default. Both add a 32-d modality-specific latent per modality
    # for every method (Sutter et al., 2020); see poolvae.models on how each objective treats it.
    ("celeba", "paper"): dict(latent_dim=32, private_dim=32, width=128, epochs=200, batch_size=256, lr=1e-4),
    ("cub", "ci"): dict(latent_dim=8, width=4, epochs=2, batch_size=16, train_limit=64, test_limit=16),
    # width 16 instead of the paper's 64; 282 steps at 570-710 ms: 3-4 minutes
    ("cub", "cpu"): dict(latent_dim=64, width=16, epochs=3, batch_size=32, lr=5e-4, train_limit=3000,
                         test_limit=500),
    # HEL App. B.3: lr 5e-4, latent 64, MMVAE+ networks (ResNet image, CNN text; width 64); MVAE, MoPoE, MWBVAE,
    # CoDEVAE and HELVAE 150 epochs at batch 128 (MMVAE, MMVAE+: METHOD_DEFAULTS)
    ("cub", "paper"): dict(latent_dim=64, width=64, epochs=150, batch_size=128, lr=5e-4),
}
METHOD_DEFAULTS: dict[tuple[str, str], dict] = {
    # HEL B.3: MMVAE and MMVAE+ 150 epochs; MMVAE latent 160; MMVAE+ shared and private latents 32 each
    ("polymnist", "mmvae"): dict(epochs=150, latent_dim=160),
    ("polymnist", "mmvaeplus"): dict(epochs=150, latent_dim=32, private_dim=32),
    # HEL B.3: MMVAE and MMVAE+ 50 epochs, K = 10 with DReG, batch 32; MMVAE+ shared 48 and private 16
    ("cub", "mmvae"): dict(epochs=50, K=10, dreg=True, batch_size=32),
    ("cub", "mmvaeplus"): dict(epochs=50, K=10, dreg=True, batch_size=32, latent_dim=48, private_dim=16),
}


#: Per-method settings of a data set at every scale: what the reference code trains. PolyMNIST's MMVAE and MMVAE+
#: use the plain stratified ELBO with K = 1 (the MMVAE+ authors' PolyMNIST script: ``--obj elbo --K 1``), not DReG;
#: HEL App. B.3 gives K = 10 with DReG for CUB only (METHOD_DEFAULTS).
METHOD_ALL_SCALES: dict[tuple[str, str], dict] = {
    ("polymnist", "mmvae"): dict(K=1, dreg=False),
    ("polymnist", "mmvaeplus"): dict(K=1, dreg=False),
}


#: Settings of one method at one scale of a data set, applied after every other default: a budget of its own where
#: the scale's cannot be afforded. Each has its reason in :data:`METHOD_AT_SCALE_REASONS`; the tables print it.
METHOD_AT_SCALE: dict[tuple[str, str, str], dict] = {
    # 15 epochs of the 16,000 tuples: 7,500 steps, as the cpu scale had before the calibration (issue #18)
    ("polymnist", "codevae", "cpu"): dict(epochs=15),
}
METHOD_AT_SCALE_REASONS: dict[tuple[str, str, str], str] = {
    ("polymnist", "codevae", "cpu"): (
        "CoDEVAE decodes every subset of the modalities, as its reference code does (31 latent draws through five "
        "decoders): a step costs 16x HELVAE's here (0.69 s on one core, results/bench/train-cpu.json), so the "
        "calibrated budget would take 4 to 6 hours a run, 8 runs at cpu. It trains 7,500 steps (15 epochs of 16,000 "
        "tuples) instead, the budget the cpu scale had before the calibration; its cells compare it at a smaller "
        "budget than the other methods."),
}


def make_config(dataset: str = "polymnist-mini", method: str = "helvae", scale: str = "cpu",
                overrides: dict | None = None, **fields) -> TrainConfig:
    """The config of a run: scale defaults, then method defaults, then explicit fields and overrides.

    Unknown keys and values of the wrong type raise a ValueError that lists the valid keys.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    if dataset not in ds.DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; valid: {', '.join(ds.DATASETS)}")
    base = ds.base_name(dataset)
    values: dict = {} if base == "polymnist" else {"arch": DATASET_ARCH[dataset]}
    values.update(SCALE_DEFAULTS.get((dataset, scale), SCALE_DEFAULTS.get((base, scale), {})))
    values.update(METHOD_ALL_SCALES.get((base, method), {}))
    if scale == "paper":
        values.update(METHOD_DEFAULTS.get((base, method), {}))
    values.update(METHOD_AT_SCALE.get((base, method, scale), {}))
    if METHODS[method].private and not values.get("private_dim"):  # MMVAE+ needs private latents at every scale
        values["private_dim"] = max(values.get("latent_dim", 64) // 2, 2)
        values["latent_dim"] = max(values.get("latent_dim", 64) // 2, 2)
    values.update(fields)
    values.update(overrides or {})
    return _typed(dict(values, dataset=dataset, method=method, scale=scale))


def _typed(values: dict) -> TrainConfig:
    """Build a TrainConfig, converting strings to each field's type; unknown keys are errors."""
    cfg = typed(TrainConfig, values)
    valid = architectures_for(cfg.dataset)
    if cfg.arch not in valid:
        raise ValueError(f"unknown arch {cfg.arch!r} for {cfg.dataset}; valid: {', '.join(valid)}")
    if cfg.tuples != 1 and not _reads_polymnist_mini(cfg):
        raise ValueError(f"tuples={cfg.tuples} applies to PolyMNIST-mini only (dataset polymnist-mini, or polymnist "
                         f"below the paper scale); {cfg.dataset} at scale {cfg.scale} takes tuples=1")
    return cfg


def _reads_polymnist_mini(cfg: TrainConfig) -> bool:
    """Whether the run's data set is PolyMNIST-mini (``polymnist`` is swapped for it below the paper scale)."""
    return cfg.dataset == "polymnist-mini" or (cfg.dataset == "polymnist" and cfg.scale != "paper")


def run_path(cfg: TrainConfig) -> Path:
    """Relative path of a run: ``<scale>/<dataset>/<method>/beta=<b>/seed=<s>``."""
    return Path(cfg.scale, cfg.dataset, cfg.method, f"beta={cfg.beta:g}", f"seed={cfg.seed}")


@dataclass(frozen=True)
class RunKey:
    """What a run path (:func:`run_path`) names: scale, data set, method, beta and seed."""

    scale: str
    dataset: str
    method: str
    beta: float
    seed: int


def parse_run_path(path: str | Path) -> RunKey:
    """The :class:`RunKey` of a run path ``<scale>/<dataset>/<method>/beta=<b>/seed=<s>`` (the inverse of
    :func:`run_path`); anything else raises a ValueError that shows the layout."""
    parts = Path(path).parts
    if len(parts) != 5 or not parts[3].startswith("beta=") or not parts[4].startswith("seed="):
        raise ValueError(f"{str(path)!r} is not a run path <scale>/<dataset>/<method>/beta=<b>/seed=<s>")
    return RunKey(parts[0], parts[1], parts[2], float(parts[3][5:]), int(parts[4][5:]))


def checkpoint_file(cfg: TrainConfig, checkpoint_dir: str | Path = CHECKPOINT_DIR) -> Path:
    """Where the run ``cfg`` keeps its checkpoint: ``<checkpoint_dir>/<run path>/last.pt``."""
    return Path(checkpoint_dir) / run_path(cfg) / "last.pt"


def checkpoint_header(path: str | Path) -> dict:
    """The bookkeeping of the checkpoint at ``path`` (its ``epoch``, ``step`` and ``config``), without reading its
    tensors: the file is memory-mapped and only the small entries are touched, so asking a finished run's
    checkpoint how far it got costs milliseconds, not a read of every weight and optimiser moment."""
    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return {k: state.get(k) for k in ("epoch", "step", "config")}


#: The environment variable that ``device="auto"`` follows when it is set (the Makefile's ``DEVICE=``).
DEVICE_ENV = "POOLVAE_DEVICE"
_DEVICE_NAME = re.compile(r"cpu|cuda(:\d+)?")


def resolve_device(name: str = "auto") -> torch.device:
    """The device a config's ``device`` names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` is ``$POOLVAE_DEVICE`` when that is set (and not itself ``auto``), else the accelerator when torch sees
    one, else the CPU. ``cuda`` is the current CUDA device, with its index. An unknown name, or CUDA asked for where
    torch sees none, is a ValueError that says what to pass instead.
    """
    where = "device"
    if name == "auto" and os.environ.get(DEVICE_ENV, "auto") not in ("", "auto"):
        name, where = os.environ[DEVICE_ENV], f"${DEVICE_ENV}"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not _DEVICE_NAME.fullmatch(name):
        raise ValueError(f"unknown {where} {name!r}; valid: auto, cpu, cuda, cuda:N")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"{where} {name!r}: torch {torch.__version__} sees no CUDA device here; use auto or cpu")
    device = torch.device(name if ":" in name else f"cuda:{torch.cuda.current_device()}")
    if device.index >= torch.cuda.device_count():
        raise ValueError(f"{where} {name!r}: torch sees {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def device_record(device: torch.device | str) -> dict:
    """What ``environment.json`` (and the benchmarks) record of a device: its name, the accelerator's model, the CUDA
    and driver versions where there is one, and the torch version."""
    device = torch.device(device)
    out = {"device": str(device), "torch": torch.__version__, "processor": _processor()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(accelerator=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda, driver=_driver_version(),
                   cudnn=torch.backends.cudnn.version())
    else:
        out["accelerator"] = None
    return out


def _processor() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _driver_version() -> str:
    """The NVIDIA driver's version from nvidia-smi, or 'unknown'."""
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, check=True, timeout=20).stdout.split("\n")[0].strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


#: ``TrainConfig.amp``: the dtype the networks compute in under autocast (None: float32 throughout).
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast_forward(self, *args, **kwargs):
    """A network's forward under autocast to ``self._amp_dtype``, its outputs handed back in float32."""
    device_type = next(a for a in args if isinstance(a, torch.Tensor)).device.type
    with torch.autocast(device_type, dtype=self._amp_dtype):
        out = type(self).forward(self, *args, **kwargs)
    return _float32(out)


def _float32(out):
    """Half-precision tensors (in tuples and lists too) as float32; everything else as it is."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.dtype in (torch.float16, torch.bfloat16) else out
    if isinstance(out, (tuple, list)):
        return type(out)(_float32(o) for o in out)
    return out


def build_model(cfg: TrainConfig, spec) -> MultimodalVAE:
    """The model of a run, initialised from ``cfg.seed`` on the CPU (so it starts the same on every device); each
    modality gets its data set's networks.

    With ``cfg.amp`` (bf16, fp16) each encoder and decoder runs under ``torch.autocast`` and hands float32 outputs
    back, so that the pooling, the sampling, the KL terms and the likelihoods compute in float32 as without it
    (DESIGN.md: pooling in float32 or wider); the parameters stay float32 and keep their names.
    """
    if cfg.amp not in AMP_DTYPES:
        raise ValueError(f"unknown amp {cfg.amp!r}; valid: {', '.join(AMP_DTYPES)}")
    torch.manual_seed(cfg.seed)
    weights = ds.likelihood_weights(spec)
    nets = [networks_for(m, cfg.dataset, cfg.latent_dim, cfg.private_dim, cfg.width, cfg.arch)
            for m in spec.modalities]
    mods = [Modality(m.name, m.likelihood, weights[m.name]) for m in spec.modalities]
    model = MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], mods, cfg.method, cfg.latent_dim,
                          cfg.private_dim, cfg.beta, cfg.K, cfg.dreg, cfg.rho, compile_pool=cfg.compile_pool,
                          laplace_scale=cfg.laplace_scale, mopoe_prior=cfg.mopoe_prior,
                          subset_entropy_coef=cfg.subset_entropy_coef)
    if AMP_DTYPES[cfg.amp] is not None:
        for net in (*model.encoders, *model.decoders):
            net._amp_dtype = AMP_DTYPES[cfg.amp]
            net.forward = types.MethodType(_autocast_forward, net)  # bound to net: a deepcopy rebinds to the copy
    return model


def load_data(cfg: TrainConfig, split: str):
    """The data set split of a run, cut to ``train_limit`` / ``test_limit`` rows when set.

    PolyMNIST(-mini) keeps the first rows. The other data sets keep a seeded random subset drawn by the data set
    (its ``limit`` option, seed 0 whatever the run's seed): their files are sorted by class or identity, so the
    first rows would hold a few classes only.
    """
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    if limit and not cfg.dataset.startswith("polymnist"):
        return ds.get_dataset(cfg.dataset, split, scale=cfg.scale, limit=limit)
    options = {"tuples": cfg.tuples} if cfg.tuples != 1 else {}
    data = ds.get_dataset(cfg.dataset, split, scale=cfg.scale, **options)
    if limit and limit < len(data):
        data = torch.utils.data.Subset(data, range(limit))
    return data


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The row order of one epoch, (n,) int64 on the CPU: ``torch.randperm`` on a CPU generator seeded with
    ``seed * 100_003 + epoch`` (``arange`` unshuffled). A function of (seed, epoch) only, the same on every device,
    so a resumed run, or one moved to another device, sees the batches of an uninterrupted one."""
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def row_batches(data, batch_size: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True):
    """The per-row input path: yield (step, modalities, labels) on the CPU, each item read with ``data[i]`` and
    stacked. :func:`batches` yields bitwise the same tensors; this is its reference (and its test's)."""
    order = epoch_order(len(data), seed, epoch, shuffle)
    for step in range(start, math.ceil(len(data) / batch_size)):
        mods, labels = ds.collate([data[int(i)] for i in order[step * batch_size:(step + 1) * batch_size]])
        yield step, mods, labels


def _in_memory(data) -> tuple[object, torch.Tensor | None] | None:
    """``(data set, positions)`` when ``data`` is an in-memory data set or a Subset of one (positions: the Subset's
    rows of the data set, else None); None for a data set read row by row."""
    if isinstance(data, torch.utils.data.Subset):
        inner = _in_memory(data.dataset)
        if inner is None:
            return None
        base, index = inner
        rows = torch.as_tensor(data.indices, dtype=torch.int64)
        return base, rows if index is None else index[rows]
    return (data, None) if getattr(data, "in_memory", False) else None


def batches(data, batch_size: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True,
            device: torch.device | str | None = None, workers: int = 0):
    """Yield (step, modalities, labels) for one epoch from step ``start``, on ``device`` (default: the CPU).

    The order is :func:`epoch_order`, a function of (seed, epoch) only. In-memory data sets (PolyMNIST, its mini,
    MNIST-SVHN-Text; :attr:`poolvae.datasets.MultimodalDataset.in_memory`) gather each batch with one indexing of
    their stored tensors on ``device`` and convert it there (:meth:`~poolvae.datasets.MultimodalDataset.batch`): the
    epoch's order moves to the device once, and nothing per step is made on the host. The others (CelebA, CUB, read
    from disk) go through a ``torch.utils.data.DataLoader`` with ``workers`` processes, pinned memory when
    ``device`` is an accelerator and a generator seeded from (seed, epoch), so that neither path draws from torch's
    global generator. Either way the batches are bitwise those of :func:`row_batches`, the per-row path.
    """
    n, order = len(data), epoch_order(len(data), seed, epoch, shuffle)
    n_steps = math.ceil(n / batch_size)
    inner = _in_memory(data)
    if inner is not None:
        base, index = inner
        positions = (order if index is None else index[order]).to(device or "cpu")
        for step in range(start, n_steps):
            mods, labels = base.batch(positions[step * batch_size:(step + 1) * batch_size], device)
            yield step, mods, labels
        return
    device = torch.device(device or "cpu")
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, sampler=order[start * batch_size:].tolist(), num_workers=workers,
        collate_fn=ds.collate, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    for step, (mods, labels) in enumerate(loader, start):
        yield step, [x.to(device, non_blocking=True) for x in mods], labels.to(device, non_blocking=True)


class StaleRun(ValueError):
    """A finished run folder holds a run of another config (made before a default changed, say)."""

    def __init__(self, run_dir: Path, differences: dict[str, tuple]):
        self.run_dir, self.differences = Path(run_dir), differences
        listed = ", ".join(f"{k}: {old!r} there, {new!r} here" for k, (old, new) in differences.items())
        super().__init__(f"{run_dir} holds a finished run of another config ({listed}); delete that folder (and its "
                         f"checkpoint) to train this config, or pass the old values with --set")


class NonFiniteLoss(RuntimeError):
    """Raised when a training loss is NaN or infinite; the last good checkpoint is kept."""


class _Interrupt:
    """Turns SIGINT/SIGTERM into a flag the training loop checks between batches."""

    def __init__(self):
        self.flag = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not in the main thread: no handler, no flag
                pass
        return self

    def _handler(self, signum, frame):
        self.flag = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _git_revision() -> str:
    """Current git revision of the repository, or 'unknown' outside a checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


#: On an accelerator the training loss is checked for NaN/inf every this many steps (and before every write).
CHECK_EVERY = 50


def _device_rng_state(device: torch.device) -> torch.Tensor | None:
    """The generator state of a CUDA device (its sampling noise), None on the CPU (``rng`` holds that)."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _restore_rng(state: dict, device: torch.device, fallback_seed: int) -> None:
    """Restore a checkpoint's generators: the CPU's always, the device's where the checkpoint has a CUDA state.

    A run written on the CPU and resumed on a CUDA device (or the reverse) has no state for the new device's
    generator: that one is seeded from ``fallback_seed`` (a function of seed, epoch and step), so the resumed run is
    reproducible, though not bitwise the uninterrupted run of the other device (devices draw different noise).
    """
    torch.set_rng_state(state["rng"].cpu())
    if device.type == "cuda":
        if state.get("rng_device") is not None:
            torch.cuda.set_rng_state(state["rng_device"].cpu(), device)
        else:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(fallback_seed)


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


@torch.no_grad()
def evaluate_loss(model: MultimodalVAE, data, batch_size: int, workers: int = 0) -> dict[str, float]:
    """Mean test objective and its parts (no gradient), over the whole split, on the model's device."""
    model.eval()
    sums, n = {}, 0
    torch.manual_seed(0)
    device = next(model.parameters()).device
    for _, mods, _ in batches(data, batch_size, 0, 0, shuffle=False, device=device, workers=workers):
        out = model(mods)
        b = mods[0].shape[0]
        for k in ("objective", "rec", "kl"):
            sums[k] = sums.get(k, 0.0) + float(out[k]) * b
        n += b
    model.train()
    return {f"test_{k}": v / n for k, v in sums.items()}


def check_same_run(cfg: TrainConfig, run_dir: Path) -> None:
    """Refuse to reuse a finished run folder whose ``config.json`` differs from ``cfg`` (execution fields aside).

    A folder is named by data set, method, beta and seed only; a finished run made with other settings (say,
    fewer epochs before a default changed) must not pass for this one.
    """
    stored_file = Path(run_dir) / "config.json"
    if not stored_file.exists():
        return
    diff = config_differences(stored_config(read_json(stored_file)), cfg)
    if diff:
        raise StaleRun(run_dir, diff)


def kl_weight(beta: float, warmup_epochs: int, steps_per_epoch: int, epoch: int, step: int) -> float:
    """The KL weight at optimiser step ``step`` (from 0) of epoch ``epoch`` (from 0): beta times the share of the
    warm-up done after this step, ``min(1, (epoch * steps_per_epoch + step + 1) / (warmup_epochs *
    steps_per_epoch))``, so that the first step has a small positive weight and the last step of the warm-up has
    beta; beta throughout without a warm-up. A function of the step alone, so a resumed run continues the same
    schedule."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, (epoch * steps_per_epoch + step + 1) / (warmup_epochs * steps_per_epoch))


def train(cfg: TrainConfig, results_dir: Path = RUNS_DIR, checkpoint_dir: Path = CHECKPOINT_DIR,
          progress: bool = True, stop_after_steps: int | None = None, until_epoch: int | None = None,
          extend: bool = False) -> Path:
    """Train (or resume, or skip) the run ``cfg``; return its run folder.

    ``stop_after_steps`` simulates an interruption after that many optimiser steps of this call
    (used by the resume test): a checkpoint is written and :class:`KeyboardInterrupt` raised.
    ``until_epoch`` returns once that many epochs are done (checkpoint written, run not finished), so a
    caller can evaluate the run part-way (:mod:`poolvae.convergence`) and call again to go on.
    Every epoch's entry in ``metrics.json`` also holds :meth:`MultimodalVAE.diagnostics` on the first test batch
    (HELVAE's ``pool/*`` numbers, CoDEVAE's subset-weight entropy). ``extend`` lets a run (finished or not) whose
    config differs in ``epochs`` only go on from its checkpoint to ``cfg.epochs`` (:func:`resumable`); without it such
    a run is another run and an error says so.
    """
    check_ranges(cfg)
    rel = run_path(cfg)
    run_dir, ckpt = Path(results_dir) / rel, checkpoint_file(cfg, checkpoint_dir)
    metrics_file = run_dir / "metrics.json"
    metrics = read_json(metrics_file) if metrics_file.exists() else {}
    if metrics.get("finished"):
        done = len(metrics["epochs"])
        if not (extend and ckpt.exists() and done < cfg.epochs
                and resumable(stored_config(read_json(run_dir / "config.json")), cfg, done, extend)):
            check_same_run(cfg, run_dir)
            print(f"skip {rel}: finished")
            return run_dir
        print(f"extend {rel} from {done} to {cfg.epochs} epochs")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_data, test_data = load_data(cfg, "train"), load_data(cfg, "test")
    if len(train_data) % cfg.batch_size == 1 and cfg.arch == "sutter-celeba":
        # Sutter et al.'s CelebA networks batch-normalise 1x1 features: a batch of one has no statistics to train on
        raise ValueError(f"{cfg.dataset}: {len(train_data)} training rows leave a last batch of one row at batch "
                         f"size {cfg.batch_size}, which batch norm cannot train on; change batch_size or train_limit")
    spec = (test_data.dataset if isinstance(test_data, torch.utils.data.Subset) else test_data).spec
    device = resolve_device(cfg.device)
    workers = cfg.workers if cfg.workers >= 0 else (min(8, (os.cpu_count() or 2) // 2) if device.type == "cuda" else 0)
    model = build_model(cfg, spec).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None  # fp16 gradients underflow unscaled
    # static shapes (dynamic=False): the last, shorter batch recompiles once; dynamic shapes fail on randn
    step_model = torch.compile(model, dynamic=False) if cfg.compile else model
    config = dataclasses.asdict(cfg)
    epoch, step, history = 0, 0, []
    if ckpt.exists():
        # onto the CPU first: the weights then copy into the model on its device and the optimiser moves its state
        # there (Adam's step counts stay on the host), whichever device wrote the checkpoint
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if not resumable(stored_config(state["config"]), cfg, state["epoch"], extend):
            raise ValueError(f"checkpoint {ckpt} belongs to another config; delete it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        epoch, step, history = state["epoch"], state["step"], state["history"]
        _restore_rng(state, device, cfg.seed * 100_003 + epoch * 1_009 + step)
        print(f"resume {rel} after epoch {epoch} at step {step}" + (f" on {device} (written on {state['device']})"
                                                              if state.get("device", "cpu") != str(device) else ""))
    else:
        torch.manual_seed(cfg.seed + 1)  # the CPU's generator and every CUDA device's
    write_json(run_dir / "config.json", config)
    write_json(run_dir / "environment.json", provenance(seed=cfg.seed, scale=cfg.scale, git_revision=_git_revision(),
                                                          host=socket.gethostname(), threads=torch.get_num_threads(),
                                                          **device_record(device), amp=cfg.amp, compile=cfg.compile,
                                                          workers=workers))
    n_steps = math.ceil(len(train_data) / cfg.batch_size)
    done_steps = 0
    _, probe, _ = next(batches(test_data, cfg.batch_size, 0, 0, shuffle=False, device=device))  # for diagnostics
    # The loss is checked for NaN/inf before every step on the CPU (as a sync costs nothing there); on an
    # accelerator every CHECK_EVERY steps and before anything is written, so the host never waits on the device
    # inside the loop. Either way a non-finite loss stops the run before a checkpoint can hold its weights.
    check_every = 1 if device.type == "cpu" else CHECK_EVERY
    parts = ("objective", "rec", "kl")

    def checkpoint(e, s, hist):
        _save_checkpoint(ckpt, {"config": config, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                "rng": torch.get_rng_state(), "epoch": e, "step": s, "history": hist,
                                "device": str(device), "rng_device": _device_rng_state(device),
                                "scaler": None if scaler is None else scaler.state_dict()})

    def check(pending, bar):
        """Raise NonFiniteLoss for the first non-finite loss of ``pending`` [(step, loss)]; show the last one."""
        if not pending:
            return
        losses = torch.stack([loss for _, loss in pending])
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            step, loss = pending[int(bad[0, 0])]
            raise NonFiniteLoss(non_finite_message(cfg, loss.item(), epoch, step, ckpt))
        bar.set_postfix(loss=f"{float(losses[-1]):.1f}")
        pending.clear()

    model.train()
    # the pools' per-call input checks (poolvae.aggregators.checks) wait on the device for their answer; on an
    # accelerator they are off in the loop, and a non-finite expert shows as a non-finite loss (NonFiniteLoss)
    quiet = agg.checks(False) if device.type != "cpu" else contextlib.nullcontext()
    with _Interrupt() as interrupt, quiet:
        while epoch < min(cfg.epochs, until_epoch or cfg.epochs):
            sums = history[-1]["_partial"] if history and "_partial" in history[-1] else {}
            if sums:
                history = history[:-1]
            # the epoch's sums on the device, in float64: the same additions as Python floats, without a sync a step
            acc = torch.tensor([sums.get(k, 0.0) for k in parts], dtype=torch.float64, device=device)
            count, pending = sums.get("n", 0), []
            t0 = time.perf_counter()
            bar = tqdm(batches(train_data, cfg.batch_size, cfg.seed, epoch, start=step, device=device,
                               workers=workers), total=n_steps, initial=step,
                       desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
            for step, mods, _ in bar:
                if cfg.kl_warmup:
                    model.beta = kl_weight(cfg.beta, cfg.kl_warmup, n_steps, epoch, step)
                out = step_model(mods)
                loss = out["loss"]
                pending.append((step, loss.detach()))
                if len(pending) >= check_every:
                    check(pending, bar)
                opt.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    opt.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                acc += torch.stack([out[k].detach() for k in parts]).double()
                count += 1
                done_steps += 1
                if interrupt.flag or (stop_after_steps is not None and done_steps >= stop_after_steps):
                    check(pending, bar)
                    sums = {**dict(zip(parts, acc.tolist(), strict=True)), "n": count}
                    checkpoint(epoch, step + 1, history + [{"_partial": sums}])
                    raise KeyboardInterrupt(f"interrupted {rel} at epoch {epoch + 1}/{cfg.epochs}, step {step + 1}/"
                                            f"{n_steps}; run the same command again to resume")
            check(pending, bar)
            sums = {**dict(zip(parts, acc.tolist(), strict=True)), "n": count}
            entry = {"epoch": epoch + 1, **{f"train_{k}": sums[k] / sums["n"] for k in ("objective", "rec", "kl")},
                     "seconds": time.perf_counter() - t0}
            entry.update(evaluate_loss(model, test_data, cfg.batch_size, workers))
            entry.update(model.diagnostics(probe))
            history.append(entry)
            epoch, step = epoch + 1, 0
            checkpoint(epoch, 0, history)
            write_json(metrics_file, {"finished": False, "epochs": history})
            if progress:
                print(f"{rel} epoch {epoch}: train objective {entry['train_objective']:.2f}, "
                      f"test objective {entry['test_objective']:.2f}")
    if epoch < cfg.epochs:  # stopped at until_epoch: the run goes on at the next call
        return run_dir
    write_json(metrics_file, {"finished": True, "epochs": history, "final": history[-1] if history else {}})
    return run_dir


def non_finite_message(cfg: TrainConfig, loss: float, epoch: int, step: int, ckpt: Path) -> str:
    """The NonFiniteLoss text: where (``epoch`` counted from 0 as in the loop, printed from 1), what is actually kept
    (the checkpoint on disk and the epoch it ends, or that there is none yet), and the likely causes."""
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        done, at = state.get("epoch", 0), state.get("step", 0)
        where = f"end of epoch {done}" if not at else f"epoch {done + 1}, step {at}, saved when it was interrupted"
        kept = f"the last good checkpoint {ckpt} ({where}) is kept"
    else:
        kept = (f"no checkpoint yet (the first is written at the end of epoch 1), so nothing is kept; "
                f"{ckpt} does not exist")
    return (f"{cfg.method}: non-finite loss ({loss}) at epoch {epoch + 1}/{cfg.epochs}, step {step + 1}; {kept}. "
            f"Likely causes: the learning rate (lr={cfg.lr:g}; lower it with --set lr=...), beta ({cfg.beta:g}, the "
            f"KL weight), or the data (check it with `python -m poolvae.datasets "
            f"--list`, and rebuild a mini set with `make data-mini`).")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["lr=1e-3", "epochs=5"]`` -> dict; a pair without '=' is an error."""
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"override {p!r} is not of the form key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def beta_argument(text: str) -> float:
    """``--beta``: a finite number above 0 (the KL weight), else argparse's one-line error naming it."""
    try:
        beta = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"beta must be a number; got {text!r}") from None
    if not math.isfinite(beta) or beta <= 0:
        raise argparse.ArgumentTypeError(f"beta must be finite and above 0 (the weight of the KL term); got {text}")
    return beta


def in_worker(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a process-pool worker, where an interrupt ends the worker process.

    :func:`train` turns Ctrl-C and SIGTERM into a KeyboardInterrupt once its checkpoint is saved; inside a
    ``ProcessPoolExecutor`` worker that exception would only fail the task, and the worker would take the next
    queued run, training on after its parent was stopped (two processes then wrote the same checkpoint). Here the
    worker exits (status 130) instead; the runs resume from their checkpoints when the command is run again.
    """
    import sys

    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def check_ranges(cfg: TrainConfig) -> None:
    """Raise a ValueError naming the first field of ``cfg`` out of its range (``--set`` can set any of them): beta and
    lr finite and above 0, sizes and counts at least 1, limits and the seed at least 0, a KL warm-up no longer than
    the run (and not under ``torch.compile``). :func:`train` checks it too, for callers that bypass the command line."""
    for name in ("beta", "lr"):
        value = getattr(cfg, name)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be finite and above 0; got {value}")
    for name, low in (("epochs", 1), ("batch_size", 1), ("latent_dim", 1), ("width", 1), ("K", 1), ("seed", 0),
                      ("private_dim", 0), ("train_limit", 0), ("test_limit", 0), ("threads", 0), ("tuples", 1),
                      ("kl_warmup", 0)):
        if getattr(cfg, name) < low:
            raise ValueError(f"{name} must be at least {low}; got {getattr(cfg, name)}")
    if cfg.kl_warmup > cfg.epochs:
        raise ValueError(f"kl_warmup ({cfg.kl_warmup} epochs) is longer than the run ({cfg.epochs} epochs): the KL "
                         "weight would never reach beta; set kl_warmup to at most epochs")
    if cfg.kl_warmup and cfg.compile:
        raise ValueError("kl_warmup changes the KL weight every step, which torch.compile would recompile for; "
                         "train with kl_warmup=0 or without --compile")


def count_argument(minimum: int = 0):
    """An argparse type for whole numbers of at least ``minimum`` (seeds, jobs, sample counts)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}; got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # what argparse names in its messages
    return parse


def _device_argument(name: str) -> str:
    """``--device``: a name :func:`resolve_device` accepts here (else argparse's one-line error)."""
    try:
        resolve_device(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name


def _execution_arguments(a: argparse.Namespace) -> dict:
    """The config fields ``--device``, ``--amp`` and ``--compile`` set (only those given; ``--set`` wins)."""
    given = {"device": a.device, "amp": a.amp, "compile": a.compile or None}
    return {k: v for k, v in given.items() if v is not None}


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m poolvae.train", description="Train one multimodal VAE run (resumable).")
    p.add_argument("--dataset", default="polymnist-mini", choices=ds.DATASETS, metavar="DATASET",
                   help=f"one of: {', '.join(ds.DATASETS)}")
    p.add_argument("--method", default="helvae", choices=list(METHODS), metavar="METHOD",
                   help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--beta", type=beta_argument, default=1.0, help="weight of the KL term: finite, above 0")
    p.add_argument("--seed", type=count_argument(0), default=0)
    p.add_argument("--scale", default="cpu", choices=SCALES)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR,
                   help="root of the run folders (default results/runs); a run made with other settings than its "
                        "scale's (say --set epochs=180) belongs in a folder of its own")
    p.add_argument("--checkpoint-dir", type=Path, default=CHECKPOINT_DIR,
                   help="root of the checkpoints (default checkpoints/); pass the same to poolvae.evaluate")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--device", type=_device_argument, default=None,
                   help="auto (default: $POOLVAE_DEVICE if set, else cuda if present, else cpu) | cpu | cuda | cuda:N")
    p.add_argument("--amp", choices=list(AMP_DTYPES), default=None,
                   help="mixed precision of the networks (default off, as the papers; part of the run's identity)")
    p.add_argument("--compile", action="store_true", help="torch.compile the whole model (same run, faster steps)")
    a = p.parse_args(argv)
    try:  # every argument is checked before anything loads or trains: a bad --set is argparse's error too
        cfg = make_config(a.dataset, a.method, a.scale, parse_overrides(a.set), beta=a.beta, seed=a.seed,
                          **_execution_arguments(a))
        check_ranges(cfg)
    except ValueError as e:
        p.error(str(e))
    try:
        train(cfg, a.runs_dir, a.checkpoint_dir, progress=not a.no_progress)
    except KeyboardInterrupt as e:
        print(e or "interrupted; run the same command again to resume")
        raise SystemExit(130) from None
    except NonFiniteLoss as e:
        print(f"error: {e}")
        raise SystemExit(1) from None
    except (FileNotFoundError, ValueError) as e:  # data missing or corrupt, a stale run folder: the message says what
        print(f"error: {e}")  # to do, in one line (poolvae.datasets, poolvae.polymnist, StaleRun)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
