"""Evaluate one trained run: coherence, latent representation, log-likelihood and generative quality.

    python -m poolvae.evaluate results/runs/cpu/polymnist-mini/helvae/beta=2.5/seed=0
    python -m poolvae.evaluate RUN_DIR --scale paper --K 1000 --n-fid 10000 --inception-weights PATH

Reads the run's ``config.json`` and its checkpoint (``checkpoints/<run path>/last.pt``), evaluates the
model with the protocol of the two papers (HEL App. B.2, WB App. B) at the sample counts of the
evaluation scale (:data:`EVAL_DEFAULTS`; ``--set key=value`` overrides any :class:`EvalSettings`
field), and writes ``RUN_DIR/evaluation.json`` atomically, plus ``RUN_DIR/samples.npz``: a few uint8
test inputs and generations for the qualitative figures (:func:`write_samples`; PolyMNIST: HEL Figs. 4
and 9, with WB Figs. S5-S7 in ``samples-wb.npz``; MNIST-SVHN-Text, CelebA, CUB: the panels of
:data:`PANELS`). An evaluation whose settings and checkpoint are unchanged is skipped (``--force`` redoes
it; a missing or stale sample file is still written). The coherence classifiers are trained
on first use (:mod:`poolvae.classifiers`). ``--checkpoint-dir``, ``--classifier-dir`` and
``--classifier-results-dir`` move every input and output away from the repository (the tests use this).

Protocol (where the papers leave a choice open, the choice is ours and written here):

* conditional coherence: for every non-empty subset S, generate every modality m outside S from the
  test data of S with ``model.conditional`` and classify it; a sample is coherent when the class equals
  the test label (CelebA: average precision of the target classifier's scores per attribute). Decoder
  outputs are turned into samples by their mean (Laplace and Bernoulli) or arg-max (categorical text),
  as the original implementations do.
* unconditional coherence: prior samples are coherent when every modality's classifier predicts the
  same class (CelebA: per attribute, all modalities agree).
* latent representation: logistic regression on posterior means (a mixture's mean) of 500 training
  samples drawn at random (seeded), tested on the test set, per subset (CelebA: per attribute, AP).
* log-likelihood: ``log p(x_1..x_M)`` of test points by importance sampling with the posterior of
  each subset as proposal (``ll_subsets="all"``, WB Table 3 / Fig. 3; the joint posterior for
  ``"joint"``), K samples per data point, the likelihood unweighted
  (:func:`poolvae.metrics.model_log_likelihood` says why).
* quality: ``fd_classifier`` (Fréchet distance in the coherence classifiers' features) at every scale
  with classifiers, and ``fid`` (torch-fidelity's Inception) when ``fid`` is on (the paper scale). Each
  compares generated images of a modality with as many test images of it; conditional values are
  per (subset, target) pair, so curves by number of inputs per target (HEL Fig. 5) follow.
* CUB: colour coherence of caption-to-image generations (:func:`poolvae.metrics.colour_coherence`).

Schema of ``evaluation.json`` (``"schema": "poolvae.evaluate/1"``)::

    schema            "poolvae.evaluate/1"
    scale             evaluation protocol scale: ci | cpu | paper
    run               dataset, method, beta, seed, scale (of the run), dir, checkpoint,
                      checkpoint_sha256 (first 16 hex digits), epochs
    settings          every EvalSettings field as used
    modalities        modality names, in model order
    subsets           subset names ("m0+m2"), in poolvae.aggregators.subsets order
    samples           actual counts: conditional, unconditional, latent_train, latent_test,
                      log_likelihood, quality_real, quality_conditional, quality_unconditional
    classifiers       null, or {checkpoint_dir, results_file, task, test: {modality: {accuracy[, mean_ap]}}}
    feature_extractors  {fd_classifier: {...}, fid: {...}} for the quality metrics computed
    metrics
      coherence       {measure: "accuracy" | "mean_average_precision",
                       conditional: {per_pair: {subset: {target: v}}, per_subset: {subset: v},
                                     by_size: {"k": {mean, std, n}}, overall: v
                                     [, per_pair_per_attribute: {subset: {target: [40 APs]}},
                                      reconstruction_per_attribute: {subset: {modality in it: [40 APs]}},
                                      attributes: [40 names]]},
                       unconditional: v | {per_attribute, mean, all_attributes}}
      latent          {measure, per_subset: {subset: v}, by_size
                       [, per_subset_per_attribute: {subset: [40 APs]}, attributes: [40 names]], classifier}
      log_likelihood  {per_subset: {subset: mean over data points}, per_subset_sem, by_size,
                       joint, K, weighted, proposal}
      fd_classifier / fid
                      {unconditional: {modality: v}, conditional: {per_pair: {subset: {target: v}},
                       by_size: {"k": {mean, std, n}}, by_size_per_target: {target: {"k": ...}}, mean}}
      cub_colour_coherence  {per_colour: {colour: v}, overall, captions: {colour: caption},
                       images_per_colour}
    seconds           wall time per section
    provenance        source hash, library versions, seed, scale

Metric names are fixed: ``fid`` is only ever Inception FID, ``fd_classifier`` only the classifier-
feature distance; the two are never comparable.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm  # not tqdm.auto: without ipywidgets it warns in every notebook

from . import datasets as ds
from . import metrics as mt
from .artefacts import provenance, read_json, repo_relative, write_json
from .classifiers import (
    CLASSIFIER_DIR,
    CLASSIFIER_RESULTS_DIR,
    classifier_paths,
    features_and_logits,
    get_classifiers,
    task,
)
from .configs import typed
from .fid import FeatureExtractor, fid_from_features, frechet_distance_features
from .models import INNER_POOL, METHODS, SUBSET_POSTERIORS, MultimodalVAE
from .train import (
    CHECKPOINT_DIR,
    SCALES,
    TrainConfig,
    build_model,
    checkpoint_file,
    load_data,
    resolve_device,
    stored_config,
)

SCHEMA = "poolvae.evaluate/1"
SECTIONS = ("coherence", "latent", "log_likelihood", "quality")


@dataclass
class EvalSettings:
    """Sample counts and options of one evaluation; defaults per scale in :data:`EVAL_DEFAULTS`."""

    seed: int = 0  # every section re-seeds from it, so each is reproducible on its own
    batch_size: int = 256  # data points per forward pass
    n_conditional: int = 0  # test points conditioned on (coherence, conditional quality); 0: all
    n_unconditional: int = 10000  # prior samples (unconditional coherence and quality)
    n_latent_train: int = 500  # training samples the linear probe is fitted on (HEL B.2, WB App. B)
    n_latent_test: int = 0  # test points the probe is tested on; 0: all
    K: int = 1000  # importance samples per data point
    n_ll: int = 1000  # test points for the log-likelihood (seeded random subset); 0: all
    ll_chunk: int = 25  # importance samples decoded at once
    ll_weighted: bool = False  # weight modalities' log-likelihoods as in training (not a likelihood)
    ll_subsets: str = "all"  # "all": each subset's posterior as proposal; "joint": all modalities only
    n_fid: int = 10000  # at most this many generated and real images per FD/FID set
    fid: bool = True  # Inception FID through torch-fidelity (needs the weights file)
    inception_weights: str = ""  # path to the weights file; "": the torch hub cache
    n_colour: int = 10  # CUB: images per colour caption (HEL B.2)
    sections: str = "coherence,latent,log_likelihood,quality"  # comma-separated subset of SECTIONS
    device: str = "auto"  # auto | cpu | cuda
    subset_posterior: str = "pool"  # conditioning on a subset S (generation, latent probe) for MoPoE, MWB-VAE,
    # MoHELVAE, CoDEVAE: "pool" = S's own pool, as the reference code; "mixture" = the mixture over S's subsets


EVAL_DEFAULTS: dict[str, dict] = {
    # seconds: the tests
    # (about 1 s of one core per PolyMNIST-mini run; the 35-90 s seen before were two BLAS and torch threads on a
    # loaded machine, which poolvae.experiments' ci runs no longer use. What costs is per call, not per sample,
    # so the counts stay where the statistics still work: 64 for the Frechet distances of 32 features, 16
    # conditioned test points, K = 2 on 4 points for the log-likelihood)
    "ci": dict(batch_size=64, n_conditional=16, n_unconditional=64, n_latent_test=0, K=2, n_ll=4, ll_chunk=2,
               n_fid=64, fid=False),
    # PolyMNIST-mini (1,000 test points): about a minute on two cores, plus two for the classifiers once
    "cpu": dict(batch_size=250, n_conditional=0, n_unconditional=1000, n_latent_test=0, K=50, n_ll=100,
                ll_chunk=25, n_fid=1000, fid=False),
    # the papers: 10,000 FID samples, K = 1000 (GPU)
    "paper": dict(batch_size=256, n_conditional=0, n_unconditional=10000, K=1000, n_ll=1000, ll_chunk=20,
                  n_fid=10000, fid=True),
}


def make_settings(scale: str, overrides: dict | None = None) -> EvalSettings:
    """Settings of a scale with ``overrides`` (strings are converted to each field's type; unknown keys
    and bad values raise ValueError naming the valid keys)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    values = dict(EVAL_DEFAULTS[scale], **(overrides or {}))
    s = typed(EvalSettings, values, what="evaluation setting")
    bad = sorted(set(s.sections.split(",")) - set(SECTIONS))
    if bad:
        raise ValueError(f"unknown section(s) {bad}; valid: {', '.join(SECTIONS)}")
    if s.ll_subsets not in ("all", "joint"):
        raise ValueError(f"ll_subsets must be 'all' or 'joint'; got {s.ll_subsets!r}")
    if s.subset_posterior not in SUBSET_POSTERIORS:
        raise ValueError(f"subset_posterior must be one of {SUBSET_POSTERIORS}; got {s.subset_posterior!r}")
    return s


