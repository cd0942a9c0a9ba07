"""Training throughput of every method beside the floor no multimodal VAE avoids: ``results/bench/train-<device>.json``.

    python -m poolvae.bench_train [--device auto] [--scales cpu paper] [--steps 5] [--rounds 6] [--threads 1]
    make bench-train [DEVICE=cuda]         # one torch thread; on a CPU about half an hour, most of it the paper's

For every method of :data:`poolvae.models.METHODS`, at two settings:

* ``cpu``: the cpu scale's PolyMNIST-mini config of each method (conv28 networks, width 16, latent 64, batch 32);
* ``paper``: the papers' PolyMNIST config of each method (HEL App. B.3: ResNet networks ``res28``, width 32, latent
  512, batch 256; MMVAE latent 160, MMVAE+ 32 shared + 32 private), trained on PolyMNIST where ``data/PolyMNIST``
  holds it, else on PolyMNIST-mini, whose tuples have the same shapes (only throughput is measured here);

it times training steps on real batches drawn by :func:`poolvae.train.batches` (the input pipeline
:func:`poolvae.train.train` uses) on the chosen device. A step is what ``train`` does: forward, backward, Adam
(with the gradient scaler under fp16). Beside the methods it times the **floor** of each network configuration: the
same encoders and decoders, forward and backward, with the pooling replaced by passing one expert through. Every
modality is encoded, expert 0's sample is decoded into every modality, and the loss is the reconstruction minus the
KL of every expert to the prior (so every encoder gets its backward pass, as in every method); the rest is Adam. It
is the cost that no multimodal VAE with these networks avoids, and a method's ``ratio_to_floor`` is what its pooling
and objective add. Methods and floors are interleaved, round by round, in one run (each entry's first step and
``warmup`` rounds untimed), in a new seeded order each round, so that a change of the machine's load, or what
running after a given neighbour does to a step, falls on all of them alike; medians are reported. On a CPU the
paper setting times 1 step in each of 3 rounds (one of its steps takes half a minute to minutes there). The entries of
one network configuration share one set of networks and one Adam state (:class:`Shared`; the cost of a step does not
depend on the weights), and a method whose activations would not fit (``max_gib``) is skipped with the reason in its
row: CoDEVAE's 31 decodes per modality at the paper's settings on a CPU, about 26 GiB.

Schema (``"schema": "poolvae.bench_train/1"``); seconds are medians over ``rounds * steps`` timed steps::

    device        poolvae.train.device_record: device, accelerator, cuda, driver, torch, processor
    threads, seed, variants
    clock         thread_time (a CPU with one torch thread: the thread's CPU time, robust to other processes on a
                  shared machine) or perf_counter (wall time; the device synchronised around each interval)
    settings.<cpu|paper>
      description, dataset (the config's), data (what the batches came from), batch_size, arch, width, latent_dim,
      steps, rounds, warmup, max_gib
      pipeline    {batched_seconds_per_batch, per_row_seconds_per_batch, speedup}: the input path of train() against
                  the per-row path it replaced (poolvae.train.row_batches), batches fetched on their own
      floors.<key>  one per network configuration (key "<arch>-w<width>-D<latent>-P<private>-B<batch>"):
                  {step_seconds, data_seconds, seconds_per_step, samples_per_second, data_share, peak_memory_mib,
                   persistent_mib, saved_for_backward_mib, first_step_seconds, timed_steps, config}
      methods.<method>  the same fields, and
                  floor (its floor's key), ratio_to_floor (step_seconds / the floor's step_seconds),
                  decoder_passes_per_modality (1: decodes each modality once a step; MVAE 2, MMVAE(+) M, CoDEVAE 2^M-1)
      variants.<method>+<bf16|fp16|compile>  (with --variants) the same fields, ratio_to_floor against the float32
                  eager floor and speedup (the eager float32 step_seconds / this step_seconds)
    targets       issue #17's targets, each {value, target, met}: the input pipeline's share of a cpu-scale HELVAE
                  step (< 0.05), HELVAE's paper-setting ratio to the floor (<= 1.15), every single-decode method's
                  (<= 1.3)
    provenance

Field meanings: ``step_seconds`` is one step with its batch ready; ``data_seconds`` the wait for the batch from the
input pipeline; ``seconds_per_step`` their sum (what the training loop pays a step); ``samples_per_second`` is
``batch_size / seconds_per_step``; ``data_share`` is ``data_seconds / seconds_per_step``. Seconds are the clock's
(``clock``): on a CPU with one torch thread, CPU seconds of the benchmark's thread. On CUDA the device is
synchronised around each measured interval and ``peak_memory_mib`` is the allocator's peak during the step plus the
entry's parameters and Adam state (``persistent_mib``), which excludes the resident data set and the CUDA context.
The CPU has no per-step allocator peak: there ``peak_memory_mib`` is null and ``saved_for_backward_mib`` (the
activations autograd keeps for the backward pass, measured with saved-tensor hooks on one untimed step, on every
device) is the number to compare. Nothing here is asserted on time; ``tests/test_bench_train.py`` checks the
structure on tiny settings.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import aggregators as agg
from . import datasets as ds
from .artefacts import RESULTS_DIR, provenance, write_json
from .divergences import kl_standard_normal
from .models import METHODS, MultimodalVAE, latent_rsample
from .train import (
    AMP_DTYPES,
    TrainConfig,
    batches,
    build_model,
    device_record,
    make_config,
    resolve_device,
    row_batches,
)

SCHEMA = "poolvae.bench_train/1"
BENCH_DIR = RESULTS_DIR / "bench"
VARIANTS = ("bf16", "fp16", "compile")

#: The measured settings: the config each method gets (data set and scale of :func:`poolvae.train.make_config`,
#: with ``overrides``) and the data its batches come from (``data``: tried in order, the first present is used).
SETTINGS: dict[str, dict] = {
    "cpu": dict(dataset="polymnist-mini", scale="cpu", overrides={}, data=[("polymnist-mini", "cpu")],
                description="the cpu scale's PolyMNIST-mini config of each method"),
    "paper": dict(dataset="polymnist", scale="paper", overrides={}, data=[("polymnist", "paper"),
                                                                          ("polymnist-mini", "cpu")],
                  description="the papers' PolyMNIST config of each method (HEL App. B.3: res28, latent 512, "
                              "batch 256; MMVAE latent 160, MMVAE+ 32 + 32); PolyMNIST-mini's tuples (same shapes) "
                              "where PolyMNIST is not present"),
}

#: The targets of issue #17, as (setting, what, bound): a value is met when it is at most the bound.
PIPELINE_SHARE_TARGET = 0.05
HELVAE_FLOOR_TARGET = 1.15
SINGLE_DECODE_FLOOR_TARGET = 1.3


def decoder_passes_per_modality(method: str, M: int) -> int:
    """How many times a training step of ``method`` decodes each modality (K = 1): the ELBO and mixture objectives
    once, MVAE twice (the joint and the modality alone), MMVAE(+) M times (every component decodes every modality),
    CoDEVAE once per subset, 2^M - 1."""
    objective = METHODS[method].objective
    return {"elbo": 1, "mixture": 1, "mvae": 2, "iwae": M, "subsets": 2**M - 1}[objective]


def floor_loss(model: MultimodalVAE, xs: list[torch.Tensor]) -> torch.Tensor:
    """The floor's loss: every modality encoded, expert 0's sample decoded into every modality (the pooling replaced
    by passing one expert through), minus the reconstruction plus every expert's KL to N(0, I) (and the private
    latents' KLs), so that every encoder and decoder gets its forward and backward pass."""
    mu, logvar, pmu, plogvar = model.encode(xs)  # (M, B, D)
    z = latent_rsample(mu[0], logvar[0], "gaussian")  # (B, D)
    private = [latent_rsample(pmu[m], plogvar[m], "gaussian") for m in range(model.M)] if model.Dp else None
    mask = torch.ones(model.M, z.shape[0], dtype=torch.bool, device=z.device)
    rec = model.reconstruction(xs, model.decode(z, private), mask)  # (B,)
    kl = kl_standard_normal(mu, logvar).sum(0)
    if model.Dp:
        kl = kl + kl_standard_normal(pmu, plogvar).sum(0)
    return -(rec - kl).mean()


