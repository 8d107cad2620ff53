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
from rareflow.evaluation.ranking import is_inverted, method_labels, winner

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.best td{background:#eef8ee}tr.inv td{color:#a33}td{white-space:nowrap}
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
            + ". Two-class and supervised methods do not apply. The cut keeps "
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
    labels = method_labels(doc)
    aucs = {m: v.get("auc") for m, v in methods.items() if v.get("auc") is not None}
    best = winner(methods, "auc")
    if best is not None:
        out.append(f"Highest ROC AUC: <b>{html.escape(labels[best])}</b> ({_fmt(aucs[best], methods[best].get('auc_std'))}).")
    elif aucs:
        out.append("No method beats chance (every ROC AUC ≤ 0.5): there is no winner in this run.")
    best_eff = winner(methods, lambda v: (v.get("rare_efficiency_at_bulk_acceptance") or {}).get("0.01"))
    if best_eff is not None:
        e = methods[best_eff]["rare_efficiency_at_bulk_acceptance"]["0.01"]
        out.append(
            f"Highest {rare} efficiency at 1% bulk acceptance (among methods above chance): "
            f"<b>{html.escape(labels[best_eff])}</b> ({_fmt(e)})."
        )
    low = [labels[m] for m, v in methods.items() if is_inverted(v)]
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
            out.append(
                f"{', '.join(map(html.escape, low))} score below chance (AUC &lt; 0.5) here: flagged as "
                f"<i>inverted</i> in the tables (the score ranks {rare} events lower than {bulk} events), never ranked."
            )
    above = [a for a in aucs.values() if a > 0.5]
    if sc["kind"] == "anomaly" and sc.get("fit_on") == "rare" and above:
        out.append(
            f"Trained on {rare} events only, {len(above)} of {len(aucs)} one-class methods select {rare} events "
            f"against {bulk} with AUC {min(above):.2f}–{max(above):.2f}: a compact rare class can be modelled directly."
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
            parts = ", ".join(f"{html.escape(labels[m])} {a:.3g}" for m, a in off.items())
            out.append(
                f"The cut chosen on training data for {target:.0%} bulk acceptance does not transfer to the test set "
                f"for: {parts} (bulk acceptance on test). Use more calibration events or a less over-fitting model."
            )
    return out


def shows_li_ma(doc: dict[str, Any]) -> bool:
    """Li & Ma only in the rare scenario: its test rare fraction stands for an observation. The
    anomaly scenario's balanced test set (50 % rare) is no observation, and a significance computed
    at that fraction would read as a discovery whatever the AUC."""
    return doc.get("scenario", {}).get("kind") == "rare"


def _row_class(name: str, v: dict[str, Any], best: str | None) -> str:
    return ' class="inv"' if is_inverted(v) else (' class="best"' if name == best else "")


def _kind_cell(v: dict[str, Any]) -> str:
    kind = html.escape(str(v.get("kind", "?")))  # written by the runner into every result row
    return f"{kind}<br><b>inverted (AUC &lt; 0.5)</b>" if is_inverted(v) else kind


def _main_table(doc: dict[str, Any]) -> str:
    """What a reader compares first: ranking quality and the working point, one line per method."""
    li_ma = shows_li_ma(doc)
    head = (
        "<tr><th class=l>method</th><th class=l>kind</th><th>ROC AUC</th><th>AP</th><th>eff @ 1% bulk</th>"
        "<th>eff @ cut</th><th>bulk acc @ cut</th><th>purity @ cut</th>"
        + ("<th>Li&amp;Ma σ</th>" if li_ma else "") + "</tr>"
    )
    labels, best = method_labels(doc), winner(doc["methods"], "auc")
    rows = []
    for name, v in doc["methods"].items():
        eff, eff_s = v.get("rare_efficiency_at_bulk_acceptance", {}), v.get("rare_efficiency_at_bulk_acceptance_std", {})
        cells = [
            f"<td class=l>{html.escape(labels[name])}</td><td class=l>{_kind_cell(v)}</td>",
            f"<td>{_fmt(v.get('auc'), v.get('auc_std'))}</td><td>{_fmt(v.get('ap'), v.get('ap_std'))}</td>",
            f"<td>{_fmt(eff.get('0.01'), eff_s.get('0.01'))}</td>",
            f"<td>{_fmt(v.get('rare_efficiency_at_threshold'), v.get('rare_efficiency_at_threshold_std'))}</td>",
            f"<td>{_fmt(v.get('bulk_acceptance_at_threshold'), v.get('bulk_acceptance_at_threshold_std'), 4)}</td>",
            f"<td>{_fmt(v.get('purity_at_threshold'), v.get('purity_at_threshold_std'))}</td>",
            f"<td>{_fmt(v.get('li_ma_significance'), v.get('li_ma_significance_std'), 1)}</td>" if li_ma else "",
        ]
        rows.append(f"<tr{_row_class(name, v, best)}>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _details_table(doc: dict[str, Any]) -> str:
    """The rest: efficiencies at other bulk acceptances, Q, the cut's rule, timings."""
    accs = ["0.02", "0.05", "0.1", "0.2"]
    head = (
        "<tr><th class=l>method</th>" + "".join(f"<th>eff @ {a}</th>" for a in accs)
        + "<th>Q<sub>max</sub></th><th class=l>cut rule (set by)</th><th>fit s</th><th>events/s</th></tr>"
    )
    labels = method_labels(doc)
    rows = []
    for name, v in doc["methods"].items():
        rule = html.escape(f"{v.get('threshold_rule', '?')} ({v.get('threshold_source', '?')})")
        eff, eff_s = v.get("rare_efficiency_at_bulk_acceptance", {}), v.get("rare_efficiency_at_bulk_acceptance_std", {})
        cells = [
            f"<td class=l>{html.escape(labels[name])}</td>",
            "".join(f"<td>{_fmt(eff.get(a), eff_s.get(a))}</td>" for a in accs),
            f"<td>{_fmt(v.get('q_max'), v.get('q_max_std'), 2)}</td><td class=l>{rule}</td>",
            f"<td>{_fmt(v.get('fit_seconds'), None, 2)}</td><td>{_fmt_g(v.get('score_events_per_second'))}</td>",
        ]
        rows.append(f"<tr{_row_class(name, v, None)}>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _table_notes(doc: dict[str, Any]) -> str:
    sig = doc.get("significance", {})
    text = (
        "<p class=muted>Mean ± standard deviation over seeds, on the test set. Green row: the highest ROC AUC "
        "among methods above chance; red rows: <i>inverted</i> methods (AUC &lt; 0.5, never ranked). eff @ a: "
        "rare efficiency at bulk acceptance a (ROC interpolation). Cut: chosen on training data by the rule in "
        "the second table. "
    )
    if shows_li_ma(doc):
        text += (
            f"Li&amp;Ma σ: expected significance (Li &amp; Ma 1983, eq. 17) for {_fmt_g(sig.get('n_events'))} "
            f"ON-region events before cuts at the test rare fraction, off/on ratio 1/α with α = {sig.get('alpha')}. "
        )
    else:
        text += (
            "No Li&amp;Ma significance here: the anomaly scenario's test set is balanced (half rare events), not an "
            "observation; a significance at that rare fraction would be huge for any AUC, even below chance. "
            "See the rare scenario for significances. "
        )
    return text + "</p>"


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
        _table_notes(doc),
        _main_table(doc),
        "<h3>Details</h3><p class=muted>Efficiency at other bulk acceptances, the maximal quality factor "
        "Q = eps_rare/sqrt(eps_bulk) over cuts keeping ≥ 10 bulk events, the rule that placed each cut and who "
        "set it (detector or experiment), fit time and test scoring throughput on this machine.</p>",
        _details_table(doc),
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