#: Settings added after evaluations were committed, with the value the code used before each existed.
LEGACY_SETTINGS = {"subset_posterior": "mixture"}


def settings_differences(evaluation: dict, settings: EvalSettings) -> dict[str, tuple]:
    """``{setting: (stored, current)}`` where an ``evaluation.json`` was made with other settings than ``settings``.

    A setting missing from the file takes its :data:`LEGACY_SETTINGS` value (what made it); ``subset_posterior``
    only counts for the mixture-of-pools methods, the others condition on the same posterior either way.
    """
    stored = {**LEGACY_SETTINGS, **evaluation.get("settings", {})}
    current = dataclasses.asdict(settings)
    method = evaluation.get("run", {}).get("method")
    skip = set() if method in METHODS and METHODS[method].pool in INNER_POOL else {"subset_posterior"}
    return {k: (stored.get(k), v) for k, v in current.items() if k not in skip and stored.get(k) != v}


# --------------------------------------------------------------------------------------------------
# Data and samples
# --------------------------------------------------------------------------------------------------


def sample_rows(total: int, n: int, seed: int, salt: int = 0) -> list[int]:
    """A seeded random choice of ``n`` of ``total`` rows in increasing order (all rows if n is 0 or >= total)."""
    if n <= 0 or n >= total:
        return list(range(total))
    rng = np.random.default_rng([seed, salt])
    return sorted(int(i) for i in rng.choice(total, size=n, replace=False))


def data_batches(data, rows: list[int], batch_size: int, device: str):
    """Yield (modalities on ``device``, labels) for ``rows`` of ``data`` in order."""
    for i in range(0, len(rows), batch_size):
        items = [data[r] for r in rows[i:i + batch_size]]
        xs = [torch.stack([it[0][m] for it in items]).to(device) for m in range(len(items[0][0]))]
        yield xs, torch.stack([it[1] for it in items])


def as_sample(likelihood: str, out: Tensor) -> Tensor:
    """A decoder output as a sample: the mean of a Laplace (location) or Bernoulli (sigmoid of the
    logits), the one-hot arg-max of categorical text."""
    if likelihood == "laplace":
        return out.clamp(0.0, 1.0)
    if likelihood == "bernoulli":
        return torch.sigmoid(out)
    if likelihood == "categorical":
        return F.one_hot(out.argmax(-1), out.shape[-1]).to(out.dtype)
    raise ValueError(f"unknown likelihood {likelihood!r}")


class _Collector:
    """Per (key, modality): classifier predictions or scores, features (at most ``cap`` rows)."""

    def __init__(self, cap: int):
        self.cap, self.pred, self.feat, self.inc = cap, {}, {}, {}

    def add(self, key, clf, inception, x: Tensor, kind: str | None):
        if clf is not None:
            with torch.no_grad():
                f, logits = features_and_logits(clf, x)
            out = logits.argmax(1) if kind == "multiclass" else torch.sigmoid(logits)
            self.pred.setdefault(key, []).append(out.cpu())
            have = sum(len(t) for t in self.feat.get(key, []))
            if have < self.cap:
                self.feat.setdefault(key, []).append(f[: self.cap - have].double().cpu())
        if inception is not None:
            have = sum(len(t) for t in self.inc.get(key, []))
            if have < self.cap:
                self.inc.setdefault(key, []).append(inception(x[: self.cap - have]))

    @staticmethod
    def cat(d, key):
        return torch.cat(d[key]) if key in d else None


# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def real_features(spec, data, rows, classifiers, inception, settings, device) -> tuple[dict, dict]:
    """Classifier and Inception features of the real test images of every image modality."""
    col = _Collector(len(rows))
    for xs, _ in data_batches(data, rows, settings.batch_size, device):
        for m, mod in enumerate(spec.modalities):
            if mod.kind == "image":
                clf = classifiers.get(mod.name) if classifiers else None
                col.add(m, clf, inception, xs[m], None if clf is None else "multiclass")
    return ({m: col.cat(col.feat, m) for m in col.feat}, {m: col.cat(col.inc, m) for m in col.inc})


def _quality_summary(pairs: dict, uncond: dict, names) -> dict:
    """Per-pair, per-size (overall and per target) and mean of conditional FD/FID; unconditional by modality."""
    per_pair: dict[str, dict[str, float]] = {}
    for (s, t), v in pairs.items():
        per_pair.setdefault(mt.subset_name(s, names), {})[names[t]] = v
    by_size = mt.by_size_pairs(pairs)
    per_target = {names[t]: c for t, c in mt.by_size_per_target(pairs, len(names)).items() if c}
    return {"unconditional": {names[m]: v for m, v in uncond.items()},
            "conditional": {"per_pair": per_pair, "by_size": by_size, "by_size_per_target": per_target,
                            "mean": float(np.mean(list(pairs.values()))) if pairs else float("nan")}}


@torch.no_grad()
def generation_sections(model: MultimodalVAE, spec, data, labels_kind, classifiers, inception, settings, device,
                        progress, want_coherence: bool, want_quality: bool) -> tuple[dict, dict, dict]:
    """Conditional and unconditional generation, judged by the classifiers (coherence) and compared
    with real images (fd_classifier, fid). Returns (metrics, sample counts, seconds)."""
    names = list(spec.names)
    M = len(names)
    image_mods = [m for m, mod in enumerate(spec.modalities) if mod.kind == "image"]
    out, counts, seconds = {}, {}, {}
    clfs = [classifiers[n] for n in names] if classifiers else [None] * M
    cap = settings.n_fid
    t0 = time.perf_counter()
    real_f, real_i = {}, {}
    if want_quality:
        rows_real = sample_rows(len(data), cap, settings.seed, salt=3)
        real_f, real_i = real_features(spec, data, rows_real, classifiers, inception, settings, device)
        counts["quality_real"] = len(rows_real)

    # ---- conditional: every subset, every modality outside it
    torch.manual_seed(settings.seed)
    rows = sample_rows(len(data), settings.n_conditional, settings.seed, salt=1)
    counts["conditional"] = len(rows)
    coh_pairs, coh_attr, fd_pairs, fid_pairs = {}, {}, {}, {}
    subsets = [s for s in mt.subset_list(M) if len(s) < M]
    for s in tqdm(subsets, desc="conditional generation", disable=not progress, leave=False):
        col = _Collector(cap)
        targets = [m for m in range(M) if m not in s]
        labels = []
        for xs, y in data_batches(data, rows, settings.batch_size, device):
            outs = model.conditional(xs, mt.subset_mask(s, M, xs[0].shape[0], device), settings.subset_posterior)
            labels.append(y)
            for m in targets:
                x = as_sample(spec.modalities[m].likelihood, outs[m])
                use_inc = inception if (want_quality and m in image_mods) else None
                col.add(m, clfs[m], use_inc, x, labels_kind)
        y = torch.cat(labels)
        for m in targets:
            if classifiers and want_coherence:
                pred = col.cat(col.pred, m)
                if labels_kind == "multiclass":
                    coh_pairs[(s, m)] = mt.coherence(pred, y[:, 0])
                else:
                    ap = mt.average_precision_per_attribute(pred.numpy(), y.numpy())
                    coh_pairs[(s, m)] = float(np.nanmean(ap))
                    coh_attr.setdefault(mt.subset_name(s, names), {})[names[m]] = ap.tolist()
            if want_quality and m in image_mods:
                if m in real_f:
                    fd_pairs[(s, m)] = frechet_distance_features(col.cat(col.feat, m), real_f[m])
                if m in real_i:
                    fid_pairs[(s, m)] = fid_from_features(col.cat(col.inc, m), real_i[m])
                counts["quality_conditional"] = min(cap, len(rows))
    recon_attr = {}
    if classifiers and want_coherence and labels_kind != "multiclass":
        recon_attr = reconstruction_per_attribute(model, spec, data, rows, clfs, settings, device)
    seconds["conditional"] = time.perf_counter() - t0

    # ---- unconditional: prior samples
    t0 = time.perf_counter()
    torch.manual_seed(settings.seed + 1)
    n = settings.n_unconditional
    counts["unconditional"] = n
    col = _Collector(cap)
    for i in tqdm(range(0, n, settings.batch_size), desc="prior samples", disable=not progress, leave=False):
        outs = model.sample_prior(min(settings.batch_size, n - i))
        for m in range(M):
            x = as_sample(spec.modalities[m].likelihood, outs[m])
            use_inc = inception if (want_quality and m in image_mods) else None
            col.add(m, clfs[m], use_inc, x, labels_kind)
    uncond_fd, uncond_fid = {}, {}
    if want_quality:
        counts["quality_unconditional"] = min(cap, n)
        for m in image_mods:
            if m in real_f:
                uncond_fd[m] = frechet_distance_features(col.cat(col.feat, m), real_f[m])
            if m in real_i:
                uncond_fid[m] = fid_from_features(col.cat(col.inc, m), real_i[m])
    seconds["unconditional"] = time.perf_counter() - t0

    if classifiers and want_coherence:
        preds = np.stack([col.cat(col.pred, m).numpy() for m in range(M)])
        summary = mt.coherence_summary(coh_pairs, names)
        if coh_attr:
            summary["per_pair_per_attribute"] = coh_attr
        if recon_attr:
            summary["reconstruction_per_attribute"] = recon_attr
            summary["attributes"] = list(spec.label_names)
        out["coherence"] = {
            "measure": "accuracy" if labels_kind == "multiclass" else "mean_average_precision",
            "conditional": summary,
            "unconditional": mt.unconditional_coherence(preds) if labels_kind == "multiclass"
            else mt.attribute_agreement(preds > 0.5),
        }
    if want_quality and classifiers:
        out["fd_classifier"] = _quality_summary(fd_pairs, uncond_fd, names)
    if want_quality and inception is not None:
        out["fid"] = _quality_summary(fid_pairs, uncond_fid, names)
    return out, counts, seconds


