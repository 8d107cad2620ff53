"""Self-contained HTML report of a compare run: words, a methods x metrics table, embedded plots.

No external scripts, styles or fonts: plots are PNG data URIs, CSS is inline, so the file reads
offline in any browser. The prose is generated from the numbers (what the scenario was, which
method wins, where one-class methods fail and why), never written in advance.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from rareflow import __version__

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.best td{background:#eef8ee}
.note{background:#fff8e6;border-left:4px solid #e0a800;padding:.5em .8em}.muted{color:#666;font-size:.9em}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
"""


def _fmt(mean: Any, std: Any = None, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and not np.isfinite(mean)):
        return "–"
    text = f"{mean:.{digits}f}"
    if std is not None and isinstance(std, (int, float)) and np.isfinite(std) and std > 0:
        text += f" ± {std:.{digits}f}"
    return text


def _fmt_g(x: Any) -> str:
    return "–" if x is None else f"{x:.3g}"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def describe_scenario(doc: dict[str, Any]) -> str:
    """The scenario in words (numbers from the first seed's split)."""
    sc, thr = doc["scenario"], doc.get("threshold", {})
    data = doc.get("data", {})
    rare, bulk = data.get("rare_label", "rare"), ", ".join(data.get("bulk_labels", [])) or "bulk"
    first = next(iter(doc.get("splits", {}).values()), {})
    cal = thr.get("calibration_fraction", 0)
    cal_txt = (
        f"{cal:.0%} of the training split is held out from fitting and used only to place the cut"
        if cal
        else "the cut is placed on the detectors' own training scores"
    )
    if sc["kind"] == "anomaly":
        own = rare if sc["fit_on"] == "rare" else bulk
        cont = first.get("n_train_contamination", 0)
        txt = (
            f"<b>Anomaly scenario</b> (one-class learning): detectors train on <b>{own}</b> events only "
            f"({first.get('n_train_own', '?')} events"
            + (f", plus {cont} unlabelled events of the other class as contamination" if cont else "")
            + f"). The test set is balanced: {first.get('n_test_rare', '?')} {rare} vs "
            f"{first.get('n_test_bulk', '?')} {bulk} events. Scores are oriented so that higher = more "
            f"{rare}-like: a model of the {own} class scores "
            + ("closeness to it" if sc["fit_on"] == "rare" else "distance from it")
            + f". Two-class and supervised methods do not apply. The cut keeps "
            + (
                f"{thr.get('rare_efficiency', 0.9):.0%} of the {rare} training events"
                if sc["fit_on"] == "rare"
                else f"{thr.get('bulk_acceptance', 0.01):.0%} of the {bulk} training events"
            )
            + f"; {cal_txt}."
        )
    else:
        mode = first.get("fraction_mode", sc.get("fraction_mode"))
        txt = (
            f"<b>Rare-event scenario</b> (two-class learning): the training split holds both classes as "
            f"simulated ({first.get('n_train_rare', '?')} {rare}, {first.get('n_train_bulk', '?')} {bulk}); "
            f"the test set holds the {rare} class at a fraction of <b>{first.get('test_rare_fraction', 0):.3g}</b> "
        )
        if mode == "weights":
            txt += (
                f"realised with event weights (every test event kept: {first.get('n_test_rare', '?')} {rare} and "
                f"{first.get('n_test_bulk', '?')} {bulk} events, each {rare} event weighted down), so "
                "efficiencies rest on all simulated events while AP, purity and significance see the rare fraction."
            )
        else:
            txt += (
                f"by subsampling ({first.get('n_test_rare', '?')} {rare} among {first.get('n_test_bulk', '?')} "
                f"{bulk} test events)."
            )
        txt += (
            f" The cut is chosen on training data so that {thr.get('bulk_acceptance', 0.01):.0%} of {bulk} "
            f"training events pass; {cal_txt}. One-class methods train on the class named by their fit_on."
        )
    warns = [s["warning"] for s in doc.get("splits", {}).values() if "warning" in s]
    if warns:
        txt += f'<p class="note">{html.escape(warns[0])}</p>'
    return txt


