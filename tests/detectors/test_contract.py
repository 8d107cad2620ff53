"""One contract for every registered method (scikit-learn's ``parametrize_with_checks`` idea).

For each name in ``available()``: clone works; higher = rarer on a planted example;
``predict == (score > threshold_)``; a save/load round trip gives identical scores; a different
seed gives a different model (unless the class declares ``deterministic``); a parameter set to an
absurd value of the wrong type gives a RareflowError at construction or at the start of fit.
Tiny data and 2-3 epochs keep the file fast.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone

from rareflow.detectors import available, detector_class, get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model, save_model

TORCH_FAST = {"epochs": 3, "batch_size": 64, "progress": False}
FAST: dict[str, dict] = {
    "gbdt": {"max_iter": 20, "early_stopping": True, "validation_fraction": 0.3},  # the seed acts via the holdout
    "iforest": {"n_estimators": 20},
    "mahalanobis": {},
    "power-mahalanobis": {},
    "autoencoder": {**TORCH_FAST, "hidden": [8], "bottleneck": 2},
    "flow": {**TORCH_FAST, "transforms": 2, "hidden": [8, 8]},
    "nn-classifier": {**TORCH_FAST, "hidden": [8]},
    "flow-classifier": {**TORCH_FAST, "epochs": 30, "transforms": 2, "hidden": [8, 8], "ensemble": 1},  # 3: not yet
    "selfsup-flow": {**TORCH_FAST, "transforms": 2, "hidden": [8, 8]},
    "outlier-exposure": {"transforms": 2, "flow_hidden": [8, 8], "flow_epochs": 2, "hidden": [8], "epochs": 3,
                         "batch_size": 64, "n_generated": 200, "progress": False},
    "conv-autoencoder": {"epochs": 2, "progress": False},
    "fastflow": {"epochs": 2, "backbone_epochs": 1, "progress": False},
    "cnn-classifier": {"epochs": 3, "progress": False, "channels": [4, 8], "hidden": [8]},
    "image-flow-classifier": {"epochs": 3, "backbone_epochs": 1, "progress": False, "channels": [4, 8], "steps": 2},
}  # fmt: skip
NON_TORCH = {"gbdt", "iforest", "mahalanobis", "power-mahalanobis"}


def methods(checked_for_torch: bool = False) -> list:
    """Every registered method (``checked_for_torch`` is kept for call sites: every torch method is
    on TorchDetector with its param_specs now, so none is marked xfail)."""
    return [pytest.param(name, id=name) for name in available()]


def planted(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bulk N(0, I) and 20% rare events shifted by 4 sigma (tables), or flat noise images with a
    bright block (image methods); labels 1 rare / 0 bulk."""
    rng = np.random.default_rng(seed)
    n, n_rare = 400, 80
    y = np.r_[np.zeros(n - n_rare, dtype=np.int64), np.ones(n_rare, dtype=np.int64)]
    if getattr(detector_class(name), "input", "table") == "image":
        X = np.abs(rng.normal(0.0, 0.1, size=(n, 16, 16))).astype(np.float32)
        X[y == 1, 5:10, 5:10] += 3.0
    else:
        X = rng.normal(size=(n, 4))
        X[y == 1] += 4.0
    order = rng.permutation(n)
    return X[order], y[order]


def fitted(name: str, X: np.ndarray, y: np.ndarray, **extra) -> object:
    det = get_detector(name, **{**FAST[name], **extra})
    return det.fit(X, y)


def test_every_method_has_fast_settings() -> None:
    assert set(available()) == set(FAST), "add the new method to FAST (tiny settings) in this file"


@pytest.mark.parametrize("name", methods())
def test_clone_keeps_the_parameters(name: str) -> None:
    det = get_detector(name, **FAST[name])
    twin = clone(det)
    assert twin is not det and twin.get_params(deep=False).keys() == det.get_params(deep=False).keys()
    assert all(
        repr(twin.get_params(deep=False)[k]) == repr(v) for k, v in det.get_params(deep=False).items()
    )


@pytest.mark.parametrize("name", methods())
def test_higher_is_rarer_and_predict_matches_the_cut(name: str) -> None:
    X, y = planted(name)
    det = fitted(name, X[:300], y[:300])
    s = det.decision_function(X[300:])
    yt = y[300:]
    assert s[yt == 1].mean() > s[yt == 0].mean(), "planted rare events must score higher"
    np.testing.assert_array_equal(det.predict(X[300:]), (s > det.threshold_).astype(np.int64))