@torch.no_grad()
def reconstruction_per_attribute(model: MultimodalVAE, spec, data, rows, clfs, settings, device) -> dict:
    """CelebA: per subset S, the average precision per attribute of each modality *in* S generated from S
    (the panels of HEL Fig. 15 and WB Fig. S10 show every modality generated from each input subset; the
    modalities outside S are ``per_pair_per_attribute``). Returns {subset: {modality: [AP per attribute]}}."""
    names = list(spec.names)
    M = len(names)
    torch.manual_seed(settings.seed + 7)  # its own seed: the other sections' draws stay as they were
    out = {}
    for s in mt.subset_list(M):
        scores, labels = {m: [] for m in s}, []
        for xs, y in data_batches(data, rows, settings.batch_size, device):
            outs = model.conditional(xs, mt.subset_mask(s, M, xs[0].shape[0], device), settings.subset_posterior)
            labels.append(y)
            for m in s:
                x = as_sample(spec.modalities[m].likelihood, outs[m])
                scores[m].append(torch.sigmoid(features_and_logits(clfs[m], x)[1]).cpu())
        y = torch.cat(labels).numpy()
        out[mt.subset_name(s, names)] = {
            names[m]: mt.average_precision_per_attribute(torch.cat(v).numpy(), y).tolist() for m, v in scores.items()}
    return out


@torch.no_grad()
def _encode(model: MultimodalVAE, data, rows, settings, device) -> tuple[Tensor, Tensor, Tensor]:
    """Experts (M, N, D) of the shared latent for ``rows``, and their labels (N, L)."""
    mus, lvs, ys = [], [], []
    for xs, y in data_batches(data, rows, settings.batch_size, device):
        mu, logvar, _, _ = model.encode(xs)
        mus.append(mu.cpu())
        lvs.append(logvar.cpu())
        ys.append(y)
    return torch.cat(mus, 1), torch.cat(lvs, 1), torch.cat(ys)


@torch.no_grad()
def latent_section(model: MultimodalVAE, spec, train_data, test_data, labels_kind, settings, device, progress):
    """Linear probe on posterior means, per subset. Returns (metrics, counts)."""
    names = list(spec.names)
    M = len(names)
    rows_tr = sample_rows(len(train_data), settings.n_latent_train, settings.seed, salt=4)
    rows_te = sample_rows(len(test_data), settings.n_latent_test, settings.seed, salt=5)
    mu_tr, lv_tr, y_tr = _encode(model, train_data, rows_tr, settings, device)
    mu_te, lv_te, y_te = _encode(model, test_data, rows_te, settings, device)

    def means(mu, lv, s):
        out = []
        for i in range(0, mu.shape[1], settings.batch_size):
            m_, l_ = mu[:, i:i + settings.batch_size].to(device), lv[:, i:i + settings.batch_size].to(device)
            q = model.subset_posterior(m_, l_, mt.subset_mask(s, M, m_.shape[1], device), settings.subset_posterior)
            out.append(mt.posterior_mean(q).cpu())
        return torch.cat(out).numpy()

    values, per_attr = {}, {}
    for s in tqdm(mt.subset_list(M), desc="latent probe", disable=not progress, leave=False):
        z_tr, z_te = means(mu_tr, lv_tr, s), means(mu_te, lv_te, s)
        if labels_kind == "multiclass":
            values[s] = mt.latent_accuracy(z_tr, y_tr[:, 0].numpy(), z_te, y_te[:, 0].numpy(), settings.seed)
        else:
            r = mt.latent_average_precision(z_tr, y_tr.numpy(), z_te, y_te.numpy(), settings.seed)
            values[s] = r["mean_ap"]
            per_attr[mt.subset_name(s, names)] = r["per_attribute_ap"]
    out = {"measure": "accuracy" if labels_kind == "multiclass" else "mean_average_precision",
           "per_subset": {mt.subset_name(s, names): v for s, v in values.items()},
           "by_size": mt.by_size(values),
           "classifier": "sklearn LogisticRegression(solver='lbfgs', max_iter=1000) on posterior means"}
    if per_attr:
        out["per_subset_per_attribute"] = per_attr
        out["attributes"] = list(spec.label_names)
    return out, {"latent_train": len(rows_tr), "latent_test": len(rows_te)}


@torch.no_grad()
def log_likelihood_section(model: MultimodalVAE, spec, data, settings, device, progress):
    """Importance-sampled ``log p(X)`` per subset proposal. Returns (metrics, counts)."""
    names = list(spec.names)
    M = len(names)
    rows = sample_rows(len(data), settings.n_ll, settings.seed, salt=2)
    subsets = mt.subset_list(M) if settings.ll_subsets == "all" else [tuple(range(M))]
    means, sems = {}, {}
    for s in tqdm(subsets, desc="log-likelihood", disable=not progress, leave=False):
        torch.manual_seed(settings.seed + 2)
        est = []
        for xs, _ in data_batches(data, rows, settings.batch_size, device):
            mask = mt.subset_mask(s, M, xs[0].shape[0], device)
            est.append(mt.model_log_likelihood(model, xs, mask, settings.K, settings.ll_weighted,
                                               settings.ll_chunk).cpu())
        e = torch.cat(est).double()
        means[s] = float(e.mean())
        sems[s] = float(e.std() / math.sqrt(len(e))) if len(e) > 1 else float("nan")
    full = tuple(range(M))
    return ({"per_subset": {mt.subset_name(s, names): v for s, v in means.items()},
             "per_subset_sem": {mt.subset_name(s, names): v for s, v in sems.items()},
             "by_size": mt.by_size(means), "joint": means[full], "K": settings.K,
             "weighted": settings.ll_weighted,
             "proposal": "the method's posterior given each subset (joint: all modalities); a mixture-of-pools "
                         "method's is its mixture over the subset's subsets, whatever subset_posterior says"},
            {"log_likelihood": len(rows)})


@torch.no_grad()
def cub_colour_section(model: MultimodalVAE, spec, data, settings, device) -> dict:
    """CUB colour coherence: ``n_colour`` images per caption "this bird is completely <colour>" (HEL B.2)."""
    base = data.dataset if isinstance(data, torch.utils.data.Subset) else data
    vocab, length = base.vocabulary, base.max_length
    t, i = spec.names.index("text"), spec.names.index("img")
    torch.manual_seed(settings.seed + 3)
    per_colour, captions = {}, {}
    n = settings.n_colour
    for colour in mt.CUB_COLOURS:
        word = colour
        if colour == "gray" and "gray" not in vocab.index and "grey" in vocab.index:
            word = "grey"  # the captions' spelling
        captions[colour] = f"this bird is completely {word}"
        text = vocab.one_hot(captions[colour], length).unsqueeze(0).expand(n, -1, -1).to(device)
        xs = [torch.zeros(n, *m.shape, device=device) for m in spec.modalities]
        xs[t] = text
        mask = mt.subset_mask((t,), len(xs), n, device)
        img = as_sample(spec.modalities[i].likelihood, model.conditional(xs, mask)[i])
        per_colour[colour] = float(mt.colour_coherence(img.cpu(), colour).mean())
    return {"per_colour": per_colour, "overall": float(np.mean(list(per_colour.values()))), "captions": captions,
            "images_per_colour": n}