def findings(doc: dict[str, Any]) -> list[str]:
    """Plain-language observations computed from the numbers."""
    methods: dict[str, Any] = doc["methods"]
    sc = doc["scenario"]
    data = doc.get("data", {})
    rare = data.get("rare_label", "rare")
    bulk = ", ".join(data.get("bulk_labels", [])) or "bulk"
    out: list[str] = []
    aucs = {m: v.get("auc") for m, v in methods.items() if v.get("auc") is not None}
    if aucs:
        best = max(aucs, key=aucs.get)
        out.append(f"Highest ROC AUC: <b>{html.escape(best)}</b> ({_fmt(aucs[best], methods[best].get('auc_std'))}).")
    eff = {m: v["rare_efficiency_at_bulk_acceptance"].get("0.01") for m, v in methods.items()}
    eff = {m: e for m, e in eff.items() if e is not None}
    if eff:
        best = max(eff, key=eff.get)
        out.append(
            f"Highest {rare} efficiency at 1% bulk acceptance: <b>{html.escape(best)}</b> ({_fmt(eff[best])})."
        )
    low = [m for m, a in aucs.items() if a < 0.5]
    if low:
        if sc["kind"] == "anomaly" and sc.get("fit_on") == "bulk":
            out.append(
                f"{', '.join(map(html.escape, low))} reach AUC &lt; 0.5: trained on {bulk} only, they rank {rare} events "
                f"as <i>less</i> anomalous than {bulk} events. The {rare} events lie inside the dense core of the "
                f"{bulk} distribution, so distance from the {bulk} class does not find them. This is the seeds' "
                f"point: rare events are not anomalies — one-class learning on the bulk cannot select them; train "
                f"on the {rare} class (fit_on: rare) or use two-class methods (the rare scenario)."
            )
        else:
            out.append(f"{', '.join(map(html.escape, low))} score below chance (AUC &lt; 0.5) here.")
    if sc["kind"] == "anomaly" and sc.get("fit_on") == "rare" and aucs:
        out.append(
            f"Trained on {rare} events only, the one-class methods select {rare} events against {bulk} with "
            f"AUC {min(aucs.values()):.2f}–{max(aucs.values()):.2f}: a compact rare class can be modelled directly."
        )
    target = doc.get("threshold", {}).get("bulk_acceptance")
    if target and not (sc["kind"] == "anomaly" and sc.get("fit_on") == "rare"):
        drift = {  # only the methods whose cut was placed for that bulk acceptance
            m: v.get("bulk_acceptance_at_threshold")
            for m, v in methods.items()
            if v.get("bulk_acceptance_at_threshold") is not None
            and f"bulk_acceptance={target:g}" in str(v.get("threshold_rule", f"bulk_acceptance={target:g}"))
        }
        off = {m: a for m, a in drift.items() if a > 2 * target or a < target / 2}
        if off:
            parts = ", ".join(f"{html.escape(m)} {a:.3g}" for m, a in off.items())
            out.append(
                f"The cut chosen on training data for {target:.0%} bulk acceptance does not transfer to the test set "
                f"for: {parts} (bulk acceptance on test). Use more calibration events or a less over-fitting model."
            )
    return out


def _metrics_table(doc: dict[str, Any]) -> str:
    accs = ["0.01", "0.02", "0.05", "0.1", "0.2"]
    head = (
        "<tr><th class=l>method</th><th class=l>kind</th><th>ROC AUC</th><th>AP</th>"
        + "".join(f"<th>eff @ {a}</th>" for a in accs)
        + "<th>Q<sub>max</sub></th><th>eff @ cut</th><th>bulk acc @ cut</th><th>purity @ cut</th>"
        "<th>Li&amp;Ma σ</th><th class=l>cut rule (set by)</th><th>fit s</th><th>events/s</th></tr>"
    )
    best = max(doc["methods"], key=lambda m: doc["methods"][m].get("auc") or -1)
    rows = []
    for name, v in doc["methods"].items():
        kind = html.escape(str(v.get("kind", "?")))  # written by the runner into every result row
        rule = html.escape(f"{v.get('threshold_rule', '?')} ({v.get('threshold_source', '?')})")
        eff, eff_s = v.get("rare_efficiency_at_bulk_acceptance", {}), v.get("rare_efficiency_at_bulk_acceptance_std", {})
        cells = [
            f"<td class=l>{html.escape(name)}</td><td class=l>{kind}</td>",
            f"<td>{_fmt(v.get('auc'), v.get('auc_std'))}</td><td>{_fmt(v.get('ap'), v.get('ap_std'))}</td>",
            "".join(f"<td>{_fmt(eff.get(a), eff_s.get(a))}</td>" for a in accs),
            f"<td>{_fmt(v.get('q_max'), v.get('q_max_std'), 2)}</td>",
            f"<td>{_fmt(v.get('rare_efficiency_at_threshold'), v.get('rare_efficiency_at_threshold_std'))}</td>",
            f"<td>{_fmt(v.get('bulk_acceptance_at_threshold'), v.get('bulk_acceptance_at_threshold_std'), 4)}</td>",
            f"<td>{_fmt(v.get('purity_at_threshold'), v.get('purity_at_threshold_std'))}</td>",
            f"<td>{_fmt(v.get('li_ma_significance'), v.get('li_ma_significance_std'), 1)}</td>",
            f"<td class=l>{rule}</td>",
            f"<td>{_fmt(v.get('fit_seconds'), None, 2)}</td><td>{_fmt_g(v.get('score_events_per_second'))}</td>",
        ]
        cls = ' class="best"' if name == best else ""
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _counts_table(doc: dict[str, Any]) -> str:
    splits = doc.get("splits", {})
    if not splits:
        return ""
    keys = sorted({k for s in splits.values() for k in s if k != "warning"})
    head = "<tr><th>seed</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>"
    rows = "".join(
        f"<tr><td>{seed}</td>" + "".join(f"<td>{html.escape(str(_round(s.get(k))))}</td>" for k in keys) + "</tr>"
        for seed, s in splits.items()
    )
    return f"<table>{head}{rows}</table>"


