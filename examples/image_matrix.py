"""Issue 19's comparison as a matrix: {Hillas, images} x {one-class, two-class} x {AE, flow, classifier}.

Reads the metrics.json of ``rareflow compare --config examples/sim_images_two_class.yaml`` and
prints two Markdown tables written from it (nothing else):

1. the matrix: one row per (input, setting), one column per model family; each cell lists its
   methods with ROC AUC and gamma efficiency at 1 % proton acceptance (mean ± std over seeds);
2. per energy bin (true energy, the test set): each two-class method's ROC AUC in the bin, and
   which method leads there.

The cell of a method is read from its label, which the config writes as
``"<input> <setting> <family> (<method>)"``, e.g. ``images two-class classifier (cnn-classifier)``.

Usage:
    python examples/image_matrix.py out/sim_images_two_class/metrics.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

FAMILIES = ("AE", "flow", "classifier")
_LABEL = re.compile(r"^(?P<input>Hillas|images \+ Hillas|images) (?P<setting>one-class|two-class) (?P<family>AE|flow|classifier)\b")


def cell_of(label: str) -> tuple[str, str, str] | None:
    """(input, setting, family) of a method label, or None for a label outside the scheme."""
    m = _LABEL.match(label)
    return (m["input"], m["setting"], m["family"]) if m else None


def _short(label: str) -> str:
    inner = re.search(r"\((.*)\)\s*$", label)
    return inner.group(1) if inner else label


def _pm(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def matrix(doc: dict) -> str:
    cells: dict[tuple[str, str], dict[str, list[str]]] = {}
    for label, v in doc["methods"].items():
        where = cell_of(label)
        if where is None:
            continue
        eff = v["rare_efficiency_at_bulk_acceptance"]["0.01"]
        eff_s = v["rare_efficiency_at_bulk_acceptance_std"]["0.01"]
        text = f"{_short(label)}: {_pm(v['auc'], v.get('auc_std'))} / {_pm(eff, eff_s)}"
        cells.setdefault(where[:2], {}).setdefault(where[2], []).append(text)
    lines = ["| input | setting | " + " | ".join(FAMILIES) + " |", "|---|---|" + "---|" * len(FAMILIES)]
    for (inp, setting), fam in cells.items():
        row = [" <br> ".join(fam.get(f, ["(none)"])) for f in FAMILIES]
        lines.append(f"| {inp} | {setting} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_bin(doc: dict) -> str:
    pb = doc.get("per_bin") or {}
    methods = {k: v for k, v in (pb.get("methods") or {}).items() if (cell_of(k) or ("", ""))[1] == "two-class"}
    if not methods:
        return "(no per-bin evaluation in this metrics.json)"
    unit = "TeV" if pb.get("column") == "true_energy" else pb.get("column", "")
    names = list(methods)
    lines = [
        f"| {pb.get('column')} [{unit}] | " + " | ".join(_short(n) for n in names) + " | leads |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for i, b in enumerate(methods[names[0]]):
        aucs = {n: methods[n][i].get("auc_mean") for n in names}
        low = any(methods[n][i].get("low_statistics") for n in names)
        if all(a is None for a in aucs.values()):
            continue
        best = max((n for n in names if aucs[n] is not None), key=lambda n: aucs[n])
        row = [_pm(aucs[n], methods[n][i].get("auc_std")) for n in names]
        lead = "–" if low else _short(best)
        lines.append(f"| {b['low']:.3g}–{b['high']:.3g}{'°' if low else ''} | " + " | ".join(row) + f" | {lead} |")
    lines.append(
        "\n° fewer than 20 test events of a class in the bin in some seed (low statistics; no leader "
        "named). AUC per bin: mean ± std over seeds; bins with no test protons are left out."
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    doc = json.loads(Path(argv[0]).read_text())
    seeds = ", ".join(str(s) for s in doc.get("seeds", []))
    data = doc.get("data", {})
    split = next(iter(doc.get("splits", {}).values()), {})
    print(
        f"{data.get('n_events')} simulated events ({data.get('label_counts')}); per seed "
        f"{split.get('n_train_rare')} gamma + {split.get('n_train_bulk')} proton training events; "
        f"seeds {seeds}. Each cell: ROC AUC / gamma efficiency at 1 % proton acceptance (mean ± std over seeds).\n"
    )
    print(matrix(doc))
    print("\nPer true-energy bin, two-class methods, ROC AUC on the test events of the bin:\n")
    print(per_bin(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