# --------------------------------------------------------------------------------------------------
# Sample arrays for the qualitative figures (hel-fig4, hel-fig9; hel-fig10..13, wb-fig4, wb-figS5..S9, S12)
# --------------------------------------------------------------------------------------------------

SAMPLES_FILE = "samples.npz"
#: data set -> (generated modality, conditioning subsets). HEL Fig. 9 conditions the second modality on the
#: first; first and third; first, third and fourth; and first, third, fourth and fifth; the last is HEL Fig. 4.
SAMPLE_PLAN: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "polymnist": ("m1", (("m0",), ("m0", "m2"), ("m0", "m2", "m3"), ("m0", "m2", "m3", "m4"))),
}


@dataclass(frozen=True)
class Panel:
    """One set of generations for a qualitative figure: ``targets`` generated ``n_draws`` times for each of
    ``n_columns`` columns, given the test examples' ``given`` modalities (prior samples when ``given`` is empty)."""

    given: tuple[str, ...]  # conditioning modalities, taken from the same test rows in every panel
    targets: tuple[str, ...]  # generated modalities
    n_columns: int = 6  # test examples (or captions, or classes)
    n_draws: int = 3  # fresh latent samples per column
    by_class: bool = False  # one column per class 0..9 (its first test example in a seeded order), WB Fig. S9
    captions: str = ""  # "colours": HEL B.2's "this bird is completely <colour>" instead of test captions

    @property
    def name(self) -> str:
        """Key prefix in the file: ``img_given_text``, ``mnist_given_svhn+text``, ``img_given_colours``, ..."""
        return f"{'+'.join(self.targets)}_given_{self.captions or '+'.join(self.given) or 'prior'}"


#: data set -> the panels its sample file holds (:func:`write_panels`). PolyMNIST's go to
#: :data:`PANELS_FILE` beside its ``samples.npz``, whose layout (:data:`SAMPLE_PLAN`) hel-fig4/9 read.
PANELS: dict[str, tuple[Panel, ...]] = {
    # WB Figs. S5-S7: the first modality given the third; the second to fourth; the other four
    "polymnist": tuple(Panel(g, ("m0",), 6, 4) for g in (("m2",), ("m1", "m2", "m3"), ("m1", "m2", "m3", "m4"))),
    # WB Fig. S8: prior samples of every modality; Fig. S9: MNIST given SVHN, text, SVHN and text, one column a digit
    "mnist-svhn-text": (Panel((), ("mnist", "svhn", "text"), 8, 4),
                        *(Panel(g, ("mnist",), 10, 4, by_class=True)
                          for g in (("svhn",), ("text",), ("svhn", "text")))),
    # HEL Fig. 13, WB Figs. 4 and S12a: faces given the attribute text; WB Fig. S12b: given image and text
    "celeba": (Panel(("text",), ("img",), 6, 3), Panel(("img", "text"), ("img",), 6, 2)),
    # HEL Fig. 10: the colour captions of the coherence test; Figs. 11-12: test captions, four images each
    "cub": (Panel((), ("img",), 8, 2, captions="colours"), Panel(("text",), ("img",), 4, 4)),
}
PANELS_FILE = {"polymnist": "samples-wb.npz"}  # data sets whose panels are not in samples.npz


def sample_files(dataset: str) -> tuple[str, ...]:
    """The sample files :func:`write_samples` writes into a run folder of ``dataset`` (empty: none)."""
    base = ds.base_name(dataset)
    files = (SAMPLES_FILE,) if base in SAMPLE_PLAN else ()
    return files + ((PANELS_FILE.get(base, SAMPLES_FILE),) if base in PANELS else ())


def _uint8_images(x: Tensor) -> np.ndarray:
    """(N, C, H, W) samples in [0, 1] -> (N, H, W, C) uint8."""
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def decode_texts(mod, x: Tensor) -> np.ndarray:
    """(N, L, A) one-hot text (or scores) -> N strings: characters without the padding (MNIST-SVHN-Text ' ',
    CelebA '*'), or CUB words up to ``<eos>`` (:meth:`poolvae.text.Vocabulary.decode`)."""
    from . import text as tx

    idx = x.argmax(-1).cpu().tolist()
    if all(len(s) == 1 for s in mod.symbols):
        out = [tx.strip_padding("".join(mod.symbols[i] for i in row), tx.MST_PAD + tx.CELEBA_PAD) for row in idx]
    else:
        vocab = tx.Vocabulary(tuple(mod.symbols))
        out = [vocab.decode(row) for row in idx]
    return np.asarray(out, dtype=str)


def _as_arrays(mod, x: Tensor) -> np.ndarray:
    """A modality's samples as stored: uint8 (N, H, W, C) images or decoded strings."""
    return _uint8_images(x) if mod.kind == "image" else decode_texts(mod, x)


def colour_captions(mod) -> dict[str, str]:
    """HEL B.2's caption per colour of :data:`poolvae.metrics.CUB_COLOURS`, spelled as the vocabulary has it."""
    words = set(mod.symbols)
    return {c: f"this bird is completely {'grey' if c == 'gray' and c not in words and 'grey' in words else c}"
            for c in mt.CUB_COLOURS}


def _class_rows(data, n_classes: int, seed: int) -> list[int]:
    """The first row of each class 0..n_classes-1 in a seeded random order of the rows (classes absent: skipped)."""
    order = np.random.default_rng([seed, 7]).permutation(len(data))
    found: dict[int, int] = {}
    for r in order:
        c = int(data[int(r)][1][0])
        if c < n_classes and c not in found:
            found[c] = int(r)
            if len(found) == n_classes:
                break
    return [found[c] for c in sorted(found)]