def _round(x: Any) -> Any:
    return f"{x:.4g}" if isinstance(x, float) else ("–" if x is None else x)


def render_report(
    doc: dict[str, Any], images: list[tuple[str, Path]], title: str | None = None,
    gallery: list[tuple[str, Path]] | None = None, energy: str | None = None,
) -> str:  # fmt: skip
    """The HTML page for a metrics document and its plots (and the image methods' gallery, if any).

    ``energy``: the per-bin / sensitivity section (``rareflow.evaluation.energy_plots.energy_html``).
    """
    data = doc.get("data", {})
    labels = ", ".join(f"{k}: {v}" for k, v in data.get("label_counts", {}).items())
    feats = data.get("features", [])
    sig = doc.get("significance", {})
    title = title or f"rareflow compare — {doc['scenario']['kind']} scenario"
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p class=muted>rareflow {__version__}; seeds {doc.get('seeds')}; all methods on identical splits.</p>",
        "<h2>Data</h2>",
        f"<p>{data.get('n_events', '?')} events from <code>{html.escape(str(doc.get('dataset')))}</code> ({html.escape(labels)}). "
        f"Rare class: <b>{html.escape(str(data.get('rare_label')))}</b>; bulk: <b>{html.escape(', '.join(data.get('bulk_labels', [])))}</b>. "
        f"{len(feats)} features: <code>{html.escape(', '.join(feats))}</code>."
        + (f" {data['n_flagged_dropped']} events flagged as unusable (&lt; 3 pixels after cleaning) were dropped." if data.get("n_flagged_dropped") else "")
        + "</p>",
        "<h2>Scenario</h2>",
        f"<p>{describe_scenario(doc)}</p>",
        "<h2>Findings</h2><ul>" + "".join(f"<li>{f}</li>" for f in findings(doc)) + "</ul>",
        "<h2>Methods × metrics</h2>",
        "<p class=muted>Mean ± standard deviation over seeds, on the test set. eff @ a: rare efficiency at bulk "
        "acceptance a (ROC interpolation). Q<sub>max</sub>: max of eps_rare/sqrt(eps_bulk) over cuts keeping ≥ 10 "
        f"bulk events. Cut: chosen on training data. Li&amp;Ma σ: expected significance (Li &amp; Ma 1983, eq. 17) for "
        f"{_fmt_g(sig.get('n_events'))} ON-region events before cuts at the test rare fraction, off/on ratio 1/α with "
        f"α = {sig.get('alpha')}. Events/s: test scoring throughput on this machine.</p>",
        _metrics_table(doc),
    ]
    if doc.get("skipped"):
        parts.append(
            "<p>Not run: " + "; ".join(f"<b>{html.escape(m)}</b> — {html.escape(r)}" for m, r in doc["skipped"].items()) + ".</p>"
        )
    parts.append("<h2>Plots</h2>")
    for alt, path in images:
        parts.append(f"<h3>{html.escape(alt)}</h3>{_img(path, alt)}")
    if energy:  # -- energy study (per-bin cuts, sensitivity): its own section
        parts.append(energy)
    if gallery:
        parts.append("<h2>Image methods: highest-scoring test images</h2>")
        parts.append(
            "<p class=muted>First seed. Top: the image (log1p of the charge); bottom: the method's anomaly map on the "
            "camera pixels; circle: the map's maximum. Labels are the true classes.</p>"
        )
        for alt, path in gallery:
            parts.append(f"<h3>{html.escape(alt)}</h3>{_img(path, alt)}")
    parts.append("<h2>Event counts behind the numbers</h2>")
    parts.append(
        "<p class=muted>Per seed: training and test events per class, realised test rare fraction. In the weights mode "
        "every test event counts; n_eff in metrics.json gives the Kish effective counts.</p>"
    )
    parts.append(_counts_table(doc))
    parts.append("</body></html>")
    return "\n".join(parts)