@pytest.mark.parametrize("name", methods())
def test_save_load_round_trip_gives_identical_scores(tmp_path, name: str) -> None:
    X, y = planted(name)
    det = fitted(name, X[:300], y[:300])
    save_model(det, tmp_path / "m.rfm")
    back = load_model(tmp_path / "m.rfm")
    np.testing.assert_array_equal(back.decision_function(X[300:]), det.decision_function(X[300:]))
    assert back.threshold_ == det.threshold_ and back.threshold_rule_ == det.threshold_rule_


@pytest.mark.parametrize("name", methods())
def test_a_different_seed_gives_a_different_model(name: str) -> None:
    cls = detector_class(name)
    if "random_state" not in cls._get_param_names():
        assert cls.deterministic, f"{name} takes no seed: declare deterministic = True"
        return
    X, y = planted(name)
    a = fitted(name, X[:300], y[:300], random_state=1).decision_function(X[300:])
    again = fitted(name, X[:300], y[:300], random_state=1).decision_function(X[300:])
    b = fitted(name, X[:300], y[:300], random_state=2).decision_function(X[300:])
    np.testing.assert_array_equal(a, again)  # same seed, same model
    if cls.deterministic:
        np.testing.assert_array_equal(a, b)
    else:
        assert not np.array_equal(a, b), f"{name}: random_state has no effect; declare deterministic = True"


def numeric_parameters(name: str) -> list[str]:
    """Constructor parameters whose default is a number (not a flag)."""
    sig = inspect.signature(detector_class(name).__init__)
    return [
        p.name for p in sig.parameters.values()
        if isinstance(p.default, (int, float)) and not isinstance(p.default, bool)
    ]  # fmt: skip


@pytest.mark.parametrize("name", methods(checked_for_torch=True))
def test_absurd_parameters_fail_early_with_one_line(name: str) -> None:
    X, y = planted(name)
    bad = {p: "abc" for p in numeric_parameters(name)}
    bad.update(threshold="abc")
    if detector_class(name).kind == "one-class":
        bad["fit_on"] = 17
    assert bad
    for pname, value in bad.items():
        with pytest.raises(RareflowError, match=pname) as info:
            get_detector(name, **{**FAST[name], pname: value}).fit(X[:100], y[:100])
        assert "\n" not in str(info.value)


COMMON = {"training", "threshold", "random_state", "fit_on"}  # checked by the base class / TrainConfig


@pytest.mark.parametrize("name", sorted(set(available()) - NON_TORCH))
def test_every_torch_architecture_parameter_is_declared_in_param_specs(name: str) -> None:
    cls = detector_class(name)
    unchecked = set(cls._get_param_names()) - set(cls.param_specs) - COMMON
    assert not unchecked, f"{name}: add {sorted(unchecked)} to param_specs"
    cls().check_params()  # the defaults satisfy the specs


@pytest.mark.parametrize("name", methods())
def test_every_declared_parameter_refuses_a_wrong_value_at_construction(name: str) -> None:
    for pname in detector_class(name).param_specs:
        with pytest.raises(RareflowError, match=rf"parameter {pname}=") as info:
            get_detector(name, **{**FAST[name], pname: "abc"})  # get_detector checks: nothing is fitted
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "pname", "value"),
    [("flow", "transforms", 0), ("flow", "hidden", [0, 8]), ("flow", "hidden", []), ("flow", "activation", "gelu"),
     ("flow", "bins", 1.5), ("flow", "score", "latent"), ("flow", "log_features", "hillas_size"),
     ("autoencoder", "bottleneck", 0), ("autoencoder", "variational", "yes"), ("nn-classifier", "dropout", 1.0),
     ("flow-classifier", "rare_fraction", 1.5), ("flow-classifier", "ensemble", 0), ("flow-classifier", "mode", "gan"),
     ("selfsup-flow", "c_quantile", 2.0), ("selfsup-flow", "synthetic", "scaled"), ("selfsup-flow", "fit_on", "all"),
     ("outlier-exposure", "sigma", [3.0, 1.0]), ("outlier-exposure", "n_classes", 1), ("outlier-exposure", "hidden", 64)],
)  # fmt: skip
def test_out_of_range_architecture_values_fail_at_construction(name: str, pname: str, value) -> None:
    with pytest.raises(RareflowError, match=rf"^method '{name}': parameter {pname}=.* it must be "):
        get_detector(name, **{pname: value})


def test_in_range_values_are_accepted() -> None:
    for name, params in [("flow", {"hidden": (16,), "bins": 4, "log_features": ["a"], "dequantize": True}),
                         ("outlier-exposure", {"sigma": [1.5, 3.0]}), ("outlier-exposure", {"sigma": None}),
                         ("selfsup-flow", {"c": -3.5}), ("flow-classifier", {"rare_fraction": None}),
                         ("nn-classifier", {"hidden": []})]:  # fmt: skip
        get_detector(name, **params)
