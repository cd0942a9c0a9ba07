"""hel-table6: seconds per training batch of every method, on the same networks, batch and machine.

    python -m poolvae.timing --scale cpu [--steps 10] [--methods helvae mopoe ...] [--columns cub celeba]
    python -m poolvae.timing --scale cpu --add-columns --steps 2   # CUB and CelebA only, into the existing file

Every method is built from the same run config (data set, architecture, latent size, batch size of
the given scale), trained for a few warm-up steps and then timed over ``--rounds`` interleaved rounds
of ``--steps`` optimiser steps each (forward, backward, Adam); the median is reported, with the ratio
to HELVAE measured in the same run. The share of HELVAE's step spent in the Hellinger pooling itself
(forward and backward on the step's expert shapes) is reported too. Writes ``results/hel-table6.json``;
the paper's own numbers (A100 GPUs) are in ``results/paper/`` and are not comparable in seconds, only in
ranking.

**The paper's three columns.** HEL Table 6 times PolyMNIST, CUB and bimodal CelebA. PolyMNIST is timed on
real PolyMNIST-mini batches (the file's top-level ``methods``, as before). CUB and CelebA cannot be
downloaded here, but the time of a training step does not depend on the pixels, only on the shapes, the
networks and the batch size: they are timed on **synthetic batches** (uniform images in [0, 1], one-hot texts
of uniformly drawn symbols) with exactly their modalities' shapes (:func:`synthetic_spec`), their networks
and batch size at the given scale, and are marked ``"batches": "synthetic"`` under ``columns``. Timing
PolyMNIST-mini on synthetic batches as well (``synthetic_check``) shows how far that substitution moves the
ratios. Each column's ratios are to HELVAE timed on that column in the same run; the rounds interleave
every column's methods, so a change in the machine's load falls on all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from . import aggregators as agg
from . import datasets as ds
from . import text as tx
from .artefacts import RESULTS_DIR, provenance, read_json, write_json
from .models import METHODS
from .train import batches, build_model, load_data, make_config

#: The columns of HEL Table 6: data set id (as in ``results/paper/hel-table6.json``) -> the paper's heading.
COLUMNS = {"polymnist": "PolyMNIST (M = 5)", "cub": "CUB (M = 2)", "celeba": "CelebA (M = 2)"}
#: The columns timed on synthetic batches (their data sets cannot be downloaded here).
SYNTHETIC_COLUMNS = ("cub", "celeba")
#: CUB caption vocabulary of the MMVAE release (Shi et al. 2019; the default of the CUB text networks in
#: poolvae.networks). Ours, built by poolvae.text from the same captions, drops punctuation and is a little smaller.
CUB_VOCABULARY = 1590
CELEBA_ATTRIBUTES = 40


def synthetic_spec(dataset: str) -> ds.DatasetSpec:
    """The spec of ``dataset`` without its files: the real loader's modalities, shapes and likelihoods.

    CUB's caption vocabulary is :data:`CUB_VOCABULARY` words; CelebA's 40 attributes get placeholder names (a
    training step never reads the labels).
    """
    if dataset == "cub":
        words = tx.SPECIAL_TOKENS + tuple(f"word{k}" for k in range(CUB_VOCABULARY - len(tx.SPECIAL_TOKENS)))
        return ds.cub_spec(tx.Vocabulary(words))
    if dataset == "celeba":
        return ds.celeba_spec([f"attribute_{k}" for k in range(CELEBA_ATTRIBUTES)])
    if dataset.startswith("polymnist"):
        return ds.polymnist_spec(dataset)
    if dataset.startswith("mnist-svhn-text"):
        return ds.mnist_svhn_text_spec()
    raise ValueError(f"no synthetic spec for {dataset!r}; valid: cub, celeba, polymnist(-mini), mnist-svhn-text")


def synthetic_batch(spec: ds.DatasetSpec, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One batch of ``spec``'s shapes: images uniform in [0, 1] (B, C, H, W), texts one-hot rows of uniformly
    drawn symbols (B, L, V), float32 as the loaders give them."""
    out = []
    for m in spec.modalities:
        if m.kind == "image":
            out.append(torch.rand(batch_size, *m.shape, generator=generator))
        else:
            idx = torch.randint(m.shape[-1], (batch_size, m.shape[0]), generator=generator)
            out.append(torch.nn.functional.one_hot(idx, m.shape[-1]).float())  # (B, L, V)
    return out


