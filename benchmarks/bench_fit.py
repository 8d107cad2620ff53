"""Fit time of the two-class / one-class methods side by side on MAGIC's training split (issue 18).

Every method is fitted on the same rows — the seed-0 training part of ``examples/magic_rare.yaml``
(70% of the MAGIC table, both classes) — with its default parameters, in a fresh child process
per (method, threads) so that every method runs with the same threads (``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, torch's ``n_threads``) and nothing is shared between fits. Each row reports
the fit's wall time, its ratio to gbdt's at the same threads, and the quality of what was fitted
on the test part of the split (ROC AUC and the gamma efficiency at 1% hadron acceptance, cut on
the test hadrons, unweighted), so that a speed-up is only read next to equal quality.

``--baseline SRC`` adds rows for another checkout's ``src`` directory (e.g. a worktree of commit
d6d2ce4, before the stacked flow ensemble): ``git worktree add /tmp/d6d2ce4 d6d2ce4`` then
``--baseline /tmp/d6d2ce4/src --baseline-methods flow-classifier``.

Usage::

    python benchmarks/bench_fit.py [--threads 1,2] [--methods gbdt,flow-classifier,...]
                                   [--epochs N] [--rows N] [--device cpu|cuda] [--results]

``--epochs`` caps every torch method's epochs and ``--rows`` subsamples the training rows: smoke
runs only (``--epochs 1 --rows 2000``), never figures. ``--results`` writes the section
"## Fit time (issue 18)" of ``benchmarks/RESULTS.md`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from _common import REPO, load, publish

METHODS = ("flow-classifier", "selfsup-flow", "flow", "autoencoder", "nn-classifier", "gbdt")
SECTION = "## Fit time (issue 18)"
CONFIG = REPO / "examples" / "magic_rare.yaml"


def worker(method: str, threads: int, epochs: int | None, rows: int | None, device: str) -> dict[str, float]:
    """Fit ``method`` on the split's training rows; its fit seconds, test AUC and eff@1% hadron acceptance."""
    import torch
    from sklearn.metrics import roc_auc_score

    from rareflow.config import load_config
    from rareflow.detectors import detector_class, get_detector
    from rareflow.evaluation.runner import load_experiment_data, make_split

    torch.set_num_threads(threads)
    cfg = load_config(CONFIG)
    ds = load_experiment_data(cfg, 0)
    split = make_split(cfg, ds.y, 0)
    X, y = ds.X.to_numpy(float), np.asarray(ds.y).astype(int)
    fit = split.fit_idx if rows is None else np.random.default_rng(0).permutation(split.fit_idx)[:rows]
    params: dict = {}
    if "training" in detector_class(method)._get_param_names():
        params["training"] = {"progress": False, "n_threads": threads, "device": device}
        if epochs is not None:
            params["training"]["epochs"] = epochs
    det = get_detector(method, random_state=0, **params)
    t0 = time.perf_counter()
    det.fit(X[fit], y[fit])
    seconds = time.perf_counter() - t0
    test = split.test_idx
    s, yt = det.decision_function(X[test]), y[test]
    cut = np.quantile(s[yt == 0], 0.99)  # 1% of the test hadrons above the cut
    return {"seconds": seconds, "auc": float(roc_auc_score(yt, s)), "eff": float((s[yt == 1] > cut).mean())}


def run_child(method: str, threads: int, args: argparse.Namespace, src: str | None) -> dict[str, float]:
    """One fit in a fresh process with ``threads`` threads everywhere (``src``: another checkout)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "PYTHONPATH": src or str(REPO / "src")}  # fmt: skip
    cmd = [sys.executable, __file__, "--worker", method, "--threads", str(threads), "--device", args.device]
    cmd += ["--epochs", str(args.epochs)] if args.epochs else []
    cmd += ["--rows", str(args.rows)] if args.rows else []
    out = subprocess.run(cmd, env=env, cwd=REPO / "benchmarks", capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{method} ({threads} threads) failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict[tuple[str, int], dict[str, float]], threads: list[int]) -> list[str]:
    lines = ["| method | threads | fit s | fit / gbdt | test AUC | eff @ 1% hadrons |", "|---|---:|---:|---:|---:|---:|"]
    for t in threads:
        ref = results.get(("gbdt", t), {}).get("seconds")
        for (name, tt), r in results.items():
            if tt == t:
                ratio = f"{r['seconds'] / ref:.1f}x" if ref else "n/a"
                lines.append(f"| {name} | {t} | {r['seconds']:.1f} | {ratio} | {r['auc']:.3f} | {r['eff']:.3f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (each method runs with each)")
    ap.add_argument("--epochs", type=int, default=None, help="cap on torch epochs (smoke runs only)")
    ap.add_argument("--rows", type=int, default=None, help="subsample the training rows (smoke runs only)")
    ap.add_argument("--device", default="cpu", help="torch device of the torch methods: cpu, cuda, cuda:N")
    ap.add_argument("--baseline", default=None, help="another checkout's src directory, e.g. /tmp/d6d2ce4/src")
    ap.add_argument("--baseline-methods", default="flow-classifier")
    ap.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, int(args.threads), args.epochs, args.rows, args.device)))
        return
    threads = [int(t) for t in args.threads.split(",")]
    before = load()
    results: dict[tuple[str, int], dict[str, float]] = {}
    for t in threads:
        for method in args.methods.split(","):
            results[(method, t)] = run_child(method, t, args, None)
            print(f"{method} ({t} threads): {results[(method, t)]}", file=sys.stderr, flush=True)
        if args.baseline:
            for method in args.baseline_methods.split(","):
                results[(f"{method} @ baseline", t)] = run_child(method, t, args, args.baseline)
    smoke = " SMOKE RUN (capped epochs / subsampled rows): not figures." if args.epochs or args.rows else ""
    publish(SECTION, [
        f"Seed-0 training split of `examples/magic_rare.yaml` (MAGIC, 70% of the table, both classes), default "
        f"parameters, device {args.device}, one fresh process per fit; quality on the split's test rows.{smoke}"
        + (f" Baseline: `{args.baseline}`." if args.baseline else ""), "",
        *table(results, threads),
    ], ("torch", "zuko", "scikit-learn"), load_before=before, write=args.results)  # fmt: skip


if __name__ == "__main__":
    main()
