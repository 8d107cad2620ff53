"""Print a Markdown table (methods x key metrics, mean ± std over seeds) from compare outputs.

Usage: python examples/results_table.py [--full] out/magic_rare/metrics.json [more metrics.json ...]
The README's MAGIC table is this script's output after running the example configs. ``--full``
adds what the cut chosen on training data does on the test set (rare efficiency, bulk
acceptance, Q) and the fit time: the rare-scenario study's table (examples/RARE_STUDY.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _pm(v: dict, key: str, digits: int = 3) -> str:
    m, s = v.get(key), v.get(f"{key}_std")
    if m is None:
        return "–"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if s else f"{m:.{digits}f}"


def rows(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    sc = doc["scenario"]
    what = f"{sc['kind']}" + (f", fit_on {sc['fit_on']}" if sc["kind"] == "anomaly" else f", test fraction {sc['test_rare_fraction']:g}")
    out = []
    for name, v in doc["methods"].items():
        eff = v["rare_efficiency_at_bulk_acceptance"]
        eff_s = v["rare_efficiency_at_bulk_acceptance_std"]
        out.append(
            f"| {what} | {name} | {_pm(v, 'auc')} | {eff['0.01']:.3f} ± {eff_s['0.01']:.3f} | "
            f"{_pm(v, 'bulk_acceptance_at_threshold', 4)} | {_li_ma(doc, v)} |"
        )
    return out


def _li_ma(doc: dict, v: dict) -> str:
    """Li & Ma only where the test rare fraction stands for an observation (the rare scenario):
    the anomaly scenario's balanced test set would give huge values for any AUC."""
    return _pm(v, "li_ma_significance", 1) if doc["scenario"]["kind"] == "rare" else "n/a (balanced test)"


def full_rows(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    frac = doc["scenario"].get("test_rare_fraction")
    out = []
    for name, v in doc["methods"].items():
        eff = v["rare_efficiency_at_bulk_acceptance"]
        eff_s = v["rare_efficiency_at_bulk_acceptance_std"]
        out.append(
            f"| {frac:g} | {name} | {_pm(v, 'auc')} | {eff['0.01']:.3f} ± {eff_s['0.01']:.3f} | "
            f"{_pm(v, 'rare_efficiency_at_threshold')} | {_pm(v, 'bulk_acceptance_at_threshold', 4)} | "
            f"{_pm(v, 'q_at_threshold', 2)} | {_li_ma(doc, v)} | {_pm(v, 'fit_seconds', 0)} |"
        )
    return out


def main_full(paths: list[str]) -> None:
    print("| test rare fraction | method | ROC AUC | rare eff. @ 1% bulk | rare eff. @ cut | bulk acc. @ cut | Q @ cut | Li & Ma σ | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in paths:
        print("\n".join(full_rows(Path(p))))


def main(paths: list[str]) -> None:
    if paths and paths[0] == "--full":
        main_full(paths[1:])
        return
    print("| scenario | method | ROC AUC | rare eff. @ 1% bulk | bulk acc. @ cut (test) | Li & Ma σ |")
    print("|---|---|---|---|---|---|")
    for p in paths:
        print("\n".join(rows(Path(p))))


if __name__ == "__main__":
    main(sys.argv[1:])
