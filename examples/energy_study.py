"""Energy study (issue 17): every method per energy bin and by differential sensitivity.

Runs ``rareflow compare`` with ``examples/energy_study.yaml`` (the simulator, >= 1e5 events,
per-bin cuts at 70 % gamma efficiency chosen on training data, 50 h sensitivity with pyirf), then
prints from metrics.json, per bin, each method's bulk acceptance and sensitivity and which method
wins there — the numbers the study's text must be written from.

Usage:
    python examples/energy_study.py --out out/energy_study                      # full size (long)
    python examples/energy_study.py --n-events 5000 --seeds 0 --out out/energy_smoke
    python examples/energy_study.py --table out/energy_study/metrics.json         # the table only
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

CONFIG = Path(__file__).with_name("energy_study.yaml")


def _run(args: argparse.Namespace) -> Path:
    from rareflow.config import load_config, parse_config
    from rareflow.evaluation.compare import compare

    cfg = load_config(CONFIG)
    raw = cfg.model_dump(exclude_unset=True)
    if args.n_events:
        raw["data"]["simulate"]["n_events"] = args.n_events
    if args.seeds:
        raw["scenario"]["seeds"] = [int(s) for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    paths = compare(parse_config(raw, str(CONFIG)), args.out)
    print(f"compare took {time.perf_counter() - t0:.0f} s; report: {paths['report']}")
    return Path(args.out) / "metrics.json"


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def table(metrics: Path) -> str:
    """Markdown: per bin, bulk acceptance at the per-bin cut and relative sensitivity per method."""
    doc = json.loads(metrics.read_text())
    per_bin, sens = doc["per_bin"], doc.get("sensitivity") or {}
    methods = list(per_bin["methods"])
    lines = [f"Per-bin cut: {per_bin['rule']} = {per_bin['value']} (training data); bin column {per_bin['column']}.",
             "", "| E [TeV] | " + " | ".join(f"{m}: bulk acc / rel. sens." for m in methods) + " | best acc | best sens |",
             "|---" * (len(methods) + 3) + "|"]  # fmt: skip
    for i, row in enumerate(per_bin["methods"][methods[0]]):
        label = f"{row['low']:.3g}–{row['high']:.3g}" + ("°" if row["low_statistics"] else "") + ("ᶠ" if row["cut_filled"] else "")
        if not row["n_test_bulk"]:  # no test proton in the bin: no acceptance, sensitivity min-signal only
            lines.append(f"| {label} | " + " | ".join("no protons" for _ in methods) + " | – | – |")
            continue
        acc = {m: per_bin["methods"][m][i]["bulk_acceptance_mean"] for m in methods}
        rel = {m: (sens.get("methods", {}).get(m) or [{}] * (i + 1))[i].get("relative_sensitivity_mean") for m in methods}
        cells = [f"{_num(acc[m])} / {_num(rel[m])}" for m in methods]
        fair = not (row["cut_filled"] or row["low_statistics"])  # equal gamma efficiency: acceptances compare
        best_a = min((m for m in methods if acc[m] is not None), key=lambda m: acc[m], default="–") if fair else "–"
        best_s = min((m for m in methods if rel[m] is not None), key=lambda m: rel[m], default="–")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {best_a} | {best_s} |")
    lines += ["", "Integrated over energy (test set, mean ± std over seeds; efficiency at 1 % proton acceptance, "
              "cut on the test protons; fit time per seed):", "",
              "| method | ROC AUC | gamma eff @ 1 % protons | fit s |", "|---|---|---|---|"]
    for m, r in doc["methods"].items():
        e, s = r["rare_efficiency_at_bulk_acceptance"]["0.01"], r["rare_efficiency_at_bulk_acceptance_std"]["0.01"]
        lines.append(f"| {m} | {r['auc']:.4f} ± {r['auc_std']:.4f} | {e:.3f} ± {s:.3f} | {r['fit_seconds']:.0f} |")
    exp = sens.get("expected") or {}
    lines += ["", "° fewer than 20 test events of a class in the bin (low statistics); "
              "ᶠ too few training events of the rule's class: the pooled cut (pyirf's fill value) is used; "
              "– : no gamma passes the cut (no sensitivity).",
              f"Expected rare fraction from the spectra: {_num(exp.get('rare_fraction'))} "
              f"(configured test fraction {sens.get('configured_test_rare_fraction')})."]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/energy_study")
    ap.add_argument("--n-events", type=int, default=None, help="override the config's 100000 events")
    ap.add_argument("--seeds", default=None, help="override the seeds, e.g. 0 or 0,1")
    ap.add_argument("--table", type=Path, default=None, help="only print the table of this metrics.json")
    args = ap.parse_args()
    print(table(args.table if args.table else _run(args)))


if __name__ == "__main__":
    main()