def floor_key(cfg: TrainConfig) -> str:
    """The network configuration a floor stands for: ``<arch>-w<width>-D<latent>-P<private>-B<batch>``."""
    return f"{cfg.arch}-w{cfg.width}-D{cfg.latent_dim}-P{cfg.private_dim}-B{cfg.batch_size}"


def clock_name(device: torch.device | str) -> str:
    """What the benchmark times with: the calling thread's CPU time on a CPU with one torch thread (there every op and
    the backward pass run on the calling thread, and CPU time leaves out the time other processes hold the core, as
    on a shared machine), else wall time (an accelerator runs asynchronously; several threads add up)."""
    return "thread_time" if torch.device(device).type == "cpu" and torch.get_num_threads() == 1 else "perf_counter"


def _clock(device: torch.device):
    """The clock function :func:`clock_name` names for ``device``."""
    return {"thread_time": time.thread_time, "perf_counter": time.perf_counter}[clock_name(device)]


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mib(n_bytes: float) -> float:
    return n_bytes / 2**20


def _tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            s = t.untyped_storage()
            seen[s.data_ptr()] = s.nbytes()
    return sum(seen.values())


def _cycle(data, batch_size: int, seed: int, device: torch.device):
    """Batches of ``data`` epoch after epoch, as :func:`poolvae.train.train` draws them."""
    epoch = 0
    while True:
        for _, mods, _ in batches(data, batch_size, seed, epoch, device=device):
            yield mods
        epoch += 1


