"""Anomaly maps localise injected artefacts on simulated gamma images (issue #7).

Artefacts: a hot-pixel cluster (a random pixel and its neighbours, +30..100 p.e.) and a muon arc
(a simulated muon image added over a gamma; arc = pixels with > 5 p.e. of muon light). The issue's
target: the map's maximum lies **on** an artefact pixel in >= 90 % of images.

conv-autoencoder: its defaults (dense bottleneck, denoising with synthetic light blobs, poisson
loss and pull) trained on 2,000 gamma images as examples/image_localisation.py does (about 1.5 min
on one thread), tested on 200 held-out gammas; examples/IMAGES.md section 2 gives the seeds 0 / 1
figures of the script. fastflow (500 training images, 10 + 10 epochs) stays below the target
(IMAGES.md: 0.665 / 0.435 hot, 0.338 / 0.325 arc strictly on); its floors guard the level it
reaches "on or touching" (its map is computed at half resolution).
"""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.iact.images import GridMapping, log1p_charge
from rareflow.iact.simulate import simulate_images
from rareflow.detectors import get_detector

pytestmark = pytest.mark.slow  # trains conv-autoencoder and fastflow on simulated images

# strict "on the artefact" floors: (hot cluster, muon arc); fastflow: "on or touching" floors
FLOORS = {"conv-autoencoder": (0.90, 0.90), "fastflow": (0.85, 0.75)}


def _hit_rates(det, camera, mapping, images: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    maps = mapping.to_pixels(det.anomaly_map(mapping.to_grid(log1p_charge(images))))
    top = maps.argmax(axis=1)
    rows = np.arange(len(images))
    touched = mask | ((mask.astype(np.int8) @ camera.neighbors.toarray().astype(np.int8)) > 0)
    return float(mask[rows, top].mean()), float(touched[rows, top].mean())


@pytest.fixture(scope="module", params=["fastflow", "conv-autoencoder"])
def fitted(request, gamma_images):
    if request.param == "fastflow":
        images, camera, mapping = gamma_images
        det = get_detector("fastflow", epochs=10, backbone_epochs=10, progress=False, random_state=0)
        det.fit(mapping.to_grid(log1p_charge(images[:500])))
        return det, images[500:], camera, mapping
    images, _, camera = simulate_images(2200, 1.0, 0, muon_fraction=0.0)
    mapping = GridMapping.from_camera(camera)
    det = get_detector("conv-autoencoder", progress=False, random_state=0)
    det.fit(mapping.to_grid(log1p_charge(images[:2000])))
    return det, images[2000:], camera, mapping


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
