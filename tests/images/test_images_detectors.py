"""conv-autoencoder and fastflow: contract, persistence (no pickle), seeds, options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rareflow.detectors import detector_class, get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model, save_model

FAST = {"epochs": 2, "progress": False}


@pytest.mark.parametrize("name,params", [
    ("conv-autoencoder", {}),
    ("conv-autoencoder", {"scale": "learned", "pull_context": "rec_max"}),
    ("conv-autoencoder", {"bottleneck": "conv", "loss": "log", "denoise": 0.0, "scale": "learned", "channels": (8, 16, 32)}),
    ("fastflow", {"backbone_epochs": 2}),
    ("fastflow", {"backbone": "random", "map": "latent", "reduce": "max", "position": False}),
])  # fmt: skip
def test_save_load_round_trip(tmp_path, mixed_grids, name: str, params: dict) -> None:
    X, y = mixed_grids
    det = get_detector(name, **FAST, **params).fit(X[:300], y[:300])
    path = tmp_path / "model.rfm"
    save_model(det, path)
    back = load_model(path)
    np.testing.assert_allclose(back.decision_function(X[300:]), det.decision_function(X[300:]), rtol=1e-6)
    np.testing.assert_allclose(back.anomaly_map(X[300:305]), det.anomaly_map(X[300:305]), rtol=1e-6, atol=1e-6)
    assert back.threshold_ == det.threshold_
    assert detector_class(name).input == "image" and detector_class(name).kind == "one-class"


def test_maps_have_the_input_size_and_scores_follow_reduce(mixed_grids) -> None:
    X, y = mixed_grids
    det = get_detector("conv-autoencoder", reduce="max", **FAST).fit(X[:200])
    maps = det.anomaly_map(X[:4])
    assert maps.shape == (4, *X.shape[1:])
    np.testing.assert_allclose(det.decision_function(X[:4]), maps.reshape(4, -1).max(1), rtol=1e-5)


def test_same_seed_same_numbers(mixed_grids) -> None:
    X, _ = mixed_grids
    a = get_detector("fastflow", backbone_epochs=1, **FAST).fit(X[:150]).decision_function(X[150:200])
    b = get_detector("fastflow", backbone_epochs=1, **FAST).fit(X[:150]).decision_function(X[150:200])
    np.testing.assert_array_equal(a, b)


def test_fit_on_rare_flips_the_sign(mixed_grids) -> None:
    X, y = mixed_grids
    det = get_detector("conv-autoencoder", fit_on="rare", **FAST).fit(X[:300], y[:300])
    assert np.all(det.decision_function(X[300:]) <= 0)  # minus a squared error


def test_user_backbone_is_used_but_not_saved(tmp_path, mixed_grids) -> None:
    X, _ = mixed_grids
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.Tanh())
    det = get_detector("fastflow", backbone=backbone, **FAST).fit(X[:100])
    assert det.anomaly_map(X[:2]).shape == (2, *X.shape[1:])
    assert not any(p.requires_grad for p in backbone.parameters())  # frozen
    with pytest.raises(RareflowError, match="only the built-in backbones"):
        save_model(det, tmp_path / "m.rfm")


def test_selfsup_needs_both_classes_and_trains(mixed_grids) -> None:
    X, y = mixed_grids
    with pytest.raises(RareflowError, match="both classes"):
        get_detector("fastflow", loss="selfsup", **FAST).fit(X[:100])
    det = get_detector("fastflow", loss="selfsup", backbone_epochs=1, **FAST).fit(X[:300], y[:300])
    assert np.isfinite(det.selfsup_floor_) and np.all(np.isfinite(det.decision_function(X[300:])))


def test_bad_inputs_and_params(mixed_grids) -> None:
    X, _ = mixed_grids
    with pytest.raises(RareflowError, match="not a feature table"):
        get_detector("conv-autoencoder", **FAST).fit(pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(RareflowError, match="reduce"):
        get_detector("fastflow", reduce="median", **FAST).fit(X[:50])
    with pytest.raises(RareflowError, match="backbone"):
        get_detector("fastflow", backbone="resnet18", **FAST).fit(X[:50])
    det = get_detector("conv-autoencoder", **FAST).fit(X[:50])
    with pytest.raises(RareflowError, match="trained on"):
        det.decision_function(X[:5, :20, :20])
