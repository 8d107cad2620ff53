"""Choose two-class settings on TRAINING data only (no test events are touched).

Takes the fit part of the seed-0 split of an experiment config (default: the MAGIC rare study),
splits it again 75/25 (stratified by chance, seed 123), fits one method with the given parameters
on the 75% and prints ROC AUC and rare efficiency at 1% / 5% bulk acceptance on the 25%.

Usage:
    python examples/tune_two_class.py flow-classifier '{"ensemble": 3}'
    python examples/tune_two_class.py selfsup-flow '{"fit_on": "rare"}' --config examples/magic_rare_flows.yaml

The figures quoted in docs/flow-classifier.md and docs/selfsup-flow.md under "how the defaults
were chosen" come from this script (run with OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from rareflow.config import load_config
from rareflow.detectors import detector_class, get_detector
from rareflow.evaluation.metrics import evaluate_scores
from rareflow.evaluation.runner import load_experiment_data, make_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method")
    ap.add_argument("params", nargs="?", default="{}", help="JSON constructor parameters")
    ap.add_argument("--config", default="examples/magic_rare_flows.yaml")
    ap.add_argument("--seed", type=int, default=0, help="split seed of the experiment")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    ds = load_experiment_data(cfg, 0)
    split = make_split(cfg, ds.y, args.seed)
    X, y = ds.X.to_numpy(float), ds.y
    perm = np.random.default_rng(123).permutation(split.fit_idx)
    n = int(0.75 * len(perm))
    a, b = np.sort(perm[:n]), np.sort(perm[n:])
    params = json.loads(args.params)
    if "progress" in detector_class(args.method)._get_param_names():
        params.setdefault("progress", False)
    t0 = time.perf_counter()
    det = get_detector(args.method, **params).fit(X[a], y[a])
    s = det.decision_function(X[b])
    eff = evaluate_scores(y[b], s, None)["rare_efficiency_at_bulk_acceptance"]
    print(
        f"{args.method} {params}: AUC {roc_auc_score(y[b], s):.4f}, eff@1% {eff['0.01']:.3f}, "
        f"eff@5% {eff['0.05']:.3f} ({int((y[b] == 0).sum())} bulk / {int((y[b] == 1).sum())} rare held out; "
        f"fit {time.perf_counter() - t0:.0f} s)"
    )


if __name__ == "__main__":
    main()
