"""The compare report: no crown below chance, fit_on in every one-class label, readable tables,
Li & Ma only where the test set stands for an observation, plots that mark the cut."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from rareflow.evaluation.metrics import at_threshold
from rareflow.evaluation.ranking import method_labels, winner
from rareflow.evaluation.report import findings, render_report


def _row(auc: float, eff: float, kind: str = "one-class", li_ma: float = 26.0) -> dict:
    return {
        "auc": auc, "auc_std": 0.01, "ap": 0.5, "kind": kind,
        "rare_efficiency_at_bulk_acceptance": {a: eff for a in ("0.01", "0.02", "0.05", "0.1", "0.2")},
        "rare_efficiency_at_bulk_acceptance_std": {},
        "rare_efficiency_at_threshold": eff, "bulk_acceptance_at_threshold": 0.01, "purity_at_threshold": 0.5,
        "li_ma_significance": li_ma, "q_max": 2.0, "threshold_rule": "quantile bulk_acceptance=0.01",
        "threshold_source": "detector", "fit_seconds": 1.0, "score_events_per_second": 1e5,
    }  # fmt: skip


def _doc(kind: str, methods: dict, configs: list, fit_on: str = "bulk") -> dict:
    return {
        "scenario": {"kind": kind, "fit_on": fit_on, "fraction_mode": "weights"}, "seeds": [0, 1],
        "methods": methods, "methods_config": configs, "threshold": {"bulk_acceptance": 0.01},
        "data": {"rare_label": "gamma", "bulk_labels": ["proton", "muon"]}, "splits": {}, "dataset": "test",
        "significance": {"n_events": 1e6, "alpha": 0.2},
    }  # fmt: skip


def test_winner_is_never_below_chance() -> None:
    # the inverted method has the highest efficiency and the "distance" from 0.5, yet never wins
    methods = {"a": _row(0.45, 0.9), "b": _row(0.62, 0.1), "c": _row(0.55, 0.2)}
    assert winner(methods, "auc") == "b"
    assert winner(methods, lambda v: v["rare_efficiency_at_threshold"]) == "c"
    assert winner({"a": _row(0.45, 0.9), "b": _row(0.5, 0.9)}, "auc") is None


def test_anomaly_report_with_only_inverted_methods_crowns_nobody_and_hides_li_ma() -> None:
    methods = {"mahalanobis": _row(0.454, 0.3), "flow": _row(0.40, 0.2)}
    cfgs = [{"name": "mahalanobis"}, {"name": "flow"}]
    doc = _doc("anomaly", methods, cfgs)
    text = " ".join(findings(doc))
    assert "Highest ROC AUC" not in text and "no winner" in text
    page = render_report(doc, [])
    assert 'class="best"' not in page and page.count('class="inv"') == 4  # main + details tables
    assert "inverted" in page
    assert "Li&amp;Ma σ</th>" not in page and "No Li&amp;Ma significance" in page


def test_rare_report_shows_li_ma_and_marks_the_winner() -> None:
    methods = {"gbdt": _row(0.95, 0.6, "supervised"), "flow": _row(0.45, 0.1)}
    doc = _doc("rare", methods, [{"name": "gbdt"}, {"name": "flow", "params": {"fit_on": "rare"}}])
    page = render_report(doc, [])
    assert "Li&amp;Ma σ</th>" in page
    best = re.search(r'<tr class="best"><td class=l>([^<]*)</td>', page)
    assert best and best.group(1) == "gbdt"
    assert "Highest ROC AUC: <b>gbdt</b>" in " ".join(findings(doc))


def test_main_table_is_short_and_details_hold_the_rest() -> None:
    doc = _doc("rare", {"gbdt": _row(0.95, 0.6, "supervised")}, [{"name": "gbdt"}])
    tables = re.findall(r"<table>(.*?)</table>", render_report(doc, []), re.S)
    header_cells = [t.split("</tr>")[0].count("<th") for t in tables]
    assert header_cells[0] <= 9 and header_cells[1] <= 9  # was one table of 17 columns
    assert "cut rule" in tables[1] and "cut rule" not in tables[0]


@pytest.mark.parametrize(
    ("kind", "scenario_fit_on", "config", "expected"),
    [
        ("one-class", "bulk", {"name": "flow"}, "flow [fit_on bulk]"),  # rare scenario default
        ("one-class", "bulk", {"name": "flow", "params": {"fit_on": "rare"}}, "flow [fit_on rare]"),
        ("supervised", "bulk", {"name": "gbdt"}, "gbdt"),
        ("two-class", "bulk", {"name": "selfsup-flow"}, "selfsup-flow [fit_on bulk]"),
        ("one-class", "bulk", {"name": "flow", "label": "flow (fit_on rare)", "params": {"fit_on": "rare"}},
         "flow (fit_on rare)"),  # already named: not repeated
    ],
)  # fmt: skip
def test_labels_name_fit_on(kind: str, scenario_fit_on: str, config: dict, expected: str) -> None:
    key = config.get("label") or config["name"]
    doc = _doc("rare", {key: _row(0.8, 0.5, kind)}, [config], scenario_fit_on)
    assert method_labels(doc) == {key: expected}


def test_anomaly_one_class_label_uses_the_scenario_fit_on() -> None:
    doc = _doc("anomaly", {"mahalanobis": _row(0.8, 0.5)}, [{"name": "mahalanobis"}], fit_on="rare")
    assert method_labels(doc)["mahalanobis"] == "mahalanobis [fit_on rare]"
    assert "mahalanobis [fit_on rare]" in render_report(doc, [])


def _scores(rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for seed in (0, 1):
        label = np.array(["gamma"] * 300 + ["proton"] * 600 + ["muon"] * 100)
        y = (label == "gamma").astype(int)
        raw = rng.normal(size=label.size) + 1.5 * y
        for method, s in (("lin", raw), ("exp", np.exp(raw))):  # a monotone change of the same score
            thr = np.quantile(s[y == 0], 0.95)
            frames.append(pd.DataFrame({"method": method, "seed": seed, "label": label, "y": y,
                                        "weight": 1.0, "score": s, "threshold": thr}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def test_plots_mark_the_cut_and_share_one_scale(tmp_path) -> None:
    from rareflow.evaluation import cut_plots, plots

    scores = _scores(np.random.default_rng(0))
    cuts = plots.cut_points(scores)
    g = scores[(scores.method == "lin") & (scores.seed == 1)]
    ref = at_threshold(g["y"], g["score"], g["weight"], g["threshold"].iloc[0])
    row = cuts[(cuts.method == "lin") & (cuts.seed == 1)].iloc[0]
    assert row["bulk_acceptance"] == pytest.approx(ref["bulk_acceptance"]) and 0.03 < row["bulk_acceptance"] < 0.07
    # the shared scale: identical for a score and a monotone transform of it
    lin, ex = scores[scores.method == "lin"], scores[scores.method == "exp"]
    bulk = lin.loc[lin.y == 0, "score"].to_numpy()
    np.testing.assert_allclose(
        plots.bulk_tail(lin["score"].to_numpy(), bulk), plots.bulk_tail(ex["score"].to_numpy(), np.exp(bulk))
    )
    eff = cut_plots.class_efficiency(g["score"].to_numpy(), g["label"].to_numpy(), np.array([-np.inf, np.inf]))
    assert set(eff) == {"gamma", "proton", "muon"} and all(v[0] == 1 and v[1] == 0 for v in eff.values())
    for f in (
        plots.roc_plot(scores, tmp_path / "roc.png", "gamma"),
        plots.score_distributions(scores, tmp_path / "s.png", "gamma"),
        plots.q_factor_plot(scores, tmp_path / "q.png"),
        cut_plots.efficiency_vs_threshold(scores, tmp_path / "e.png"),
        cut_plots.purity_plot(scores, tmp_path / "p.png", "gamma"),
    ):
        assert f.stat().st_size > 5000
