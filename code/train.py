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
import dataclasses
import math
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in every notebook

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
    laplace_scale: str = "softmax"  # MMVAE/MMVAE+ Laplace scales: softmax(a) * D + 1e-6 and prior scale 1 (the
    # authors' code) | "free" (free log-variances, unit-variance prior); poolvae.models
    mopoe_prior: str = "full"  # MoPoE: N(0, I) in the full set's PoE only (Sutter et al.'s code) | "none" | "all"
    subset_entropy_coef: float = 1000.0  # CoDEVAE: + coef * entropy of the subset weights (the authors' code); 0: free
    threads: int = 0  # torch threads; 0 keeps torch's default
    compile_pool: bool = False  # pool through torch.compile (poolvae.aggregators.compiled); same numbers, faster


#: Fields that change how a run executes, not what it computes: a finished run made with other values is the same run.
EXECUTION_FIELDS = ("threads", "compile_pool")

#: Fields added after runs were committed, with the value the code used before each existed. A stored config.json
#: without the field was made with that value (the fidelity changes of issue #16 made the reference the default).
LEGACY_VALUES = {"laplace_scale": "free", "mopoe_prior": "none", "subset_entropy_coef": 0.0}


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


def config_differences(stored: TrainConfig, current: TrainConfig) -> dict[str, tuple]:
    """``{field: (stored value, current value)}`` for the fields that make two configs different runs (execution
    fields and fields irrelevant to the method aside)."""
    skip = set(EXECUTION_FIELDS) | irrelevant_fields(current.method)
    a, b = dataclasses.asdict(stored), dataclasses.asdict(current)
    return {k: (a[k], b[k]) for k in b if k not in skip and a[k] != b[k]}


# Settings per (dataset, scale) and per-method overrides, each citing its source.
SCALE_DEFAULTS: dict[tuple[str, str], dict] = {
    ("polymnist-mini", "ci"): dict(latent_dim=16, width=8, epochs=2, batch_size=64, train_limit=256, test_limit=64),
    # 7,500 Adam steps, 7 to 20 minutes a run on one core (CoDEVAE about 1.7 h). 60 epochs, not 20: HELVAE's
    # encoders must first agree before its moment-matched pool carries information (its variance holds the
    # experts' disagreement), so it starts late: the linear probe of its joint posterior read 0.21 at epoch 20, 0.42
    # at 30, 0.79 at 50 and 0.88 at 60, while WB-VAE's read 0.43 at epoch 10. cpu-scale numbers compare the methods
    # at one small budget; they are not the papers' values.
    ("polymnist-mini", "cpu"): dict(latent_dim=64, width=16, epochs=60, batch_size=32, lr=1e-3),
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
    return cfg


def run_path(cfg: TrainConfig) -> Path:
    """Relative path of a run: ``<scale>/<dataset>/<method>/beta=<b>/seed=<s>``."""
    return Path(cfg.scale, cfg.dataset, cfg.method, f"beta={cfg.beta:g}", f"seed={cfg.seed}")


def checkpoint_file(cfg: TrainConfig, checkpoint_dir: str | Path = CHECKPOINT_DIR) -> Path:
    """Where the run ``cfg`` keeps its checkpoint: ``<checkpoint_dir>/<run path>/last.pt``."""
    return Path(checkpoint_dir) / run_path(cfg) / "last.pt"


def build_model(cfg: TrainConfig, spec) -> MultimodalVAE:
    """The model of a run, initialised from ``cfg.seed``; each modality gets its data set's networks."""
    torch.manual_seed(cfg.seed)
    weights = ds.likelihood_weights(spec)
    nets = [networks_for(m, cfg.dataset, cfg.latent_dim, cfg.private_dim, cfg.width, cfg.arch)
            for m in spec.modalities]
    mods = [Modality(m.name, m.likelihood, weights[m.name]) for m in spec.modalities]
    return MultimodalVAE([n[0] for n in nets], [n[1] for n in nets], mods, cfg.method, cfg.latent_dim,
                         cfg.private_dim, cfg.beta, cfg.K, cfg.dreg, cfg.rho, compile_pool=cfg.compile_pool,
                         laplace_scale=cfg.laplace_scale, mopoe_prior=cfg.mopoe_prior,
                         subset_entropy_coef=cfg.subset_entropy_coef)


def load_data(cfg: TrainConfig, split: str):
    """The data set split of a run, cut to ``train_limit`` / ``test_limit`` rows when set.

    PolyMNIST(-mini) keeps the first rows. The other data sets keep a seeded random subset drawn by the data set
    (its ``limit`` option, seed 0 whatever the run's seed): their files are sorted by class or identity, so the
    first rows would hold a few classes only.
    """
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    if limit and not cfg.dataset.startswith("polymnist"):
        return ds.get_dataset(cfg.dataset, split, scale=cfg.scale, limit=limit)
    data = ds.get_dataset(cfg.dataset, split, scale=cfg.scale)
    if limit and limit < len(data):
        data = torch.utils.data.Subset(data, range(limit))
    return data


def batches(data, batch_size: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True):
    """Yield (step, modalities, labels) for one epoch; the order depends only on (seed, epoch)."""
    n = len(data)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)) if shuffle \
        else torch.arange(n)
    for step in range(start, math.ceil(n / batch_size)):
        items = [data[int(i)] for i in order[step * batch_size:(step + 1) * batch_size]]
        mods = [torch.stack([it[0][m] for it in items]) for m in range(len(items[0][0]))]
        yield step, mods, torch.stack([it[1] for it in items])


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


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


@torch.no_grad()
def evaluate_loss(model: MultimodalVAE, data, batch_size: int) -> dict[str, float]:
    """Mean test objective and its parts (no gradient), over the whole split."""
    model.eval()
    sums, n = {}, 0
    torch.manual_seed(0)
    for _, mods, _ in batches(data, batch_size, 0, 0, shuffle=False):
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


