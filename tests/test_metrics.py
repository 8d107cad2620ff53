"""Every metric against an independent reference: scikit-learn, hand computation, closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from rareflow.evaluation.metrics import (
    at_threshold,
    average_precision,
    efficiency_at_acceptance,
    evaluate_scores,
    expected_significance,
    kish_n_eff,
    li_ma,
    q_max,
    roc_auc,
    weighted_roc,
)
from rareflow.detectors.thresholds import parse_rule, quantile_threshold, weighted_quantile


def _data(seed: int, ties: bool, weighted: bool):
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, 2000)
    s = r.normal(size=2000) + 1.2 * y
    if ties:
        s = np.round(s, 1)
    w = r.uniform(0.05, 5.0, 2000) if weighted else None
    return y, s, w


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_auc_ap_roc_match_sklearn(ties: bool, weighted: bool) -> None:
    y, s, w = _data(3, ties, weighted)
    roc = weighted_roc(y, s, w)
    assert roc_auc(roc) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert average_precision(y, s, w) == pytest.approx(average_precision_score(y, s, sample_weight=w), abs=1e-12)
    fpr, tpr, thr = roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    np.testing.assert_allclose(roc.fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(roc.tpr, tpr, atol=1e-12)
    np.testing.assert_allclose(roc.thresholds[1:], thr[1:])


def test_efficiency_at_acceptance_interpolates_sklearn_roc() -> None:
    y, s, w = _data(4, False, True)
    fpr, tpr, _ = roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    roc = weighted_roc(y, s, w)
    for a in (0.01, 0.02, 0.05, 0.1, 0.2):
        assert efficiency_at_acceptance(roc, a) == pytest.approx(np.interp(a, fpr, tpr), abs=1e-12)


def test_class_weights_do_not_change_auc_but_change_ap() -> None:
    """Realising a rare fraction by weights keeps ROC AUC and lowers AP (precision sees the fraction)."""
    y, s, _ = _data(5, False, False)
    w = np.where(y == 1, 0.001, 1.0)
    assert roc_auc(weighted_roc(y, s, w)) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(y, s, w) < 0.2 < average_precision(y, s)


def test_q_max_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    s = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    q, acc = q_max(weighted_roc(y, s), min_bulk_events=1)
    # cuts: after 6 -> eps_r=2/3, eps_b=1/5 ; after 5 -> 1, 1/5 -> Q = 1/sqrt(0.2)
    assert q == pytest.approx(1 / np.sqrt(0.2))
    assert acc == pytest.approx(0.2)
    q2, _ = q_max(weighted_roc(y, s), min_bulk_events=3)
    assert q2 == pytest.approx(1 / np.sqrt(3 / 5))


def test_li_ma_eq17_reference_values() -> None:
    # Li & Ma (1983) eq. 17, computed independently here.
    n_on, n_off, a = 130.0, 500.0, 0.2
    ref = np.sqrt(2) * np.sqrt(
        n_on * np.log((1 + a) / a * n_on / (n_on + n_off)) + n_off * np.log((1 + a) * n_off / (n_on + n_off))
    )
    assert li_ma(n_on, n_off, a) == pytest.approx(ref)
    assert li_ma(100.0, 500.0, 0.2) == pytest.approx(0.0, abs=1e-9)  # no excess
    assert li_ma(80.0, 500.0, 0.2) < 0  # deficit is signed
    # large counts: approaches excess / sqrt(alpha * n_off * (1 + alpha)) (Li & Ma eq. 9 regime)
    s = expected_significance(0.5, 0.01, 1e-3, 1e9, 0.2)
    sig, bkg = 1e9 * 1e-3 * 0.5, 1e9 * 0.999 * 0.01
    assert s == pytest.approx(sig / np.sqrt(bkg * (1 + 0.2)), rel=0.01)


def test_at_threshold_purity_and_counts() -> None:
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.2, 0.8, 0.1, 0.0])
    w = np.array([1.0, 1.0, 2.0, 1.0, 1.0])
    m = at_threshold(y, s, w, 0.5)
    assert m["rare_efficiency"] == 0.5 and m["bulk_acceptance"] == 0.5
    assert m["purity"] == pytest.approx(1 / 3)
    assert (m["n_rare_selected"], m["n_bulk_selected"]) == (1, 1)


def test_kish_and_evaluate_keys() -> None:
    assert kish_n_eff(np.ones(10)) == pytest.approx(10)
    assert kish_n_eff(np.array([1.0, 0.0, 0.0])) == pytest.approx(1)
    y, s, w = _data(6, False, True)
    m = evaluate_scores(y, s, w, threshold=1.0)
    for key in ("auc", "ap", "q_max", "threshold", "rare_efficiency_at_threshold", "bulk_acceptance_at_threshold",
                "li_ma_significance", "purity_at_threshold", "n_eff_rare", "n_eff_bulk"):
        assert key in m
    assert set(m["rare_efficiency_at_bulk_acceptance"]) == {"0.01", "0.02", "0.05", "0.1", "0.2"}


def test_weighted_quantile_matches_numpy_and_repetition() -> None:
    r = np.random.default_rng(0)
    v = r.normal(size=501)
    for q in (0.01, 0.5, 0.99):
        assert weighted_quantile(v, q) == np.quantile(v, q, method="inverted_cdf")
    # integer weights == repeating values
    vals = np.array([3.0, 1.0, 2.0, 5.0])
    w = np.array([1, 3, 2, 4])
    rep = np.repeat(vals, w)
    for q in (0.1, 0.35, 0.6, 0.95):
        assert weighted_quantile(vals, q, w) == np.quantile(rep, q, method="inverted_cdf")


def test_quantile_threshold_hits_requested_bulk_acceptance() -> None:
    r = np.random.default_rng(1)
    s = r.normal(size=100_000)
    y = np.zeros_like(s, dtype=int)
    thr = quantile_threshold(s, y, parse_rule({"bulk_acceptance": 0.01}))
    assert (s > thr).mean() == pytest.approx(0.01, abs=2e-4)
    assert thr == pytest.approx(stats.norm.isf(0.01), abs=0.03)
    # rare-efficiency form on one-class rare scores
    thr_r = quantile_threshold(s, None, parse_rule({"rare_efficiency": 0.9}), single_class="rare")
    assert (s > thr_r).mean() == pytest.approx(0.9, abs=2e-4)
