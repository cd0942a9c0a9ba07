"""The accelerator check, one prepared script: train, evaluate, resume and benchmark on a device, with a log.

    python -m poolvae.gpu_check [--device cuda] [--out-dir results/bench] [--fast]
    make gpu-check                 # on a machine with a GPU (sized for under 8 minutes; not yet run on one)
    make gpu-check DEVICE=cpu      # the same script on the CPU, in its fast mode (about a minute)

What it does, in order, each part timed and logged:

1. **train + evaluate**: ci-scale runs of HELVAE, MoPoE and MMVAE+ on PolyMNIST-mini, trained on the device
   (:func:`poolvae.train.train`) and evaluated there (:func:`poolvae.evaluate.evaluate_run`, coherence classifiers
   trained on the device too); every number finite and ``environment.json`` naming the device.
2. **resume**: a HELVAE ci run interrupted inside its second epoch and resumed ends with the weights of an
   uninterrupted run (deterministic kernels on, ``torch.use_deterministic_algorithms``; the largest difference is
   reported and must be at most 1e-6); on an accelerator also a run interrupted on the CPU and resumed on the device
   (its checkpoint loads with ``map_location``; it finishes with finite numbers, not the same weights: devices draw
   different noise).
3. **bench-train** (:mod:`poolvae.bench_train`) at the cpu scale's and the paper's settings, HELVAE also under bf16
   autocast and ``torch.compile`` at the paper's, written to ``<out-dir>/train-<device>.json``.

Everything trains in a temporary folder: nothing lands in ``results/runs`` or ``checkpoints/``. Writes
``<out-dir>/gpu-check-<device>.log`` (all output) and ``<out-dir>/gpu-check-<device>.json`` (each check: passed,
seconds, numbers) and exits 1 when a check fails. ``--fast`` (the default on the CPU) shrinks part 3 to a tiny
setting (conv28, width 4, latent 4, batch 16) so that the script is known to run end to end before an accelerator
is lent; the numbers it benchmarks then are no measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS for the resume check (set early)

import torch  # noqa: E402

from . import bench_train  # noqa: E402
from .artefacts import RESULTS_DIR, provenance, write_json  # noqa: E402
from .train import device_record, make_config, resolve_device, run_path, train  # noqa: E402

METHODS = ("helvae", "mopoe", "mmvaeplus")
RESUME_TOLERANCE = 1e-6
#: The fast mode's benchmark setting (part 3 on the CPU): every method, tiny networks.
TINY = {"tiny": dict(dataset="polymnist-mini", scale="ci", overrides={"batch_size": 16, "latent_dim": 4, "width": 4},
                     data=[("polymnist-mini", "ci")], description="gpu_check --fast: tiny networks, no measurement")}


class _Tee(io.TextIOBase):
    """Write to several text streams at once (the terminal and the log)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
            st.flush()
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


def _finite(values) -> bool:
    """Whether every number in a nested dict/list is finite (strings and None are skipped)."""
    if isinstance(values, dict):
        return all(_finite(v) for v in values.values())
    if isinstance(values, (list, tuple)):
        return all(_finite(v) for v in values)
    if isinstance(values, bool) or not isinstance(values, (int, float)):
        return True
    return math.isfinite(values)


def check_train_evaluate(device: torch.device, work: Path) -> dict:
    """Part 1: ci-scale train + evaluate of :data:`METHODS` on ``device``."""
    from .evaluate import evaluate_run

    out = {}
    for method in METHODS:
        cfg = make_config("polymnist-mini", method, "ci", device=str(device))
        t0 = time.perf_counter()
        run_dir = train(cfg, work / "runs", work / "ckpt", progress=False)
        t1 = time.perf_counter()
        ev_file = evaluate_run(run_dir, checkpoint_dir=work / "ckpt", classifier_dir=work / "classifiers",
                               classifier_results_dir=work / "classifier-results", progress=False,
                               overrides={"device": str(device)})
        t2 = time.perf_counter()
        metrics = json.loads((run_dir / "metrics.json").read_text())
        env = json.loads((run_dir / "environment.json").read_text())
        ev = json.loads(Path(ev_file).read_text())
        ok = metrics["finished"] and env["device"] == str(device) and _finite(metrics["final"]) and \
            _finite(ev["metrics"]) and ev["provenance"]["device"] == str(device)
        out[method] = {"passed": bool(ok), "train_seconds": t1 - t0, "evaluate_seconds": t2 - t1,
                       "final": metrics["final"], "environment_device": env["device"],
                       "accelerator": env.get("accelerator"), "evaluation_device": ev["provenance"]["device"],
                       "evaluation_seconds": ev["seconds"]}
        print(f"train+evaluate {method}: {'ok' if ok else 'FAILED'} (train {t1 - t0:.1f} s, evaluate {t2 - t1:.1f} s, "
              f"test objective {metrics['final'].get('test_objective')})", flush=True)
    return {"passed": all(r["passed"] for r in out.values()), "methods": out}


def _max_difference(a: dict, b: dict) -> float:
    """Largest absolute difference between two state dicts' floating tensors."""
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())


def _weights(work: Path, sub: str, cfg) -> dict:
    return torch.load(work / sub / "ckpt" / run_path(cfg) / "last.pt", map_location="cpu", weights_only=False)["model"]


