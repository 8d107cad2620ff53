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
    with pytest.raises(RareflowError, match="both classes"):  # rare: labelled (default) needs labels
        get_detector("fastflow", loss="selfsup", **FAST).fit(X[:100])
    det = get_detector("fastflow", loss="selfsup", backbone_epochs=1, **FAST).fit(X[:300], y[:300])
    assert np.isfinite(det.c_) and np.all(np.isfinite(det.decision_function(X[300:])))
    assert det.n_rare_set_ == int((y[:300] == 1).sum())  # R = the labelled other class


def test_selfsup_with_blob_rare_set_needs_no_labels(mixed_grids) -> None:
    X, _ = mixed_grids
    det = get_detector("fastflow", loss="selfsup", rare="blobs", backbone_epochs=1, warmup_epochs=1, **FAST).fit(X[:200])
    assert det.n_rare_set_ == 200 and np.isfinite(det.c_)
    assert det.history_["warmup"]["train_loss"]  # the warm-up on L_B ran first
    # images with an added blob of light score higher than the same images without
    from rareflow.outliers.blobs import add_light_blobs

    clean = X[200:260]
    cells = torch.from_numpy((X.std(axis=0) > 0).astype(np.float32))
    lit = add_light_blobs(torch.from_numpy(clean[:, None]), cells, 1.0, torch.Generator().manual_seed(5))[:, 0].numpy()
    assert det.decision_function(lit).mean() > det.decision_function(clean).mean()


def _flatten_training(path) -> None:
    """Rewrite a model file as saved before TorchDetector: training settings as flat parameters."""
    import io
    import json
    import zipfile

    from rareflow.training import TrainConfig

    buf = io.BytesIO()
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(buf, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "meta.json":
                meta = json.loads(data)
                params = meta["params"]
                cls = detector_class(meta["method"])
                params.update(TrainConfig(**{**cls.training_defaults, **params.pop("training")}).model_dump())
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("name", ["conv-autoencoder", "fastflow"])
def test_model_files_with_flat_training_parameters_still_load(tmp_path, mixed_grids, name: str) -> None:
    X, y = mixed_grids
    det = get_detector(name, **FAST, **({"backbone_epochs": 1} if name == "fastflow" else {})).fit(X[:150])
    path = tmp_path / "old.rfm"
    save_model(det, path)
    _flatten_training(path)
    assert "epochs" in json_params(path) and "training" not in json_params(path)
    back = load_model(path)
    assert back.training_config().epochs == 2 and back.training_config().progress is False
    np.testing.assert_allclose(back.decision_function(X[150:200]), det.decision_function(X[150:200]), rtol=1e-6)


def json_params(path) -> dict:
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("meta.json"))["params"]


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
