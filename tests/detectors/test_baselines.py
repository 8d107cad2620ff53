"""Baseline detectors: the contract (higher = rarer, fit_on, thresholds from training only),
independent references (scikit-learn's Mahalanobis, scipy's chi2) and safe persistence."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from scipy import stats
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import roc_auc_score

from rareflow.detectors import available, get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model, save_model
from tests.conftest import toy_table

ONE_CLASS = ["mahalanobis", "power-mahalanobis", "iforest"]


def _xy(seed: int = 0):
    df = toy_table(seed=seed)
    return df[["a", "b", "c"]], (df["label"] == "gamma").to_numpy().astype(int)


def test_registry_has_the_baselines() -> None:
    assert {"mahalanobis", "power-mahalanobis", "iforest", "gbdt"} <= set(available())
    with pytest.raises(RareflowError, match="unknown method"):
        get_detector("nope")
    with pytest.raises(RareflowError, match="unknown parameter 'nonsense' for gbdt"):
        get_detector("gbdt", nonsense=1)


@pytest.mark.parametrize("name", ONE_CLASS)
@pytest.mark.parametrize("fit_on", ["bulk", "rare"])
def test_one_class_scores_higher_for_rare(name: str, fit_on: str) -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    det = get_detector(name, fit_on=fit_on).fit(X, y)
    auc = roc_auc_score(yt, det.decision_function(Xt))
    assert auc > 0.85, auc  # the toy rare class is off-centre and compact: both orientations find it
    assert det.decision_scores_.shape == ((y == (1 if fit_on == "rare" else 0)).sum(),)
    assert set(np.unique(det.predict(Xt))) <= {0, 1}


def test_gbdt_supervised_and_needs_labels() -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    det = get_detector("gbdt").fit(X, y)
    assert roc_auc_score(yt, det.decision_function(Xt)) > 0.95
    with pytest.raises(RareflowError, match="needs labels"):
        get_detector("gbdt").fit(X)
    with pytest.raises(RareflowError, match="both rare and bulk"):
        get_detector("gbdt").fit(X, np.zeros(len(X)))


def test_mahalanobis_matches_sklearn() -> None:
    X, y = _xy()
    det = get_detector("mahalanobis", ridge=0.0).fit(X, y)
    Xb = X.to_numpy()[y == 0]
    ref = EmpiricalCovariance().fit(Xb)  # maximum-likelihood covariance (divides by n, not n - 1)
    n = len(Xb)
    np.testing.assert_allclose(det.decision_function(X), ref.mahalanobis(X.to_numpy()) * (n - 1) / n, rtol=1e-8)


def test_chi2_and_k_sigma_thresholds_are_analytic() -> None:
    X, y = _xy()
    d = 3
    det = get_detector("mahalanobis", threshold={"rule": "chi2", "alpha": 0.05}).fit(X, y)
    assert det.threshold_ == pytest.approx(stats.chi2.isf(0.05, d))
    det = get_detector("mahalanobis", threshold={"rule": "k_sigma", "k": 3}).fit(X, y)
    assert det.threshold_ == pytest.approx((stats.chi.mean(d) + 3 * stats.chi.std(d)) ** 2)
    # fit_on rare: the rare-oriented score is -d^2, so the cut flips sign
    det = get_detector("mahalanobis", fit_on="rare", threshold={"rule": "chi2", "alpha": 0.05}).fit(X, y)
    assert det.threshold_ == pytest.approx(-stats.chi2.isf(0.05, d))
    assert det.predict(X[y == 1]).mean() == pytest.approx(0.95, abs=0.03)  # Gaussian rare class
    with pytest.raises(RareflowError, match="does not support threshold rule"):
        get_detector("iforest", threshold={"rule": "chi2"}).fit(X, y)


def test_power_transform_matches_sklearn_and_reduces_skew() -> None:
    from sklearn.preprocessing import PowerTransformer

    r = np.random.default_rng(0)
    X = np.column_stack([r.lognormal(0, 1, 5000), r.exponential(1, 5000), r.normal(5, 2, 5000)])
    det = get_detector("power-mahalanobis").fit(X)
    Z = det._transform(X)
    ref = PowerTransformer(method="yeo-johnson", standardize=True).fit(X)
    np.testing.assert_allclose(det.lambdas_, ref.lambdas_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(Z, ref.transform(X), rtol=1e-3, atol=1e-4)
    assert abs(stats.skew(Z[:, 0])) < abs(stats.skew(X[:, 0])) / 5
    # default rule is the seeds' chi-square tail: ~1% of a Gaussianised bulk above the cut
    assert det.predict(X).mean() == pytest.approx(0.01, abs=0.006)
    p = det.tail_probability(X)
    assert ((p >= 0) & (p <= 1)).all()


def test_threshold_uses_training_data_only() -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    det = get_detector("gbdt").fit(X, y)
    thr = det.threshold_
    det.decision_function(Xt)  # scoring test data must not move the cut
    assert det.threshold_ == thr
    # the cut is the training bulk quantile: 1% of training bulk scores lie above it
    assert (det.decision_scores_[y == 0] > thr).mean() <= 0.01 + 1e-9
    det.set_threshold_from(Xt, yt)  # explicit recalibration on other data moves it
    assert det.threshold_ != thr


@pytest.mark.parametrize("name", ["mahalanobis", "power-mahalanobis", "iforest", "gbdt"])
def test_save_load_identical_scores(tmp_path, name: str) -> None:
    X, y = _xy()
    det = get_detector(name).fit(X, y)
    path = tmp_path / "m.rfm"
    save_model(det, path)
    back = load_model(path)
    np.testing.assert_array_equal(back.decision_function(X), det.decision_function(X))
    assert back.threshold_ == det.threshold_
    assert list(back.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(RareflowError, match="lacks feature column"):
        back.decision_function(X.rename(columns={"a": "x"}))


def test_load_rejects_untrusted_types_and_bad_files(tmp_path) -> None:
    X, y = _xy()
    path = tmp_path / "m.rfm"
    save_model(get_detector("gbdt").fit(X, y), path)
    # swap the skops blob for one holding a type that is not on the allow-list
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    evil = sio.dumps({"x": LogisticRegression().fit(X, y), "f": np.ndarray})
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.namelist():
            dst.writestr(item, evil if item.startswith("blobs/") else src.read(item))
    path.write_bytes(buf.getvalue())
    with pytest.raises(RareflowError, match="unexpected types"):
        load_model(path)
    (tmp_path / "p.rfm").write_bytes(b"\x80\x04pickle")
    with pytest.raises(RareflowError, match="not a rareflow model"):
        load_model(tmp_path / "p.rfm")
    # a wrong schema version is refused
    buf = io.BytesIO()
    save_model(get_detector("mahalanobis").fit(X, y), tmp_path / "ok.rfm")
    with zipfile.ZipFile(tmp_path / "ok.rfm") as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "meta.json":
                meta = json.loads(data)
                meta["schema_version"] = 99
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    (tmp_path / "v99.rfm").write_bytes(buf.getvalue())
    with pytest.raises(RareflowError, match="schema 99"):
        load_model(tmp_path / "v99.rfm")
