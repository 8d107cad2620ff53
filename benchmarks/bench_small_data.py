"""What each small-data change buys for flow-classifier's stacked ensemble (issue 18), on TRAINING data.

Rows: the seed-0 training split of ``examples/magic_rare.yaml`` (MAGIC, 70% of the table), never
its test rows. They are split again, stratified, 75% / 25%: the flow-classifier's own fit (with
its 20% validation split for early stopping) sees the 75%, and every variant is judged on the
other 25% (the "check" rows): class NLL :math:`-\\log p(x \\mid y)` (mean, and 1%-trimmed), ROC
AUC of the ratio and gamma efficiency at 1% hadron acceptance. Every variant starts from the
same initial weights and member seeds (:func:`rareflow.flows.ensemble.train_ensemble`):

* ``baseline``: batch 256, lr 1e-3, all validation rows every epoch (the defaults);
* ``fixed validation subset``: early stopping on a seeded subset of ``--valid-rows`` rows;
* ``batch 1024, sqrt lr``: :math:`\\eta = 10^{-3}\\sqrt{1024/256}` (Krizhevsky 2014; Hoffer et al. 2017);
* ``batch 1024, sqrt lr, subset``: both;
* ``batch 512, sqrt lr`` and ``batch 1024, linear lr (4e-3)`` (Goyal et al. 2017's linear rule).

The per-step work already has no DataLoader and one loss synchronisation per epoch (the stacked
loop gathers each member's permuted rows once per epoch and slices them per step).

Usage: ``python benchmarks/bench_small_data.py [--ensemble 5] [--epochs 100] [--threads 1] [--results]``
(smoke: ``--ensemble 1 --epochs 2 --rows 3000``). ``--results`` writes the section
"## Small-data path (issue 18)" of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from _common import REPO, load, publish

SECTION = "## Small-data path (issue 18)"
VARIANTS = {
    "baseline (batch 256, lr 1e-3)": dict(batch_size=256),
    "fixed validation subset": dict(batch_size=256, subset=True),
    "batch 1024, sqrt lr": dict(batch_size=1024, lr_reference_batch=256),
    "batch 1024, sqrt lr, subset": dict(batch_size=1024, lr_reference_batch=256, subset=True),
    "batch 512, sqrt lr": dict(batch_size=512, lr_reference_batch=256),
    "batch 1024, linear lr (4e-3)": dict(batch_size=1024, lr=4e-3),
}


def training_rows(rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    from rareflow.config import load_config
    from rareflow.evaluation.runner import load_experiment_data, make_split

    cfg = load_config(REPO / "examples" / "magic_rare.yaml")
    ds = load_experiment_data(cfg, 0)
    fit = make_split(cfg, ds.y, 0).fit_idx  # the training split only
    if rows:
        fit = np.random.default_rng(0).permutation(fit)[:rows]
    return ds.X.to_numpy(float)[fit], np.asarray(ds.y).astype(int)[fit]


def check_metrics(model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    with torch.no_grad():
        lp0, lp1 = (t.double().numpy() for t in model.eval().log_prob_pair(torch.as_tensor(X, dtype=torch.float32)))
    nll = -np.where(y > 0, lp1, lp0)
    s = lp1 - lp0
    cut = np.quantile(s[y == 0], 0.99)
    return {"nll": float(nll.mean()), "nll_trim": float(np.sort(nll)[: int(0.99 * len(nll))].mean()),
            "auc": float(roc_auc_score(y, s)), "eff": float((s[y == 1] > cut).mean())}  # fmt: skip


def main() -> None:
    from rareflow.detectors import get_detector
    from rareflow.flows.ensemble import class_context_nll_loss, train_ensemble
    from rareflow.training import INIT, TRAIN, make_batch, seeded, stratified_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ensemble", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--rows", type=int, default=None, help="subsample the training split (smoke runs only)")
    ap.add_argument("--valid-rows", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default=",".join(str(i) for i in range(len(VARIANTS))), help="indices, e.g. 0,2")
    ap.add_argument("--seed", type=int, default=0, help="the detector's random_state (initial weights, member seeds)")
    ap.add_argument("--results", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    X, y = training_rows(args.rows)
    fit, check = stratified_split(y, 0.25, 12345)
    det = get_detector("flow-classifier", ensemble=args.ensemble, random_state=args.seed)
    with seeded(det._seed(INIT)):
        init = det._build_model(X[fit], y[fit], None)
    tr, va = det._split(X[fit], y[fit])
    yf = y[fit].astype(np.float32)
    train_b, valid_b = make_batch(X[fit], tr, yf), make_batch(X[fit], va, yf)
    seeds = [det._member_seed(TRAIN, k) for k in range(args.ensemble)]
    warm = copy.deepcopy(init)  # first-call costs (vmap tracing, allocator) are not fitting time
    train_ensemble(list(warm.models), class_context_nll_loss(), train_b.index(slice(0, 512)), epochs=1, seeds=seeds,
                   progress=False, device=args.device)  # fmt: skip
    before, lines = load(), []
    names = [list(VARIANTS)[int(i)] for i in args.variants.split(",")]
    for name in names:
        v = {"lr": 1e-3, **VARIANTS[name]}
        model = copy.deepcopy(init)
        t0 = time.perf_counter()
        hs = train_ensemble(
            list(model.models), class_context_nll_loss(), train_b, valid_b, val_loss_fn=class_context_nll_loss(trim=0.01),
            epochs=args.epochs, weight_decay=1e-5, seeds=seeds, progress=False, device=args.device,
            valid_rows=args.valid_rows if v.pop("subset", False) else None, **v,
        )  # fmt: skip
        sec = time.perf_counter() - t0
        m = check_metrics(model.to("cpu"), X[check], y[check])
        epochs = "/".join(str(h["epochs_run"]) for h in hs)
        lines.append(f"| {name} | {sec:.1f} | {epochs} | {m['nll']:.3f} | {m['nll_trim']:.3f} | {m['auc']:.4f} | {m['eff']:.3f} |")
        print(lines[-1], flush=True)
    publish(SECTION, [
        f"flow-classifier defaults (conditional RealNVP 8 x (128, 128), ELU), {args.ensemble} member(s) stacked, at most "
        f"{args.epochs} epochs, patience 10, {args.threads} thread(s), device {args.device}, random_state {args.seed}; fit on 75% of the seed-0 "
        f"training split of `examples/magic_rare.yaml` ({len(fit)} rows), judged on the other 25% ({len(check)} rows, "
        f"training data); subset = {args.valid_rows} validation rows.", "",
        "| variant | fit s | epochs run (per member) | check NLL | check NLL (1% trimmed) | check AUC | eff @ 1% hadrons |",
        "|---|---:|---|---:|---:|---:|---:|", *lines,
    ], ("torch", "zuko"), load_before=before, write=args.results)  # fmt: skip


if __name__ == "__main__":
    main()
