"""Print a Markdown table (methods x key metrics, mean ± std over seeds) from compare outputs.

Usage: python examples/results_table.py out/magic_rare/metrics.json [more metrics.json ...]
The README's MAGIC table is this script's output after running the example configs.
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
            f"{_pm(v, 'bulk_acceptance_at_threshold', 4)} | {_pm(v, 'li_ma_significance', 1)} |"
        )
    return out


def main(paths: list[str]) -> None:
    print("| scenario | method | ROC AUC | rare eff. @ 1% bulk | bulk acc. @ cut (test) | Li & Ma σ |")
    print("|---|---|---|---|---|---|")
    for p in paths:
        print("\n".join(rows(Path(p))))


if __name__ == "__main__":
    main(sys.argv[1:])