class Shared:
    """The networks of one configuration (a floor's key) and their Adam state, shared by the entries that use them.

    A training step's cost does not depend on which weights it updates, and a copy of the networks and of Adam's
    moments per method would hold 0.7 GB per method at the paper's settings; sharing them keeps the benchmark's
    memory to one copy per configuration. Per-method parameters (HELVAE-learned's pooling logits, CoDEVAE's subset
    logits) get an Adam of their own.
    """

    def __init__(self, model: MultimodalVAE, lr: float):
        self.encoders, self.decoders = model.encoders, model.decoders
        self.opt = torch.optim.Adam([*self.encoders.parameters(), *self.decoders.parameters()], lr=lr)


@dataclass
class Entry:
    """One thing timed: a method's training step, a floor's, or a method under a variant (bf16, fp16, compile)."""

    name: str
    cfg: TrainConfig
    model: MultimodalVAE
    data: object  # the setting's data set
    device: torch.device
    shared: Shared | None = None  # networks and their Adam shared with other entries; None: the model's own
    floor: bool = False  # the floor's loss instead of the method's
    compile: bool = False
    step_times: list[float] = field(default_factory=list)
    data_times: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    first_step: float | None = None
    saved_bytes: int | None = None

    def __post_init__(self):
        if self.shared is not None:
            self.model.encoders, self.model.decoders = self.shared.encoders, self.shared.decoders
        self.model.to(self.device).train()
        nets = {id(p) for p in [*self.model.encoders.parameters(), *self.model.decoders.parameters()]}
        own = [p for p in self.model.parameters() if self.shared is None or id(p) not in nets]
        self.opts = [self.shared.opt] if self.shared is not None else []
        if own:
            self.opts.append(torch.optim.Adam(own, lr=self.cfg.lr))
        self.scaler = torch.amp.GradScaler(self.device.type) if self.cfg.amp == "fp16" else None
        self.forward = torch.compile(self.model, dynamic=False) if self.compile else self.model
        self.batches = _cycle(self.data, self.cfg.batch_size, self.cfg.seed, self.device)
        self.clock = _clock(self.device)

    def loss(self, mods) -> torch.Tensor:
        """The step's loss: the floor's or the method's."""
        return floor_loss(self.model, mods) if self.floor else self.forward(mods)["loss"]

    def _update(self, loss: torch.Tensor) -> None:
        """Backward and Adam (through the gradient scaler under fp16); the gradients are dropped after the step, so
        that no entry holds gradients while another one runs."""
        if self.scaler is None:
            loss.backward()
            for opt in self.opts:
                opt.step()
        else:
            self.scaler.scale(loss).backward()
            for opt in self.opts:
                self.scaler.step(opt)
            self.scaler.update()
        for opt in self.opts:
            opt.zero_grad(set_to_none=True)

    def step(self, record: bool) -> None:
        """Fetch a batch and take one optimiser step; keep the timings (and the CUDA peak) when ``record``."""
        cuda = self.device.type == "cuda"
        _sync(self.device)
        t0 = self.clock()
        mods = next(self.batches)
        _sync(self.device)
        t1 = self.clock()
        if cuda:
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        loss = self.loss(mods)
        self._update(loss)
        _sync(self.device)
        t2 = self.clock()
        if record:
            self.data_times.append(t1 - t0)
            self.step_times.append(t2 - t1)
            if cuda:
                self.peaks.append(torch.cuda.max_memory_allocated(self.device) - before)
        if not math.isfinite(float(loss.detach())):
            raise RuntimeError(f"bench-train: {self.name} gave a non-finite loss; the benchmark needs finite steps")

    def first(self) -> None:
        """The entry's first step, untimed (it warms the entry up; under ``compile`` it compiles): its seconds, and
        the bytes autograd keeps for the backward pass (saved-tensor hooks; parameters excluded)."""
        params = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        saved: list[torch.Tensor] = []

        def pack(t):
            if t.untyped_storage().data_ptr() not in params:
                saved.append(t)
            return t

        mods = next(self.batches)
        _sync(self.device)
        t0 = self.clock()
        if self.compile:  # a compiled graph keeps what it chose to keep: not comparable, not measured
            loss = self.loss(mods)
        else:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = self.loss(mods)
            self.saved_bytes = _tensor_bytes(saved)
        saved.clear()
        self._update(loss)
        _sync(self.device)
        self.first_step = self.clock() - t0

    def persistent_bytes(self) -> int:
        """Parameters and optimiser state (Adam's moments) this entry's step uses."""
        state = [t for opt in self.opts for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        return _tensor_bytes(list(self.model.parameters()) + state)

    def row(self) -> dict:
        """The entry's fields in the JSON (see the module docstring)."""
        step, data = statistics.median(self.step_times), statistics.median(self.data_times)
        persistent = self.persistent_bytes()
        cfg = self.cfg
        return {"step_seconds": step, "data_seconds": data, "seconds_per_step": step + data,
                "samples_per_second": cfg.batch_size / (step + data), "data_share": data / (step + data),
                "peak_memory_mib": _mib(persistent + max(self.peaks)) if self.peaks else None,
                "persistent_mib": _mib(persistent),
                "saved_for_backward_mib": None if self.saved_bytes is None else _mib(self.saved_bytes),
                "first_step_seconds": self.first_step, "timed_steps": len(self.step_times),
                "config": {**{k: getattr(cfg, k) for k in ("method", "arch", "width", "latent_dim", "private_dim",
                                                           "batch_size", "K", "dreg", "amp", "lr")},
                           **({"method": "floor"} if self.floor else {})}}


def _load_setting_data(setting: dict):
    """The first present data set of the setting's ``data`` list: (data set, its name)."""
    errors = []
    for name, scale in setting["data"]:
        try:
            return ds.get_dataset(name, "train", scale=scale), name
        except FileNotFoundError as err:
            errors.append(str(err))
    raise FileNotFoundError("bench-train: no data set for the setting: " + " | ".join(errors))


def pipeline_seconds(data, batch_size: int, device: torch.device, n: int = 5) -> dict:
    """Median seconds to fetch one batch through :func:`poolvae.train.batches` and through the per-row path."""
    out, clock = {}, _clock(device)
    for name, make in (("batched", lambda: batches(data, batch_size, 0, 0, device=device)),
                       ("per_row", lambda: row_batches(data, batch_size, 0, 0))):
        times, it = [], make()
        for _ in range(n + 1):
            _sync(device)
            t0 = clock()
            _, mods, _ = next(it)
            if name == "per_row":
                mods = [x.to(device) for x in mods]
            _sync(device)
            times.append(clock() - t0)
        out[f"{name}_seconds_per_batch"] = statistics.median(times[1:])  # the first includes the one-off copy
    out["speedup"] = out["per_row_seconds_per_batch"] / out["batched_seconds_per_batch"]
    return out


def memory_budget_gib(device: torch.device) -> float:
    """Default ``max_gib``: 70 % of the accelerator's free memory, or half of the host's available memory (the CPU
    is shared with other work)."""
    if device.type == "cuda":
        return 0.7 * torch.cuda.mem_get_info(device)[0] / 2**30
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return 0.5 * int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 8.0


def run_setting(name: str, setting: dict, methods, device: torch.device, steps: int, rounds: int, warmup: int,
                seed: int, variants=(), max_gib: float | None = None) -> dict:
    """Time every method, its floor and the variants at one setting; the setting's block of the JSON.

    A method whose activations would exceed ``max_gib`` (default :func:`memory_budget_gib`) is skipped, its row
    saying why: the estimate is its floor's saved activations times ``(1 + decoder passes per modality) / 2`` (the
    encoders' half once, the decoders' half once per pass), CoDEVAE's 31 decodes at the paper's settings on a CPU.
    """
    data, data_name = _load_setting_data(setting)
    max_gib = memory_budget_gib(device) if max_gib is None else max_gib
    cfgs = {m: make_config(setting["dataset"], m, setting["scale"], dict(setting["overrides"]), seed=seed,
                           device=str(device)) for m in methods}
    spec = data.spec
    M = len(spec.modalities)
    floors, shared, skipped = {}, {}, {}
    entries: dict[str, Entry] = {}
    for m, cfg in cfgs.items():
        floors[m] = f"floor:{floor_key(cfg)}"
        if floors[m] not in entries:
            base_model = build_model(cfg, spec)
            shared[floors[m]] = Shared(base_model.to(device), cfg.lr)
            entries[floors[m]] = Entry(floors[m], cfg, base_model, data, device, shared[floors[m]], floor=True)
            entries[floors[m]].first()
    for m, cfg in cfgs.items():
        passes = decoder_passes_per_modality(m, M)
        estimate = entries[floors[m]].saved_bytes * (1 + passes) / 2 / 2**30
        if estimate > max_gib:
            skipped[m] = (f"skipped: about {estimate:.1f} GiB of activations ({passes} decoder passes per modality) "
                          f"> max_gib {max_gib:.1f}")
            print(f"{name}: {m} {skipped[m]}", flush=True)
            continue
        entries[m] = Entry(m, cfg, build_model(cfg, spec), data, device, shared[floors[m]])
        entries[m].first()
    base = "helvae" if "helvae" in cfgs else next(iter(cfgs))
    for v in variants:
        cfg = make_config(setting["dataset"], base, setting["scale"], dict(setting["overrides"]), seed=seed,
                          device=str(device), **({"amp": v} if v in AMP_DTYPES else {"compile": True}))
        entries[f"{base}+{v}"] = Entry(f"{base}+{v}", cfg, build_model(cfg, spec), data, device,
                                       compile=v == "compile")
        entries[f"{base}+{v}"].first()
    pipeline = pipeline_seconds(data, cfgs[base].batch_size, device)
    order = list(entries.values())
    with agg.checks(device.type == "cpu"):  # as train() runs: the pools' input checks on a CPU, off on accelerators
        for rep in range(warmup + rounds):
            # a new seeded order each round: what running after another entry does to a step (the allocator's and
            # the caches' state, the machine's load) falls on every entry alike instead of on the same neighbours
            random.Random(seed * 1_000 + rep).shuffle(order)
            for e in order:
                for _ in range(steps):
                    e.step(record=rep >= warmup)
            if rep >= warmup:
                print(f"{name} round {rep - warmup + 1}/{rounds}: " + ", ".join(
                    f"{k} {statistics.median(e.step_times):.3f}s" for k, e in entries.items()), flush=True)
    rows = {k: e.row() for k, e in entries.items()}
    floor_rows = {k.removeprefix("floor:"): rows[k] for k in entries if k.startswith("floor:")}
    method_rows = {}
    for m in cfgs:
        passes = decoder_passes_per_modality(m, M)
        if m in skipped:
            method_rows[m] = {"skipped": skipped[m], "decoder_passes_per_modality": passes,
                              "floor": floors[m].removeprefix("floor:")}
            continue
        r = rows[m]
        r["floor"] = floors[m].removeprefix("floor:")
        r["ratio_to_floor"] = r["step_seconds"] / rows[floors[m]]["step_seconds"]
        r["decoder_passes_per_modality"] = passes
        method_rows[m] = r
    variant_rows = {}
    for v in variants:
        r = rows[f"{base}+{v}"]
        r["ratio_to_floor"] = r["step_seconds"] / rows[floors[base]]["step_seconds"]
        if base in rows:
            r["speedup"] = rows[base]["step_seconds"] / r["step_seconds"]
        variant_rows[f"{base}+{v}"] = r
    cfg = cfgs[base]
    out = {"description": setting["description"], "dataset": setting["dataset"], "data": data_name,
           "batch_size": cfg.batch_size, "arch": cfg.arch, "width": cfg.width, "latent_dim": cfg.latent_dim,
           "steps": steps, "rounds": rounds, "warmup": warmup, "max_gib": max_gib,
           "pipeline": pipeline, "floors": floor_rows, "methods": method_rows}
    if variant_rows:
        out["variants"] = variant_rows
    return out


def targets(settings: dict) -> dict:
    """Issue #17's targets, each ``{value, target, met}``, computed from the measured settings (absent: not run)."""
    out = {}
    cpu = settings.get("cpu", {}).get("methods", {})
    if "helvae" in cpu:
        v = cpu["helvae"]["data_share"]
        out["input_pipeline_share_of_cpu_helvae_step"] = {"value": v, "target": PIPELINE_SHARE_TARGET,
                                                          "met": v < PIPELINE_SHARE_TARGET}
    paper = settings.get("paper", {}).get("methods", {})
    if "helvae" in paper:
        v = paper["helvae"]["ratio_to_floor"]
        out["helvae_paper_ratio_to_floor"] = {"value": v, "target": HELVAE_FLOOR_TARGET,
                                              "met": v <= HELVAE_FLOOR_TARGET}
    single = {m: r["ratio_to_floor"] for m, r in paper.items()
              if r["decoder_passes_per_modality"] == 1 and "ratio_to_floor" in r}
    if single:
        out["single_decode_paper_ratio_to_floor"] = {
            m: {"value": v, "target": SINGLE_DECODE_FLOOR_TARGET, "met": v <= SINGLE_DECODE_FLOOR_TARGET}
            for m, v in single.items()}
    return out


def run(device: str = "auto", scales=("cpu", "paper"), methods=None, steps: int = 5, rounds: int = 6,
        warmup: int = 0, seed: int = 0, variants=(), settings: dict | None = None, paper_steps: int | None = None,
        paper_rounds: int | None = None, max_gib: float | None = None, variant_scales=None) -> dict:
    """Measure every setting in ``scales`` (keys of ``settings``, default :data:`SETTINGS`); the JSON's dictionary.

    Every entry's first step is untimed (:meth:`Entry.first`); ``warmup`` adds untimed rounds. The ``paper``
    setting takes ``paper_steps`` and ``paper_rounds`` (default: ``steps`` and ``rounds`` on an accelerator, 1 and
    3 on the CPU, where one of its steps takes from half a minute to minutes). ``variants`` are timed at the
    settings in ``variant_scales`` (default: every one).
    """
    settings = SETTINGS if settings is None else settings
    unknown = [s for s in scales if s not in settings]
    if unknown:
        raise ValueError(f"bench-train: unknown setting(s) {unknown}; valid: {', '.join(settings)}")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"bench-train: unknown variant(s) {bad}; valid: {', '.join(VARIANTS)}")
    methods = list(METHODS) if methods is None else list(methods)
    dev = resolve_device(device)
    cpu = dev.type == "cpu"
    paper_steps = paper_steps or (1 if cpu else steps)
    paper_rounds = paper_rounds or (3 if cpu else rounds)
    measured = {s: run_setting(s, settings[s], methods, dev, paper_steps if s == "paper" else steps,
                               paper_rounds if s == "paper" else rounds, warmup, seed,
                               variants if variant_scales is None or s in variant_scales else (), max_gib)
                for s in scales}
    return {"item": "bench-train", "schema": SCHEMA, "device": device_record(dev), "threads": torch.get_num_threads(),
            "clock": clock_name(dev),
            "seed": seed, "variants": list(variants),
            "settings": measured, "targets": targets(measured), "provenance": provenance(seed=seed, scale="bench")}


