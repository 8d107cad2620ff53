"""sim_telarray images through the image path (skipped without ../shared/data or ctapipe)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED_DATA, require_shared

pytestmark = pytest.mark.shared_data


@pytest.mark.parametrize("name,camera,grid", [
    ("gamma_with_obslevel_particles.simtel.zst", "HESS-1U", (42, 41)),
    ("lst_muons_with_true_photons.simtel.zst", "LSTCam", (55, 55)),
])  # fmt: skip
def test_simtel_images_map_losslessly(name: str, camera: str, grid: tuple[int, int]) -> None:
    pytest.importorskip("ctapipe", reason="needs the iact extra: pip install 'rareflow[iact]'")
    from rareflow.iact.images import load_simtel

    images = load_simtel(require_shared(SHARED_DATA / "simtel" / name))
    assert images.camera.name == camera and images.mapping.shape == grid
    assert len(images.table) == len(images.pixels) and "hillas_intensity" in images.table
    assert np.array_equal(images.mapping.to_pixels(images.grids(normalise=False)), images.pixels)