def train(cfg: TrainConfig, results_dir: Path = RUNS_DIR, checkpoint_dir: Path = CHECKPOINT_DIR,
          progress: bool = True, stop_after_steps: int | None = None, until_epoch: int | None = None) -> Path:
    """Train (or resume, or skip) the run ``cfg``; return its run folder.

    ``stop_after_steps`` simulates an interruption after that many optimiser steps of this call
    (used by the resume test): a checkpoint is written and :class:`KeyboardInterrupt` raised.
    ``until_epoch`` returns once that many epochs are done (checkpoint written, run not finished), so a
    caller can evaluate the run part-way (:mod:`poolvae.convergence`) and call again to go on.
    Every epoch's entry in ``metrics.json`` also holds :meth:`MultimodalVAE.diagnostics` on the first test batch
    (HELVAE's ``pool/*`` numbers, CoDEVAE's subset-weight entropy).
    """
    rel = run_path(cfg)
    run_dir, ckpt = Path(results_dir) / rel, checkpoint_file(cfg, checkpoint_dir)
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists() and read_json(metrics_file).get("finished"):
        check_same_run(cfg, run_dir)
        print(f"skip {rel}: finished")
        return run_dir
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_data, test_data = load_data(cfg, "train"), load_data(cfg, "test")
    if len(train_data) % cfg.batch_size == 1 and cfg.arch == "sutter-celeba":
        # Sutter et al.'s CelebA networks batch-normalise 1x1 features: a batch of one has no statistics to train on
        raise ValueError(f"{cfg.dataset}: {len(train_data)} training rows leave a last batch of one row at batch "
                         f"size {cfg.batch_size}, which batch norm cannot train on; change batch_size or train_limit")
    spec = (test_data.dataset if isinstance(test_data, torch.utils.data.Subset) else test_data).spec
    model = build_model(cfg, spec)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    config = dataclasses.asdict(cfg)
    epoch, step, history = 0, 0, []
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if config_differences(stored_config(state["config"]), cfg):
            raise ValueError(f"checkpoint {ckpt} belongs to another config; delete it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        epoch, step, history = state["epoch"], state["step"], state["history"]
        print(f"resume {rel} at epoch {epoch} step {step}")
    else:
        torch.manual_seed(cfg.seed + 1)
    write_json(run_dir / "config.json", config)
    write_json(run_dir / "environment.json", provenance(seed=cfg.seed, scale=cfg.scale, git_revision=_git_revision(),
                                                          host=socket.gethostname(), threads=torch.get_num_threads()))
    n_steps = math.ceil(len(train_data) / cfg.batch_size)
    done_steps = 0
    _, probe, _ = next(batches(test_data, cfg.batch_size, 0, 0, shuffle=False))  # fixed batch for diagnostics

    def checkpoint(e, s, hist):
        _save_checkpoint(ckpt, {"config": config, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                "rng": torch.get_rng_state(), "epoch": e, "step": s, "history": hist})

    model.train()
    with _Interrupt() as interrupt:
        while epoch < min(cfg.epochs, until_epoch or cfg.epochs):
            sums = history[-1]["_partial"] if history and "_partial" in history[-1] else {}
            if sums:
                history = history[:-1]
            t0 = time.perf_counter()
            bar = tqdm(batches(train_data, cfg.batch_size, cfg.seed, epoch, start=step), total=n_steps, initial=step,
                       desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
            for step, mods, _ in bar:
                out = model(mods)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(
                        f"{cfg.method}: non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {step}; the last "
                        f"good checkpoint {ckpt} is kept. Lower the learning rate (--set lr=...) or check the data.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for k in ("objective", "rec", "kl"):
                    sums[k] = sums.get(k, 0.0) + float(out[k])
                sums["n"] = sums.get("n", 0) + 1
                bar.set_postfix(loss=f"{loss.item():.1f}")
                done_steps += 1
                if interrupt.flag or (stop_after_steps is not None and done_steps >= stop_after_steps):
                    checkpoint(epoch, step + 1, history + [{"_partial": sums}])
                    raise KeyboardInterrupt(f"interrupted {rel} at epoch {epoch} step {step + 1}; "
                                            f"run the same command again to resume")
            entry = {"epoch": epoch + 1, **{f"train_{k}": sums[k] / sums["n"] for k in ("objective", "rec", "kl")},
                     "seconds": time.perf_counter() - t0}
            entry.update(evaluate_loss(model, test_data, cfg.batch_size))
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


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["lr=1e-3", "epochs=5"]`` -> dict; a pair without '=' is an error."""
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ValueError(f"override {p!r} is not of the form key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="Train one multimodal VAE run (resumable).")
    p.add_argument("--dataset", default="polymnist-mini", help=f"one of: {', '.join(ds.DATASETS)}")
    p.add_argument("--method", default="helvae", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", default="cpu", choices=SCALES)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config fields")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR,
                   help="root of the run folders (default results/runs); a run made with other settings than its "
                        "scale's (say --set epochs=180) belongs in a folder of its own")
    p.add_argument("--checkpoint-dir", type=Path, default=CHECKPOINT_DIR,
                   help="root of the checkpoints (default checkpoints/); pass the same to poolvae.evaluate")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = make_config(a.dataset, a.method, a.scale, parse_overrides(a.set), beta=a.beta, seed=a.seed)
    try:
        train(cfg, a.runs_dir, a.checkpoint_dir, progress=not a.no_progress)
    except KeyboardInterrupt as e:
        print(e)
        raise SystemExit(130) from None
    except NonFiniteLoss as e:
        print(f"error: {e}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
