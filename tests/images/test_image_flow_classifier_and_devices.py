"""image-flow-classifier (likelihood-ratio score) and --device plumbing of every image method."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rareflow.detectors import available, detector_class, get_detector
from rareflow.persistence import load_model, save_model

TINY = {
    "conv-autoencoder": {"channels": [4, 8], "hidden": 16},
    "fastflow": {"channels": [4, 8], "backbone_epochs": 1, "steps": 2},
    "cnn-classifier": {"channels": [4, 8], "hidden": [8]},
    "image-flow-classifier": {"channels": [4, 8], "backbone_epochs": 1, "steps": 2},
}


def _blocks(n: int = 300, seed: int = 0):
    """Noise images; the rare class has a bright block (local texture the flows can see)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    X = np.abs(rng.normal(0.0, 0.2, (n, 12, 12))).astype(np.float32)
    X[y == 1, 3:7, 3:7] += 2.0
    return X, y


def test_every_image_method_is_covered() -> None:
    assert {m for m in available() if getattr(detector_class(m), "input", "table") == "image"} == set(TINY)


def test_score_is_the_log_likelihood_ratio(tmp_path) -> None:
    X, y = _blocks()
    det = get_detector("image-flow-classifier", training={"epochs": 4, "progress": False}, **TINY["image-flow-classifier"])
    det.fit(X[:200], y[:200])
    lp0, lp1 = det.log_prob_pair(X[200:])
    s = det.decision_function(X[200:])
    np.testing.assert_allclose(s, lp1 - lp0, rtol=1e-6, atol=1e-6)
    yt = y[200:]
    # (a flow may give the simpler bulk images a higher likelihood than its own class, Nalisnick et
    # al. 2019; the ratio is what separates)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(yt, s) > 0.9
    save_model(det, tmp_path / "m.rfm")
    np.testing.assert_array_equal(load_model(tmp_path / "m.rfm").decision_function(X[200:]), s)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
@pytest.mark.parametrize("name", sorted(TINY))
def test_device_cuda_without_cuda_falls_back_with_a_warning(name: str) -> None:
    X, y = _blocks(120)
    det = get_detector(name, device="cuda", training={"epochs": 1, "progress": False}, **TINY[name])
    assert det.training_config().device == "cuda"  # the flat --param device=cuda reaches the training settings
    with pytest.warns(UserWarning, match="no CUDA device; using cpu"):
        det.fit(X, y)
    assert all(p.device.type == "cpu" for p in det.model_.parameters())
    assert np.isfinite(det.decision_function(X[:10])).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", sorted(TINY))
def test_device_cuda_trains_and_scores_on_the_gpu(name: str) -> None:
    X, y = _blocks(200)
    det = get_detector(name, training={"epochs": 2, "progress": False, "device": "cuda"}, **TINY[name]).fit(X, y)
    assert all(p.device.type == "cuda" for p in det.model_.parameters())
    cpu = get_detector(name, training={"epochs": 2, "progress": False}, **TINY[name]).fit(X, y)
    assert np.corrcoef(det.decision_function(X), cpu.decision_function(X))[0, 1] > 0.9
