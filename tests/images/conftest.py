"""Small simulated camera images shared by the image tests (a few hundred, seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.iact.images import GridMapping, log1p_charge
from rareflow.iact.simulate import simulate_images


@pytest.fixture(scope="package")
def gamma_images():
    """600 simulated gamma images (p.e.), their camera and grid mapping."""
    images, _, camera = simulate_images(600, 1.0, 0, muon_fraction=0.0)
    return images, camera, GridMapping.from_camera(camera)


@pytest.fixture(scope="package")
def mixed_grids():
    """400 valid-or-not gamma/proton images as normalised grids with labels (1 = gamma)."""
    images, truth, camera = simulate_images(400, 0.5, 1, muon_fraction=0.0)
    mapping = GridMapping.from_camera(camera)
    y = (truth["label"].to_numpy() == "gamma").astype(np.int64)
    return mapping.to_grid(log1p_charge(images)), y