@torch.no_grad()
def write_panels(model: MultimodalVAE, spec, data, path: str | os.PathLike, panels: tuple[Panel, ...], seed: int = 0,
                 device: str = "cpu", record: dict | None = None) -> Path:
    """Write the generations of ``panels`` to ``path`` (npz), atomically and deterministically for a seed.

    Arrays: ``modalities``, ``panels`` (names) and ``meta`` (JSON: ``record``, seed, each panel's fields); per
    panel ``p``: ``p__rows`` (n,) the test rows of its columns (-1 for captions), ``p__labels`` (n, L) their
    labels, ``p__given__<m>`` each conditioning modality of those rows, and ``p__gen__<t>`` (n_draws, n, ...) each
    generated modality. Images are uint8 (..., H, W, C); text is decoded to strings (:func:`decode_texts`).
    Panels without ``by_class`` share their columns' test rows (drawn with :func:`sample_rows`).
    """
    from . import text as tx

    names = list(spec.names)
    M = len(names)
    arrays: dict[str, np.ndarray] = {"modalities": np.asarray(names), "panels": np.asarray([p.name for p in panels])}
    torch.manual_seed(seed + 6)
    for p in panels:
        n = p.n_columns
        if p.captions == "colours":
            t = names.index("text")
            text_mod = spec.modalities[t]
            caps = colour_captions(text_mod)
            vocab = tx.Vocabulary(tuple(text_mod.symbols))
            xs = [torch.zeros(len(caps), *m.shape, device=device) for m in spec.modalities]
            xs[t] = torch.stack([vocab.one_hot(c, text_mod.shape[0]) for c in caps.values()]).to(device)
            rows, labels = [-1] * len(caps), torch.full((len(caps), 1), -1)
            given = {"text": np.asarray(list(caps.values()))}
            mask_mods = (t,)
        elif p.given:
            rows = _class_rows(data, spec.num_classes, seed) if p.by_class else sample_rows(len(data), n, seed, salt=6)
            xs, labels = next(data_batches(data, rows, len(rows), device))
            given = {m: _as_arrays(spec.modality(m), xs[names.index(m)]) for m in p.given}
            mask_mods = tuple(names.index(m) for m in p.given)
        else:  # prior samples: no inputs
            rows, labels, given, mask_mods = [-1] * n, torch.full((n, 1), -1), {}, ()
        k = len(rows)
        draws: dict[str, list[np.ndarray]] = {t: [] for t in p.targets}
        for _ in range(p.n_draws):
            outs = model.conditional(xs, mt.subset_mask(mask_mods, M, k, device)) if mask_mods else \
                model.sample_prior(k)
            for t in p.targets:
                i = names.index(t)
                draws[t].append(_as_arrays(spec.modalities[i], as_sample(spec.modalities[i].likelihood, outs[i])))
        arrays[f"{p.name}__rows"] = np.asarray(rows, dtype=np.int64)
        arrays[f"{p.name}__labels"] = labels.cpu().numpy().astype(np.int64)
        for m, a in given.items():
            arrays[f"{p.name}__given__{m}"] = a
        for t, d in draws.items():
            arrays[f"{p.name}__gen__{t}"] = np.stack(d)
    fields = {p.name: dataclasses.asdict(p) for p in panels}
    return _save_npz(path, arrays, dict(record or {}, seed=seed, layout="panels/1", panels=fields))


@torch.no_grad()
def write_samples(model: MultimodalVAE, spec, data, run_dir: str | os.PathLike, seed: int = 0, n_columns: int = 6,
                  n_draws: int = 2, device: str = "cpu", record: dict | None = None) -> Path | None:
    """Write ``run_dir/samples.npz`` (and, for PolyMNIST, ``samples-wb.npz``): test examples and generations.

    PolyMNIST's ``samples.npz`` (hel-fig4, hel-fig9): ``rows`` (n_columns,) test rows, seeded; ``inputs`` (M,
    n_columns, H, W, C) every modality of those rows; ``given_<subset>`` (n_draws, n_columns, H, W, C) for each
    subset of :data:`SAMPLE_PLAN`, each draw a fresh latent sample from the posterior given the subset;
    ``modalities``, ``target``, ``subsets`` (strings) and ``meta`` (JSON of ``record``: run, seed, checkpoint).
    The :data:`PANELS` of a data set go through :func:`write_panels` (into ``samples.npz`` for MNIST-SVHN-Text,
    CelebA and CUB; into :data:`PANELS_FILE` for PolyMNIST, whose ``samples.npz`` keeps its layout). Returns the
    ``samples.npz`` path; data sets without a plan get no file (None). Written atomically; deterministic for a seed.
    """
    base = ds.base_name(spec.name)
    if base not in SAMPLE_PLAN and base not in PANELS:
        return None
    out = None
    if base in SAMPLE_PLAN:
        out = _write_plan(model, spec, data, run_dir, seed, n_columns, n_draws, device, record)
    if base in PANELS:
        f = write_panels(model, spec, data, Path(run_dir) / PANELS_FILE.get(base, SAMPLES_FILE), PANELS[base],
                         seed, device, record)
        out = out or f
    return out


def _write_plan(model, spec, data, run_dir, seed, n_columns, n_draws, device, record) -> Path:
    """PolyMNIST's ``samples.npz`` in the layout of :data:`SAMPLE_PLAN` (see :func:`write_samples`)."""
    target, plan = SAMPLE_PLAN[ds.base_name(spec.name)]
    names = list(spec.names)
    M = len(names)
    rows = sample_rows(len(data), n_columns, seed, salt=6)
    xs, _ = next(data_batches(data, rows, len(rows), device))
    arrays = {"rows": np.asarray(rows, dtype=np.int64), "inputs": np.stack([_uint8_images(x) for x in xs]),
              "modalities": np.asarray(names), "target": np.asarray(target),
              "subsets": np.asarray(["+".join(s) for s in plan])}
    t = names.index(target)
    torch.manual_seed(seed + 6)
    for subset in plan:
        mask = mt.subset_mask(tuple(names.index(n) for n in subset), M, len(rows), device)
        draws = [as_sample(spec.modalities[t].likelihood, model.conditional(xs, mask)[t]) for _ in range(n_draws)]
        arrays[f"given_{'+'.join(subset)}"] = np.stack([_uint8_images(d) for d in draws])
    return _save_npz(Path(run_dir) / SAMPLES_FILE, arrays,
                     dict(record or {}, seed=seed, n_columns=len(rows), n_draws=n_draws))


def _save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """``arrays`` plus ``meta`` (as sorted JSON) into a compressed npz at ``path``, written atomically."""
    import io
    import json

    from .artefacts import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays, meta=np.asarray(json.dumps(meta, sort_keys=True)))
    return atomic_write_bytes(Path(path), buf.getvalue())


def samples_up_to_date(run_dir: str | os.PathLike, digest: str, name: str = SAMPLES_FILE,
                       panels: tuple[Panel, ...] = ()) -> bool:
    """True when ``run_dir/<name>`` exists, was drawn from the checkpoint with this sha256 prefix and holds
    every panel of ``panels``."""
    import json

    f = Path(run_dir) / name
    if not f.exists():
        return False
    with np.load(f) as z:
        have = set(str(p) for p in z["panels"]) if "panels" in z.files else set()
        return json.loads(str(z["meta"])).get("checkpoint_sha256") == digest and {p.name for p in panels} <= have