def default_path(device: torch.device | str) -> Path:
    """``results/bench/train-<device type>.json`` (train-cpu.json, train-cuda.json)."""
    return BENCH_DIR / f"train-{torch.device(device).type}.json"


def summary_lines(result: dict) -> list[str]:
    """One line per method and setting: seconds per step, ratio to the floor, data share; then the targets."""
    lines = []
    for s, block in result["settings"].items():
        lines.append(f"[{s}] batch {block['batch_size']}, {block['arch']}, latent {block['latent_dim']}, data "
                     f"{block['data']}; pipeline {block['pipeline']['batched_seconds_per_batch'] * 1e3:.2f} ms/batch "
                     f"(per row {block['pipeline']['per_row_seconds_per_batch'] * 1e3:.2f} ms)")
        for k, r in {**block["floors"], **block["methods"], **block.get("variants", {})}.items():
            if "skipped" in r:
                lines.append(f"  {k:28s} {r['skipped']}")
                continue
            ratio = f"x{r['ratio_to_floor']:.2f} floor" if "ratio_to_floor" in r else "floor"
            lines.append(f"  {k:28s} {r['step_seconds'] * 1e3:9.1f} ms  {ratio:12s} data {100 * r['data_share']:5.2f}%"
                         f"  {r['samples_per_second']:8.1f} samples/s")
    for k, t in result["targets"].items():
        items = t.items() if "value" not in t else [("", t)]
        for m, v in items:
            lines.append(f"target {k}{' ' + m if m else ''}: {v['value']:.3f} (bound {v['target']}) "
                         f"{'met' if v['met'] else 'not met'}")
    return lines


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--scales", nargs="+", default=["cpu", "paper"], choices=list(SETTINGS))
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    p.add_argument("--steps", type=int, default=5, help="timed steps per entry and round")
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds, each in a new order")
    p.add_argument("--paper-steps", type=int, default=None, help="at the paper setting (default: 1 on a CPU)")
    p.add_argument("--paper-rounds", type=int, default=None, help="at the paper setting (default: 3 on a CPU)")
    p.add_argument("--warmup", type=int, default=0, help="untimed rounds after each entry's untimed first step")
    p.add_argument("--max-gib", type=float, default=None,
                   help="skip a method whose activations would exceed this (default: 70%% of the accelerator's free "
                        "memory, half of the host's available memory)")
    p.add_argument("--variants", nargs="*", default=[], choices=list(VARIANTS),
                   help="also time HELVAE under these (bf16, fp16 autocast; compile)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="output JSON (default results/bench/train-<device>.json)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        res = run(a.device, a.scales, a.methods, a.steps, a.rounds, a.warmup, a.seed, a.variants,
                  paper_steps=a.paper_steps, paper_rounds=a.paper_rounds, max_gib=a.max_gib)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    out = a.out or default_path(res["device"]["device"])
    write_json(out, res)
    print("\n".join(summary_lines(res)))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