class _Stepper:
    """One method's model, optimiser and a few fixed batches (real, or synthetic of the data set's shapes)."""

    def __init__(self, method: str, scale: str, seed: int, dataset: str, n_batches: int = 4,
                 synthetic: bool = False):
        self.cfg = make_config(dataset, method, scale, seed=seed)
        self.synthetic = synthetic
        if synthetic:
            spec = synthetic_spec(dataset)
            self.model = build_model(self.cfg, spec)
            gen = torch.Generator().manual_seed(seed)
            self.fixed = [synthetic_batch(spec, self.cfg.batch_size, gen) for _ in range(n_batches)]
        else:
            data = load_data(self.cfg, "train")
            spec = data.dataset.spec if isinstance(data, torch.utils.data.Subset) else data.spec
            self.model = build_model(self.cfg, spec)
            it = batches(data, self.cfg.batch_size, seed, 0)
            self.fixed = [next(it)[1] for _ in range(n_batches)]  # a few real batches, reused
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.shapes = {m.name: list(m.shape) for m in spec.modalities}
        self.times: list[float] = []
        self.calls = 0

    def step(self, record: bool) -> None:
        """One optimiser step (forward, backward, Adam); its wall time is kept when ``record``."""
        mods = self.fixed[self.calls % len(self.fixed)]
        self.calls += 1
        t0 = time.perf_counter()
        out = self.model(mods)
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.opt.step()
        if record:
            self.times.append(time.perf_counter() - t0)

    def row(self) -> dict:
        """The method's row of hel-table6."""
        cfg = self.cfg
        return {"seconds_per_batch": statistics.median(self.times), "batch_size": cfg.batch_size,
                "latent_dim": cfg.latent_dim, "arch": cfg.arch, "K": cfg.K, "timed_steps": len(self.times),
                "config": cfg.__dict__}


def pooling_seconds(M: int, B: int, D: int, rule: str = "hellinger", repeats: int = 20) -> float:
    """Median seconds of forward + backward of one pooling rule on experts (M, B, D)."""
    mu = torch.randn(M, B, D).requires_grad_()
    logvar = torch.randn(M, B, D).requires_grad_()
    fn, times = agg.get_pool(rule), []
    with agg.checks(False):
        for r in range(repeats + 2):
            t0 = time.perf_counter()
            q = fn(mu, logvar)
            (q.mu.sum() + q.logvar.sum()).backward()
            if r >= 2:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rows(steppers: dict[str, _Stepper]) -> dict[str, dict]:
    """Each method's row, with its ratio to HELVAE's median among the same steppers."""
    rows = {m: st.row() for m, st in steppers.items()}
    ref = rows.get("helvae", {}).get("seconds_per_batch")
    for r in rows.values():
        r["ratio_to_helvae"] = r["seconds_per_batch"] / ref if ref else None
    return rows


def _brief(rows: dict[str, dict]) -> dict[str, dict]:
    return {m: {k: r[k] for k in ("seconds_per_batch", "ratio_to_helvae")} for m, r in rows.items()}


def run(scale: str = "cpu", methods=None, steps: int = 10, warmup: int = 3, seed: int = 0,
        dataset: str = "polymnist-mini", rounds: int = 5, columns=SYNTHETIC_COLUMNS, real: bool = True,
        synthetic_check: bool = False) -> dict:
    """Time every method on every column; return the hel-table6 results dictionary.

    ``real``: time ``dataset`` (PolyMNIST-mini) on real batches; its rows are the file's top-level ``methods``
    (the PolyMNIST column). ``columns``: data sets timed on synthetic batches (:data:`SYNTHETIC_COLUMNS`).
    ``synthetic_check``: also time ``dataset`` on synthetic batches. All of it is interleaved: ``rounds`` rounds,
    each timing ``steps`` steps of every method of every column in turn, so a change in the machine's load
    during the run (other processes, frequency scaling) falls on every method alike instead of on whichever ran
    at that moment; the median over all timed steps is reported, and each column's ratios are to its own HELVAE.
    """
    methods = list(METHODS) if methods is None else list(methods)
    for c in columns:
        if c not in SYNTHETIC_COLUMNS:
            raise ValueError(f"unknown synthetic column {c!r}; valid: {', '.join(SYNTHETIC_COLUMNS)}")
    groups: dict[str, dict[str, _Stepper]] = {}
    if real:
        groups["polymnist"] = {m: _Stepper(m, scale, seed, dataset) for m in methods}
    if synthetic_check:
        groups["polymnist-synthetic"] = {m: _Stepper(m, scale, seed, dataset, synthetic=True) for m in methods}
    for c in columns:
        groups[c] = {m: _Stepper(m, scale, seed, c, synthetic=True) for m in methods}
    with agg.checks(False):
        for group in groups.values():
            for st in group.values():
                for _ in range(warmup):
                    st.step(record=False)
        for r in range(rounds):
            for group in groups.values():
                for st in group.values():
                    for _ in range(steps):
                        st.step(record=True)
            for name, group in groups.items():
                print(f"round {r + 1}/{rounds} {name}: " + ", ".join(
                    f"{m} {statistics.median(st.times):.4f}" for m, st in group.items()), flush=True)
    rows = {name: _rows(group) for name, group in groups.items()}
    out = {"item": "hel-table6", "scale": scale, "steps": steps, "rounds": rounds, "warmup": warmup,
           "threads": torch.get_num_threads()}
    if real:
        out.update(dataset=dataset, methods=rows["polymnist"])
        if "helvae" in rows["polymnist"]:
            h = rows["polymnist"]["helvae"]
            pool = pooling_seconds(groups["polymnist"]["helvae"].model.M, h["batch_size"], h["latent_dim"])
            out["helvae_pooling_seconds"] = pool
            out["helvae_pooling_share_of_step"] = pool / h["seconds_per_batch"]
    out["columns"] = {}
    if real or synthetic_check:
        out["columns"]["polymnist"] = {"paper_column": COLUMNS["polymnist"], "dataset": dataset}
    if real:
        out["columns"]["polymnist"].update(batches="real", rows="the top-level 'methods' (with their configs)",
                                           methods=_brief(rows["polymnist"]))
    if synthetic_check:
        check = {"batches": "synthetic", "methods": _brief(rows["polymnist-synthetic"])}
        if real:  # the same methods on real batches in the same run: what the substitution changes
            check["real_batches_same_run"] = _brief(rows["polymnist"])
        out["columns"]["polymnist"]["synthetic_check"] = check
    for c in columns:
        any_stepper = next(iter(groups[c].values()))
        out["columns"][c] = {"paper_column": COLUMNS[c], "dataset": c, "batches": "synthetic",
                             "shapes": any_stepper.shapes, "methods": rows[c]}
    out["provenance"] = provenance(seed=seed, scale=scale)
    return out


