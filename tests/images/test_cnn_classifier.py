"""cnn-classifier: camera-respecting augmentation, the hybrid (images + Hillas) input, persistence, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.spatial import cKDTree

from rareflow.cli import main
from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.images import GridMapping, ImagesWithFeatures, grid_symmetries, square_camera
from rareflow.persistence import load_model, save_model

FAST = {"epochs": 3, "progress": False, "channels": [4, 8], "hidden": [8]}


def geometric_symmetries(camera: CameraGeometry) -> set[tuple[int, ...]]:
    """Pixel permutations of every rotation (k x 30 deg) and reflection of the pixel positions about
    their centroid that lands each pixel on a pixel (an independent, real-space reference)."""
    pts = np.column_stack([camera.pix_x, camera.pix_y])
    c = pts.mean(axis=0)
    tree = cKDTree(pts)
    spacing = np.sort(tree.query(pts, k=2)[0][:, 1])[0]
    perms = set()
    for k in range(12):
        a = np.radians(30.0 * k)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        for mirror in (np.eye(2), np.diag([1.0, -1.0])):
            moved = (pts - c) @ (rot @ mirror).T + c
            d, j = tree.query(moved)
            if d.max() < 0.1 * spacing and len(np.unique(j)) == len(j):
                perms.add(tuple(int(v) for v in j))
    return perms


def grid_perms_as_pixels(camera: CameraGeometry) -> set[tuple[int, ...]]:
    """The detector's grid symmetries translated to pixel permutations (pixel i goes to pixel j[i])."""
    m = GridMapping.from_camera(camera)
    out = set()
    for src in grid_symmetries(m.mask, m.lattice):
        ident = np.arange(camera.n_pixels, dtype=np.float64)
        moved = m.to_pixels(m.to_grid(ident).reshape(-1)[src].reshape(m.shape))  # moved[j] = i: pixel i went to j
        dest = np.empty(camera.n_pixels, dtype=int)
        dest[moved.astype(int)] = np.arange(camera.n_pixels)
        out.add(tuple(int(v) for v in dest))
    return out


@pytest.mark.parametrize("camera", [CameraGeometry.hexagonal(), CameraGeometry.hexagonal(960, exact_count=True),
                                    square_camera(6, 6)], ids=["taiga-571", "partial-960", "square-6"])  # fmt: skip
def test_grid_symmetries_are_the_cameras_rotations_and_reflections(camera) -> None:
    got = grid_perms_as_pixels(camera)
    assert got == geometric_symmetries(camera)
    assert len(got) == {"taiga-571": 12, "square-6": 8}.get(camera.name if camera.name == "square" else "", len(got))


def test_the_taiga_camera_has_the_twelve_hexagonal_symmetries() -> None:
    m = GridMapping.from_camera(CameraGeometry.hexagonal())
    assert len(grid_symmetries(m.mask, "hexagonal")) == 12
    assert len(grid_symmetries(np.ones((6, 6), bool), "square")) == 8


def test_an_augmented_image_stays_on_the_camera_cells(gamma_images) -> None:
    import torch

    images, camera, mapping = gamma_images
    X = mapping.to_grid(images[:40].astype(np.float32))
    det = get_detector("cnn-classifier", **FAST)
    y = np.r_[np.zeros(20), np.ones(20)].astype(int)
    det.fit(X, y)
    model = det.model_
    assert det.n_symmetries_ == 12
    torch.manual_seed(0)
    aug = model.augment(torch.from_numpy(X.reshape(len(X), -1))).numpy().reshape(X.shape)
    assert np.all(aug[:, ~mapping.mask] == 0)  # nothing off the camera
    np.testing.assert_allclose(np.sort(aug[:, mapping.mask], axis=1), np.sort(X[:, mapping.mask], axis=1))  # a permutation
    assert not np.array_equal(aug, X)


def _noise_images_and_a_telling_column(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = np.abs(rng.normal(0.0, 1.0, (n, 12, 12))).astype(np.float32)  # images carry no class information
    table = pd.DataFrame({"size": np.exp(rng.normal(5.0 + 2.0 * y, 0.5)), "noise": rng.normal(size=n)})
    return X, table, y


def test_hybrid_reads_the_hillas_features(tmp_path) -> None:
    from sklearn.metrics import roc_auc_score

    X, table, y = _noise_images_and_a_telling_column()
    both = ImagesWithFeatures(X, table)
    hybrid = get_detector("cnn-classifier", hillas=True, **{**FAST, "epochs": 15}).fit(both[:300], y[:300])
    assert hybrid.uses_features and list(hybrid.feature_names_in_) == ["size", "noise"]
    assert roc_auc_score(y[300:], hybrid.decision_function(both[300:])) > 0.85  # images alone: chance
    plain = get_detector("cnn-classifier", **FAST).fit(X[:300], y[:300])
    assert roc_auc_score(y[300:], plain.decision_function(X[300:])) < 0.75
    with pytest.raises(RareflowError, match="hillas: true needs the images and the feature table"):
        hybrid.decision_function(X[300:])
    save_model(hybrid, tmp_path / "h.rfm")
    back = load_model(tmp_path / "h.rfm")
    np.testing.assert_array_equal(back.decision_function(both[300:]), hybrid.decision_function(both[300:]))
    with pytest.raises(RareflowError, match="lacks feature column"):
        back.decision_function(ImagesWithFeatures(X[:5], table[["size"]].iloc[:5]))


def test_compare_runs_cnn_classifier_image_only_and_hybrid(tmp_path) -> None:
    cfg = tmp_path / "cfg.yaml"
    params = {"epochs": 1, "progress": False, "channels": [4, 8], "hidden": [8]}
    cfg.write_text(yaml.safe_dump(json.loads(json.dumps({
        "data": {"source": "simulate", "images": True, "simulate": {"n_events": 600}},
        "scenario": {"kind": "rare", "test_rare_fraction": 0.05, "seeds": [0]},
        "methods": [{"name": "cnn-classifier", "params": params},
                    {"name": "cnn-classifier", "label": "cnn-classifier (hybrid)", "params": {**params, "hillas": True}}],
    }))))  # fmt: skip
    out = tmp_path / "out"
    assert main(["compare", "--config", str(cfg), "--out", str(out), "-q"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["methods"]) == {"cnn-classifier", "cnn-classifier (hybrid)"}
    assert all(doc["methods"][m]["auc"] is not None for m in doc["methods"])
