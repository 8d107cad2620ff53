"""The same fitted scores at another test rare fraction, without refitting.

In the rare scenario with ``fraction_mode: weights`` the test *events* and every method's scores
and cuts do not depend on the test rare fraction f: only the rare events' weight
w_r = f / (1 - f) * N_bulk / N_rare does (docs/scenarios.md). So a compare run at f = 1e-3 gives the
study at f = 1e-2 by re-weighting its ``scores.parquet`` — ROC AUC and the efficiencies stay the
same, AP, purity and the expected Li & Ma significance change.

Usage:
    python examples/reweight_study.py out/magic_rare_flows --fraction 0.01 --out out/magic_rare_flows_1e-2.json
    python examples/results_table.py --full out/magic_rare_flows_1e-2.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from rareflow.evaluation.metrics import evaluate_scores
from rareflow.evaluation.summary import dumps, metrics_document


def reweight(scores: pd.DataFrame, fraction: float, n_events: float, alpha: float) -> list[dict]:
    rows = []
    for (method, seed), g in scores.groupby(["method", "seed"], sort=False):
        y = g["y"].to_numpy()
        n_b, n_r = float((y == 0).sum()), float((y == 1).sum())
        w = np.where(y == 1, fraction / (1 - fraction) * n_b / n_r, 1.0)
        m = evaluate_scores(y, g["score"].to_numpy(), w, threshold=float(g["threshold"].iloc[0]),
                            significance_events=n_events, significance_alpha=alpha)  # fmt: skip
        rows.append({"method": method, "seed": int(seed), **m})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="output folder of a rareflow compare run (weights mode)")
    ap.add_argument("--fraction", type=float, required=True, help="new test rare fraction")
    ap.add_argument("--out", type=Path, required=True, help="metrics.json to write")
    args = ap.parse_args()
    doc = json.loads((args.run / "metrics.json").read_text())
    if doc["scenario"].get("fraction_mode") != "weights":
        raise SystemExit(f"{args.run}: only runs with fraction_mode: weights can be re-weighted")
    sig = doc.get("significance", {"n_events": 1e6, "alpha": 0.2})
    scores = pd.read_parquet(args.run / "scores.parquet")
    per_seed = reweight(scores, args.fraction, float(sig["n_events"]), float(sig["alpha"]))
    old = {(r["method"], r["seed"]): r for r in doc["per_seed"]}
    for row in per_seed:  # fit time and scoring rate come from the original run
        prev = old[(row["method"], row["seed"])]
        row.update(fit_seconds=prev["fit_seconds"], score_events_per_second=prev["score_events_per_second"])
    scenario = dict(doc["scenario"], test_rare_fraction=args.fraction)
    out = metrics_document(dataset=doc["dataset"], scenario=scenario, seeds=doc["seeds"], per_seed=per_seed,
                           extra={"reweighted_from": str(args.run)})  # fmt: skip
    args.out.write_text(dumps(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