def run_samples_up_to_date(run_dir: str | os.PathLike, dataset: str, digest: str) -> bool:
    """Every sample file of a run of ``dataset`` is up to date (:func:`samples_up_to_date`)."""
    base = ds.base_name(dataset)
    panels_file = PANELS_FILE.get(base, SAMPLES_FILE)
    return all(samples_up_to_date(run_dir, digest, f, PANELS.get(base, ()) if f == panels_file else ())
               for f in sample_files(dataset))


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_run(run_dir: str | os.PathLike, checkpoint_dir: str | os.PathLike = CHECKPOINT_DIR,
             allow_unfinished: bool = False) -> tuple[TrainConfig, Path]:
    """The run's config and checkpoint path; errors say how to produce what is missing."""
    cfg = _run_config(Path(run_dir))
    ckpt = checkpoint_file(cfg, checkpoint_dir)
    _check_run_checkpoint(cfg, Path(run_dir), ckpt, allow_unfinished)
    return cfg, ckpt


def _run_config(run_dir: Path) -> TrainConfig:
    """The config of the run in ``run_dir``; a folder that is not a run folder is a clear error."""
    cfg_file = run_dir / "config.json"
    if not cfg_file.exists():
        raise FileNotFoundError(f"{cfg_file} does not exist: is {run_dir} a run folder "
                                f"(results/runs/<scale>/<dataset>/<method>/beta=<b>/seed=<s>)?")
    return stored_config(read_json(cfg_file))


def _check_run_checkpoint(cfg: TrainConfig, run_dir: Path, ckpt: Path, allow_unfinished: bool) -> None:
    """Raise unless ``ckpt``, the checkpoint of the run ``cfg``, exists and the run is finished (or
    ``allow_unfinished``); the errors say what to do."""
    metrics_file = run_dir / "metrics.json"
    finished = metrics_file.exists() and read_json(metrics_file).get("finished", False)
    if not ckpt.exists():
        command = (f"`python -m poolvae.train --dataset {cfg.dataset} --method {cfg.method} --beta {cfg.beta:g} "
                   f"--seed {cfg.seed} --scale {cfg.scale}`")
        if finished:  # training would skip the finished run, so say how to make it train again
            raise FileNotFoundError(f"{run_dir} is a finished run but its checkpoint is not at {ckpt} (checkpoints are "
                                    f"git-ignored, so a clone has none): pass --checkpoint-dir where it is, or delete "
                                    f"{run_dir} and train it again with {command}")
        raise FileNotFoundError(f"no checkpoint at {ckpt}; train the run with {command}, or pass --checkpoint-dir")
    if not finished and not allow_unfinished:
        raise RuntimeError(f"run {run_dir} is not finished; finish its training first or pass --allow-unfinished")


def _load_model(cfg: TrainConfig, ckpt: Path, device: str) -> tuple[MultimodalVAE, object, dict]:
    """The run's model with its checkpoint's weights, in eval mode; its data set spec and the checkpoint."""
    state = torch.load(ckpt, map_location=device, weights_only=False)
    spec = ds.get_dataset(cfg.dataset, "test", scale=cfg.scale).spec
    model = build_model(cfg, spec)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, spec, state


def _same_protocol(evaluation: dict, scale: str, settings: EvalSettings) -> bool:
    """Whether an ``evaluation.json`` was made with this schema, scale and settings (:func:`settings_differences`)."""
    return evaluation.get("schema") == SCHEMA and evaluation.get("scale") == scale and \
        not settings_differences(evaluation, settings)


def _keep_without_checkpoint(old: dict, out_file: Path, scale: str, settings: EvalSettings, ckpt: Path) -> Path:
    """Keep ``out_file``, an evaluation whose checkpoint ``ckpt`` is not here, if it was made with ``settings``.

    That is a committed run in a clone (checkpoints are git-ignored): its ``evaluation.json`` is kept as it
    is, so ``make reproduce-<id>`` renders the committed runs instead of failing on them. An evaluation made
    with other settings cannot be redone without the checkpoint, which raises an error saying so.
    """
    if not _same_protocol(old, scale, settings):
        raise FileNotFoundError(f"{out_file} was made with other evaluation settings (or an older schema), and the "
                                f"checkpoint to redo it is not at {ckpt}: pass --checkpoint-dir where it is, or "
                                f"delete {out_file.parent} and train the run again")
    print(f"keep {out_file}: it is up to date and its checkpoint is not here (checkpoints are git-ignored)")
    return out_file


