"""The ``autoencoder`` detector (plain and VAE): contract, scores, persistence, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model, save_model
from tests.conftest import toy_table

SMALL = dict(hidden=[16, 8], bottleneck=2, epochs=15, batch_size=128, lr=3e-3, progress=False)


def _xy(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    df = toy_table(seed=seed)
    return df[["a", "b", "c"]], (df["label"] == "gamma").to_numpy().astype(int)


def _correlated(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Data on a 1-D curve in 3-D plus small noise: an autoencoder with bottleneck 1 fits it."""
    r = np.random.default_rng(seed)
    t = r.normal(0, 1, n)
    return np.column_stack([t, 2 * t + 0.05 * r.normal(size=n), np.sin(t) + 0.05 * r.normal(size=n)])


@pytest.fixture(scope="module")
def fitted():
    X, y = _xy()
    return get_detector("autoencoder", **SMALL).fit(X, y)


def test_off_manifold_points_score_higher() -> None:
    X = _correlated()
    det = get_detector("autoencoder", **{**SMALL, "bottleneck": 1, "epochs": 40}).fit(X)
    inside = _correlated(200, seed=1)
    off = inside.copy()
    off[:, 1] = -off[:, 1]  # breaks the x1 = 2 x0 relation
    s_in, s_off = det.decision_function(inside), det.decision_function(off)
    assert roc_auc_score(np.r_[np.zeros(200), np.ones(200)], np.r_[s_in, s_off]) > 0.9
    assert np.allclose(det.reconstruction_error(inside), s_in)


def test_fit_on_rare_flips_sign_and_finds_rare() -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    det = get_detector("autoencoder", fit_on="rare", **SMALL).fit(X, y)
    assert roc_auc_score(yt, det.decision_function(Xt)) > 0.8
    assert (det.decision_scores_ <= 0).all()


@pytest.mark.parametrize("score", ["mse", "elbo"])
def test_vae_scores_and_round_trip(score: str, tmp_path: Path) -> None:
    X = _correlated()
    det = get_detector("autoencoder", variational=True, score=score, **{**SMALL, "bottleneck": 1}).fit(X)
    inside = _correlated(200, seed=1)
    s = det.decision_function(inside)
    assert np.isfinite(s).all()
    assert np.array_equal(s, det.decision_function(inside))  # ELBO draws use a fixed seed
    save_model(det, tmp_path / "vae.rfm")
    assert np.array_equal(s, load_model(tmp_path / "vae.rfm").decision_function(inside))


def test_elbo_needs_variational() -> None:
    with pytest.raises(RareflowError, match="variational"):
        get_detector("autoencoder", score="elbo", **SMALL).fit(_correlated())


def test_save_load_identical_and_columns_checked(fitted, tmp_path: Path) -> None:
    save_model(fitted, tmp_path / "ae.rfm")
    again = load_model(tmp_path / "ae.rfm")
    Xt, _ = _xy(seed=1)
    assert np.array_equal(fitted.decision_function(Xt), again.decision_function(Xt))
    with pytest.raises(RareflowError, match="lacks feature column"):
        again.decision_function(Xt.rename(columns={"b": "B"}))


def test_same_seed_same_scores() -> None:
    X, y = _xy()
    Xt, _ = _xy(seed=1)
    a = get_detector("autoencoder", random_state=1, **SMALL).fit(X, y).decision_function(Xt)
    b = get_detector("autoencoder", random_state=1, **SMALL).fit(X, y).decision_function(Xt)
    c = get_detector("autoencoder", random_state=2, **SMALL).fit(X, y).decision_function(Xt)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_log_features_option(fitted) -> None:
    r = np.random.default_rng(0)
    X = pd.DataFrame({"size": r.lognormal(5, 1, 1000), "w": r.normal(0, 1, 1000)})
    det = get_detector("autoencoder", log_features=["size"], **SMALL).fit(X)
    assert det.model_.pre.describe(["size", "w"])["log"] == ["size"]
    with pytest.raises(RareflowError, match="unknown feature column"):
        get_detector("autoencoder", log_features=["nope"], **SMALL).fit(X)
