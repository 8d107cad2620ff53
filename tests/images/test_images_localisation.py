"""Anomaly maps localise injected artefacts on simulated gamma images (issue #7; 500 training images).

Artefacts: a hot-pixel cluster (a random pixel and its neighbours, +30..100 p.e.) and a muon arc
(a simulated muon image added over a gamma; arc = pixels with > 5 p.e. of muon light). The issue's
target: the map's maximum lies **on** an artefact pixel in >= 90 % of images.

Measured with examples/image_localisation.py (2,000 training images, 200 test images, seeds 0 / 1;
examples/IMAGES.md section 2): conv-autoencoder with the default map (charge pull, pull_cap 3,
neighbours 0.2) 0.970 / 0.970 (hot cluster, target met) and 0.846 / 0.893 (muon arc, below it:
bright gamma pixels the autoencoder reconstructs too dim win the maximum) strictly on the
artefact; fastflow 0.665 / 0.435 and 0.338 / 0.325 strictly on (below it). These tests guard the
levels reached at this small, seeded setup (printed by ``-s``; measured here: conv-autoencoder
hot cluster 0.95, muon arc 0.88 strictly on; fastflow 0.97 and 0.87 on or touching), so the arc
floor stays 0.85.
"""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.data.images import log1p_charge
from rareflow.data.simulate import simulate_images
from rareflow.detectors import get_detector

# strict "on the artefact" floors: (hot cluster, muon arc); fastflow: "on or touching" floors
FLOORS = {"conv-autoencoder": (0.90, 0.85), "fastflow": (0.85, 0.75)}


def _hit_rates(det, camera, mapping, images: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    maps = mapping.to_pixels(det.anomaly_map(mapping.to_grid(log1p_charge(images))))
    top = maps.argmax(axis=1)
    rows = np.arange(len(images))
    touched = mask | ((mask.astype(np.int8) @ camera.neighbors.toarray().astype(np.int8)) > 0)
    return float(mask[rows, top].mean()), float(touched[rows, top].mean())


@pytest.fixture(scope="module", params=["fastflow", "conv-autoencoder"])
def fitted(request, gamma_images):
    images, camera, mapping = gamma_images
    extra = {"backbone_epochs": 10} if request.param == "fastflow" else {}
    det = get_detector(request.param, epochs=10, progress=False, random_state=0, **extra)
    det.fit(mapping.to_grid(log1p_charge(images[:500])))
    return det, images[500:], camera, mapping


def _check(det, strict: float, touching: float, which: int) -> None:
    if det.name == "conv-autoencoder":  # strictly on the artefact
        assert strict >= FLOORS[det.name][which]
    else:  # fastflow: its map is computed at half resolution; one-pixel tolerance
        assert touching >= FLOORS[det.name][which]


def test_hot_pixel_cluster_is_found(fitted) -> None:
    det, test, camera, mapping = fitted
    rng = np.random.default_rng(7)
    neighbours = camera.neighbor_lists()
    hot, mask = test.copy(), np.zeros(test.shape, dtype=bool)
    for i in range(len(hot)):
        centre = rng.integers(camera.n_pixels)
        pix = np.r_[centre, neighbours[centre]]
        hot[i, pix] += rng.uniform(30.0, 100.0)
        mask[i, pix] = True
    strict, touching = _hit_rates(det, camera, mapping, hot, mask)
    print(f"{det.name} hot cluster: on it {strict:.2f}, on or touching {touching:.2f}")
    _check(det, strict, touching, 0)


def test_muon_arc_over_gamma_is_found(fitted) -> None:
    det, test, camera, mapping = fitted
    muons, _, _ = simulate_images(len(test), 0.0, 3, muon_fraction=1.0, nsb_rate=0.0)
    mask = muons > 5.0
    keep = mask.sum(axis=1) >= 5
    strict, touching = _hit_rates(det, camera, mapping, (test + muons)[keep], mask[keep])
    print(f"{det.name} muon arc ({keep.sum()} images): on it {strict:.2f}, on or touching {touching:.2f}")
    assert keep.sum() >= 80
    _check(det, strict, touching, 1)