def add_columns(table: dict, scale: str = "cpu", methods=None, steps: int = 2, warmup: int = 1, seed: int = 0,
                rounds: int = 5, columns=SYNTHETIC_COLUMNS) -> dict:
    """``table`` (a hel-table6 record timed on real PolyMNIST-mini batches) with the synthetic ``columns``
    timed now, in one run of their own; its PolyMNIST numbers are kept.

    The new run also times PolyMNIST-mini on real and on synthetic batches (``synthetic_check``: how far the
    substitution moves the ratios, measured side by side). Each new column's ratios are to HELVAE on that column
    in the new run; ``columns_run`` records that run.
    """
    if "methods" not in table or table.get("scale") != scale:
        raise ValueError(f"add_columns needs a hel-table6 record of scale {scale} timed on real batches (top-level "
                         f"'methods'); run `python -m poolvae.timing --scale {scale}` first")
    methods = list(table["methods"]) if methods is None else list(methods)
    new = run(scale, methods, steps, warmup, seed, table["dataset"], rounds, columns, real=True,
              synthetic_check=True)
    out = dict(table)
    out["columns"] = {
        "polymnist": {"paper_column": COLUMNS["polymnist"], "dataset": table["dataset"], "batches": "real",
                      "rows": "the top-level 'methods' (with their configs)", "methods": _brief(table["methods"]),
                      "synthetic_check": new["columns"]["polymnist"]["synthetic_check"]},
        **{c: new["columns"][c] for c in columns},
    }
    out["columns_run"] = {k: new[k] for k in ("steps", "rounds", "warmup", "threads", "provenance")}
    out["columns_run"]["note"] = ("CUB and CelebA (and PolyMNIST's synthetic_check, real and synthetic batches) were "
                                  "timed in this run, after the top-level PolyMNIST numbers; each column's ratios are "
                                  "to its own HELVAE")
    return out


def main(argv=None) -> None:
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description="hel-table6: seconds per training batch of every method")
    p.add_argument("--scale", default="cpu", choices=["ci", "cpu", "paper"])
    p.add_argument("--dataset", default="polymnist-mini")
    p.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of --steps steps per method")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--columns", nargs="*", default=list(SYNTHETIC_COLUMNS), choices=list(SYNTHETIC_COLUMNS),
                   help="data sets timed on synthetic batches beside PolyMNIST (default: cub celeba)")
    p.add_argument("--add-columns", action="store_true",
                   help="time only --columns (and a synthetic PolyMNIST check) and add them to the existing --out "
                        "file, keeping its PolyMNIST numbers")
    p.add_argument("--out", default=None, help="output JSON (default results/hel-table6.json)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    path = a.out or RESULTS_DIR / "hel-table6.json"
    if a.add_columns:
        res = add_columns(read_json(path), a.scale, a.methods, a.steps, a.warmup, a.seed, a.rounds, a.columns)
    else:
        res = run(a.scale, a.methods, a.steps, a.warmup, a.seed, a.dataset, a.rounds, a.columns)
    write_json(path, res)
    for c, col in res.get("columns", {}).items():
        print(f"{c} ({col['batches']} batches): " + ", ".join(f"{m} {r['ratio_to_helvae']:.2f}"
                                                            for m, r in col["methods"].items()))
    if "helvae_pooling_share_of_step" in res:
        print(f"Hellinger pooling: {100 * res['helvae_pooling_share_of_step']:.2f}% of HELVAE's step")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