def check_resume(device: torch.device, work: Path) -> dict:
    """Part 2: an interrupted run resumes to the weights of an uninterrupted one (and across devices)."""
    cfg = make_config("polymnist-mini", "helvae", "ci", device=str(device))
    steps = math.ceil(cfg.train_limit / cfg.batch_size)  # one epoch; interrupt inside the second
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        train(cfg, work / "whole" / "runs", work / "whole" / "ckpt", progress=False)
        with contextlib.suppress(KeyboardInterrupt):
            train(cfg, work / "cut" / "runs", work / "cut" / "ckpt", progress=False, stop_after_steps=steps + 1)
        train(cfg, work / "cut" / "runs", work / "cut" / "ckpt", progress=False)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    diff = _max_difference(_weights(work, "whole", cfg), _weights(work, "cut", cfg))
    a, b = (_weights(work, k, cfg) for k in ("whole", "cut"))
    bitwise = all(torch.equal(a[k], b[k]) for k in a)
    out = {"interrupted_at_step": steps + 1, "max_abs_difference": diff, "bitwise": bitwise,
           "tolerance": RESUME_TOLERANCE, "passed": diff <= RESUME_TOLERANCE}
    print(f"resume on {device}: max |difference| {diff:.3g} (bitwise {bitwise}): {'ok' if out['passed'] else 'FAILED'}",
          flush=True)
    if device.type != "cpu":  # written on the CPU, resumed on the device
        moved = make_config("polymnist-mini", "helvae", "ci", device="cpu")
        with contextlib.suppress(KeyboardInterrupt):
            train(moved, work / "moved" / "runs", work / "moved" / "ckpt", progress=False, stop_after_steps=steps + 1)
        run_dir = train(make_config("polymnist-mini", "helvae", "ci", device=str(device)), work / "moved" / "runs",
                        work / "moved" / "ckpt", progress=False)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        ok = metrics["finished"] and _finite(metrics["final"])
        out["cpu_to_device"] = {"passed": bool(ok), "final": metrics["final"],
                                "max_abs_difference_to_device_run": _max_difference(_weights(work, "moved", cfg), a)}
        out["passed"] = out["passed"] and ok
        print(f"resume cpu -> {device}: {'ok' if ok else 'FAILED'}", flush=True)
    return out


def check_bench(device: torch.device, out_dir: Path, fast: bool) -> dict:
    """Part 3: bench-train on ``device``; writes ``<out_dir>/train-<device type>.json`` (the tiny setting: fast)."""
    if fast:
        res = bench_train.run(str(device), ["tiny"], steps=1, rounds=2, variants=("bf16",), settings=TINY)
    else:
        res = bench_train.run(str(device), ["cpu", "paper"], steps=5, rounds=6, variants=("bf16", "compile"),
                              variant_scales=("paper",))
    path = out_dir / f"train-{device.type}.json"
    write_json(path, res)
    print("\n".join(bench_train.summary_lines(res)), flush=True)
    rows = [r for block in res["settings"].values() for r in (*block["methods"].values(), *block["floors"].values())]
    ok = all(_finite(r) for r in rows) and any("step_seconds" in r for r in rows)
    return {"passed": bool(ok), "file": str(path), "targets": res["targets"]}


def run_checks(device: str = "cuda", out_dir: Path = RESULTS_DIR / "bench", fast: bool | None = None) -> dict:
    """All three parts on ``device``; each part's record, whether it passed and its seconds (an exception fails the
    part, its traceback logged, and the others still run)."""
    dev = resolve_device(device)
    fast = dev.type == "cpu" if fast is None else fast
    out_dir = Path(out_dir)
    record = {"device": device_record(dev), "fast": fast, "checks": {}}
    print(f"gpu-check on {dev} ({record['device'].get('accelerator') or record['device']['processor']}), "
          f"torch {torch.__version__}, fast={fast}", flush=True)
    with tempfile.TemporaryDirectory(prefix="poolvae-gpu-check-") as tmp:
        work = Path(tmp)
        for name, fn in (("train_evaluate", lambda: check_train_evaluate(dev, work)),
                         ("resume", lambda: check_resume(dev, work)),
                         ("bench_train", lambda: check_bench(dev, out_dir, fast))):
            t0 = time.perf_counter()
            try:
                result = fn()
            except Exception as err:  # a failing part is reported, and the others still run
                traceback.print_exc()
                result = {"passed": False, "error": f"{type(err).__name__}: {err}"}
            result["seconds"] = time.perf_counter() - t0
            record["checks"][name] = result
            print(f"== {name}: {'passed' if result['passed'] else 'FAILED'} in {result['seconds']:.1f} s", flush=True)
    record["passed"] = all(c["passed"] for c in record["checks"].values())
    record["provenance"] = provenance(scale="ci")
    return record


def main(argv=None) -> int:
    """Command line; see the module docstring. Returns 0 when every check passed, else 1."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (fast mode) | auto")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR / "bench", help="where the JSON files and the log go")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=None,
                   help="a tiny benchmark instead of the cpu and paper settings (default: on the CPU only)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        dev = resolve_device(a.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    a.out_dir.mkdir(parents=True, exist_ok=True)
    log_path = a.out_dir / f"gpu-check-{dev.type}.log"
    with open(log_path, "w") as log, contextlib.redirect_stdout(_Tee(sys.stdout, log)), \
            contextlib.redirect_stderr(_Tee(sys.stderr, log)):
        record = run_checks(str(dev), a.out_dir, a.fast)
        record["log"] = str(log_path)
        write_json(a.out_dir / f"gpu-check-{dev.type}.json", record)
        print(f"gpu-check: {'all passed' if record['passed'] else 'FAILED'}; wrote {a.out_dir}", flush=True)
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
