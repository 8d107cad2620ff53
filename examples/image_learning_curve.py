"""Learning curve: the best image method (cnn-classifier, optionally hybrid) vs gbdt on Hillas.

Simulates one event set with images, holds out a fixed test set (all its gammas by default;
``--test-rare`` subsamples them to a rare fraction), and trains each method on the first N training events
for N in ``--sizes`` (10^4 .. 10^5 by default), printing AUC and the rare efficiency at 1% bulk
acceptance per size — where, if anywhere, images overtake the Hillas parameters.

    python examples/image_learning_curve.py                       # full curve (hours on 2 cores)
    python examples/image_learning_curve.py --sizes 300 600 --test 400 --epochs 1   # smoke run
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rareflow.detectors import get_detector
from rareflow.evaluation.metrics import evaluate_scores
from rareflow.iact.images import GridMapping, ImagesWithFeatures, log1p_charge
from rareflow.iact.simulate import simulate_events
from rareflow.io.schema import HILLAS_COLUMNS

METHODS = ("gbdt (Hillas)", "cnn-classifier", "cnn-classifier (hybrid)")


def simulate(n: int, seed: int):
    """Gamma/proton events with images; rows with a valid Hillas fit; (images, table, y)."""
    sim = simulate_events(n_events=n, rare_fraction=0.5, seed=seed, muon_fraction=0.0, return_images=True)
    table = sim.table
    keep = (table["label"].isin(["gamma", "proton"]) & table["is_valid"]).to_numpy()
    feats = [c for c in HILLAS_COLUMNS if c in table.columns]
    grids = GridMapping.from_camera(sim.camera).to_grid(log1p_charge(sim.images[keep]))
    X = table.loc[keep, feats].reset_index(drop=True)
    y = (table.loc[keep, "label"].to_numpy() == "gamma").astype(int)
    return grids, X, y


def fit_score(method: str, grids, X, y, tr, te, epochs: int, seed: int) -> np.ndarray:
    if method == "gbdt (Hillas)":
        return get_detector("gbdt", random_state=seed).fit(X.iloc[tr], y[tr]).decision_function(X.iloc[te])
    hybrid = method.endswith("(hybrid)")
    det = get_detector("cnn-classifier", hillas=hybrid, random_state=seed, training={"epochs": epochs, "progress": False})
    data = ImagesWithFeatures(grids, X) if hybrid else grids
    return det.fit(data[tr], y[tr]).decision_function(data[te])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000])
    ap.add_argument("--test", type=int, default=20_000, help="test events (bulk) before the rare subsampling")
    ap.add_argument("--test-rare", type=float, default=None,
                    help="subsample the test gammas to this fraction (default: all of them; AUC and the "
                         "efficiency at a bulk acceptance do not depend on the mix, and more gammas = smaller errors)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="seeds the simulation, the split and every fit")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                    help=f"a subset of {', '.join(METHODS)}")
    args = ap.parse_args()
    grids, X, y = simulate(int(3.0 * (max(args.sizes) + 2 * args.test)), args.seed)  # ~40% of events fail cleaning
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    test_pool, train_pool = order[: 2 * args.test], order[2 * args.test :]
    bulk, rare = test_pool[y[test_pool] == 0][: args.test], test_pool[y[test_pool] == 1]
    n_rare = len(rare) if args.test_rare is None else max(int(round(args.test_rare * len(bulk))), 5)
    te = np.r_[bulk, rare[:n_rare]]
    print(f"test: {len(bulk)} bulk, {len(te) - len(bulk)} rare; training pool {len(train_pool)} events")
    print(f"{'N train':>8} | {'method':<26} | {'AUC':>6} | {'rare eff @1% bulk':>17} | {'fit+score s':>11}")
    for n in args.sizes:
        if n > len(train_pool):
            print(f"(only {len(train_pool)} training events for N = {n}: simulate more)")
        tr = train_pool[:n]
        for m in args.methods:
            t0 = time.perf_counter()
            s = fit_score(m, grids, X, y, tr, te, args.epochs, args.seed)
            res = evaluate_scores(y[te], s, None)
            eff = res["rare_efficiency_at_bulk_acceptance"].get("0.01")
            print(f"{n:>8} | {m:<26} | {res['auc']:.3f} | {float(eff):>17.3f} | {time.perf_counter() - t0:>11.1f}")


if __name__ == "__main__":
    main()