def evaluate_run(run_dir: str | os.PathLike, scale: str | None = None, overrides: dict | None = None,
                 checkpoint_dir: str | os.PathLike = CHECKPOINT_DIR,
                 classifier_dir: str | os.PathLike = CLASSIFIER_DIR,
                 classifier_results_dir: str | os.PathLike = CLASSIFIER_RESULTS_DIR,
                 progress: bool = True, force: bool = False, allow_unfinished: bool = False,
                 out_name: str = "evaluation.json", samples: bool = True) -> Path:
    """Evaluate the run in ``run_dir`` and write ``run_dir/evaluation.json``; return its path.

    ``scale`` picks the protocol's sample counts (default: the run's scale); the data and the
    classifiers are always those of the run's scale, since the model was trained on them. An evaluation
    made with the same settings from the same checkpoint is kept; so is one made with the same settings
    when the checkpoint is not in ``checkpoint_dir`` (a committed run in a clone). ``force`` redoes it.
    ``out_name`` names the file in ``run_dir`` (a part-way evaluation of :mod:`poolvae.convergence`, say) and
    ``samples=False`` skips ``samples.npz``.
    """
    run_dir = Path(run_dir)
    cfg = _run_config(run_dir)
    scale = scale or cfg.scale
    settings = make_settings(scale, overrides)
    out_file = run_dir / out_name
    old = read_json(out_file) if out_file.exists() and not force else None
    ckpt = checkpoint_file(cfg, checkpoint_dir)
    if old is not None and not ckpt.exists():
        return _keep_without_checkpoint(old, out_file, scale, settings, ckpt)
    _check_run_checkpoint(cfg, run_dir, ckpt, allow_unfinished)
    digest = _sha256(ckpt)
    device = str(resolve_device(settings.device))  # auto: $POOLVAE_DEVICE (make's DEVICE=), else cuda if present
    sample_record = {"run": repo_relative(run_dir), "checkpoint_sha256": digest}
    if old is not None and _same_protocol(old, scale, settings) and old["run"].get("checkpoint_sha256") == digest:
        if samples and not run_samples_up_to_date(run_dir, cfg.dataset, digest):  # made before samples.npz existed
            model, spec, _ = _load_model(cfg, ckpt, device)
            write_samples(model, spec, load_data(cfg, "test"), run_dir, settings.seed, device=device,
                          record=sample_record)
        print(f"skip {run_dir}: evaluation.json is up to date (pass --force to redo it)")
        return out_file
    model, spec, state = _load_model(cfg, ckpt, device)
    test_data, train_data = load_data(cfg, "test"), load_data(cfg, "train")
    if samples:
        write_samples(model, spec, test_data, run_dir, settings.seed, device=device, record=sample_record)
    sections = set(settings.sections.split(","))
    t_start = time.perf_counter()
    metrics, counts, seconds, extractors = {}, {}, {}, {}

    classifiers, clf_record = None, None
    if spec.name != "cub" and sections & {"coherence", "quality"}:
        t0 = time.perf_counter()
        classifiers, clf_record = get_classifiers(cfg.dataset, cfg.scale, classifier_dir, classifier_results_dir,
                                                  device=device, progress=progress)
        seconds["classifiers"] = time.perf_counter() - t0
    labels_kind = task(spec)
    inception = None
    if "quality" in sections and settings.fid:
        inception = FeatureExtractor(weights_path=settings.inception_weights or None, device=device)
        extractors["fid"] = inception.describe()
    if "quality" in sections and classifiers:
        arch = {k: v["class"] for k, v in clf_record.get("architectures", {}).items()}
        extractors["fd_classifier"] = {"name": "coherence classifiers", "layer": "last convolutional block, "
                                       "global average", "architectures": arch,
                                       "checkpoint_dir": repo_relative(Path(classifier_dir) / cfg.scale / cfg.dataset)}

    if spec.name == "cub" and "coherence" in sections:
        t0 = time.perf_counter()
        metrics["cub_colour_coherence"] = cub_colour_section(model, spec, test_data, settings, device)
        seconds["cub_colour_coherence"] = time.perf_counter() - t0
    if sections & {"coherence", "quality"} and (classifiers or inception is not None):
        gen, c, sec = generation_sections(model, spec, test_data, labels_kind, classifiers, inception, settings,
                                          device, progress, "coherence" in sections, "quality" in sections)
        metrics.update(gen)
        counts.update(c)
        seconds.update(sec)
    if "latent" in sections and spec.name != "cub":
        t0 = time.perf_counter()
        metrics["latent"], c = latent_section(model, spec, train_data, test_data, labels_kind, settings, device,
                                              progress)
        counts.update(c)
        seconds["latent"] = time.perf_counter() - t0
    if "log_likelihood" in sections:
        t0 = time.perf_counter()
        metrics["log_likelihood"], c = log_likelihood_section(model, spec, test_data, settings, device, progress)
        counts.update(c)
        seconds["log_likelihood"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start

    names = list(spec.names)
    record = {
        "schema": SCHEMA,
        "scale": scale,
        "run": {"dir": repo_relative(run_dir), "dataset": cfg.dataset, "method": cfg.method, "beta": cfg.beta,
                "seed": cfg.seed, "scale": cfg.scale, "checkpoint": repo_relative(ckpt), "checkpoint_sha256": digest,
                "epochs": state.get("epoch")},
        "settings": dataclasses.asdict(settings),
        "modalities": names,
        "subsets": [mt.subset_name(s, names) for s in mt.subset_list(len(names))],
        "samples": counts,
        "classifiers": None if clf_record is None else {
            "checkpoint_dir": repo_relative(Path(classifier_dir) / cfg.scale / cfg.dataset),
            "results_file": repo_relative(classifier_paths(cfg.dataset, cfg.scale, classifier_dir,
                                                           classifier_results_dir)[1]),
            "task": clf_record["task"], "test": clf_record["test"]},
        "feature_extractors": extractors,
        "metrics": metrics,
        "seconds": seconds,
        "provenance": provenance(seed=settings.seed, scale=scale, device=device, threads=torch.get_num_threads()),
    }
    write_json(out_file, record)
    return out_file


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    from .train import count_argument, parse_overrides

    p = argparse.ArgumentParser(prog="python -m poolvae.evaluate",
                                description="Evaluate a trained run and write RUN_DIR/evaluation.json.")
    p.add_argument("run_dir", help="results/runs/<scale>/<dataset>/<method>/beta=<b>/seed=<s>")
    p.add_argument("--scale", choices=SCALES, help="evaluation protocol scale (default: the run's)")
    p.add_argument("--K", type=count_argument(1), help="importance samples per data point for the log-likelihood")
    p.add_argument("--n-fid", type=count_argument(2), help="images per FD/FID set (sets n_fid and n_unconditional)")
    p.add_argument("--inception-weights", help="path to the Inception weights for FID (default: torch hub cache)")
    p.add_argument("--fid", choices=("on", "off"), help="Inception FID on or off (default: on at paper scale)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override EvalSettings fields")
    p.add_argument("--checkpoint-dir", default=str(CHECKPOINT_DIR), help="root of the run checkpoints")
    p.add_argument("--classifier-dir", default=str(CLASSIFIER_DIR), help="root of the classifier checkpoints")
    p.add_argument("--classifier-results-dir", default=str(CLASSIFIER_RESULTS_DIR),
                   help="root of the classifier accuracy files")
    p.add_argument("--force", action="store_true", help="redo an up-to-date evaluation")
    p.add_argument("--allow-unfinished", action="store_true", help="evaluate the last checkpoint of an unfinished run")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if not Path(a.run_dir).is_dir():
        p.error(f"run folder {a.run_dir} does not exist (a run folder is results/runs/<scale>/<dataset>/<method>/"
                f"beta=<b>/seed=<s>; `make reproduce-list` lists the items' runs)")
    try:  # every setting is checked before the run is read: --set keys, types and ranges, the device
        overrides = parse_overrides(a.set)
        if a.K is not None:
            overrides["K"] = a.K
        if a.n_fid is not None:  # the prior samples are the unconditional FD/FID samples
            overrides["n_fid"] = overrides["n_unconditional"] = a.n_fid
        if a.inception_weights:
            overrides["inception_weights"] = a.inception_weights
        if a.fid:
            overrides["fid"] = a.fid == "on"
        settings = make_settings(a.scale or "ci", overrides)  # every scale has the same fields and checks
        for name, low in (("batch_size", 1), ("K", 1), ("ll_chunk", 1), ("n_colour", 1), ("n_conditional", 0),
                          ("n_unconditional", 0), ("n_latent_train", 0), ("n_latent_test", 0), ("n_ll", 0),
                          ("n_fid", 0), ("seed", 0)):
            if getattr(settings, name) < low:
                raise ValueError(f"evaluation setting {name} must be at least {low}; got {getattr(settings, name)}")
        resolve_device(settings.device)
    except ValueError as e:
        p.error(str(e))
    try:
        out = evaluate_run(a.run_dir, a.scale, overrides, a.checkpoint_dir, a.classifier_dir,
                           a.classifier_results_dir, progress=not a.no_progress, force=a.force,
                           allow_unfinished=a.allow_unfinished)
    except (FileNotFoundError, RuntimeError, ValueError) as e:  # a missing checkpoint or data set, a corrupt file:
        print(f"error: {e}")  # the message names it and what to do, in one line
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"interrupted; {a.run_dir}/evaluation.json is unchanged (it is written only when complete): run the "
              "same command again")
        raise SystemExit(130) from None
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
