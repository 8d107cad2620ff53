"""Hex -> square axial mapping: lossless on the camera pixels, inverse for anomaly maps."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.iact.camera import CameraGeometry
from rareflow.iact.images import GridMapping, check_images, expm1_charge, log1p_charge, square_camera
from rareflow.errors import RareflowError


def _rotated(cam: CameraGeometry, deg: float) -> CameraGeometry:
    a = np.radians(deg)
    x = np.cos(a) * cam.pix_x - np.sin(a) * cam.pix_y
    y = np.sin(a) * cam.pix_x + np.cos(a) * cam.pix_y
    return CameraGeometry.from_arrays(x, y, cam.pix_area, name="rotated", pix_rotation_deg=deg)


@pytest.mark.parametrize(
    "camera",
    [CameraGeometry.hexagonal(), CameraGeometry.hexagonal(960, exact_count=True), _rotated(CameraGeometry.hexagonal(), 19.1)],
    ids=["taiga-571", "partial-ring-960", "rotated-19deg"],
)
def test_hex_to_square_to_hex_is_exact(camera: CameraGeometry) -> None:
    m = GridMapping.from_camera(camera)
    assert m.lattice == "hexagonal"
    x = np.random.default_rng(0).normal(0, 50, size=(5, camera.n_pixels)).astype(np.float32)
    grid = m.to_grid(x)
    assert grid.shape == (5, *m.shape)
    assert np.array_equal(m.to_pixels(grid), x)  # every pixel value back, bit for bit
    assert m.mask.sum() == camera.n_pixels  # one cell per pixel, no pixel merged
    assert np.all(grid[:, ~m.mask] == 0)


def test_neighbours_stay_neighbours_on_the_grid() -> None:
    cam = CameraGeometry.hexagonal()
    m = GridMapping.from_camera(cam)
    i, j = cam.neighbor_pairs()
    dr, dc = m.row[i] - m.row[j], m.col[i] - m.col[j]
    assert np.all(np.maximum(np.abs(dr), np.abs(dc)) == 1)  # inside the 3x3 neighbourhood
    diagonal = dr * dc
    assert len(np.unique(diagonal[diagonal != 0])) == 1  # axial addressing: 6 of the 8 cells, one diagonal unused


def test_square_images_map_to_themselves() -> None:
    m = GridMapping.from_camera(square_camera(28, 28))
    ident = GridMapping.square(28, 28)
    assert m.shape == (28, 28) and m.lattice == "square"
    assert np.array_equal(m.row, ident.row) and np.array_equal(m.col, ident.col)


def test_maps_of_another_size_are_resized_to_the_camera() -> None:
    m = GridMapping.from_camera(CameraGeometry.hexagonal())
    small = np.zeros((1, 8, 8), np.float32)
    small[0, 0, 0] = 1.0
    px = m.to_pixels(small)
    assert px.shape == (1, m.n_pixels)
    top_left = (m.row < m.shape[0] // 3) & (m.col < m.shape[1] // 3)
    assert px[0, top_left].max() > 0 and px[0, ~top_left].max() == 0


def test_irregular_layout_is_refused() -> None:
    r = np.random.default_rng(1)
    cam = CameraGeometry.from_arrays(r.uniform(-3, 3, 200), r.uniform(-3, 3, 200), name="random")
    with pytest.raises(RareflowError, match="regular"):
        GridMapping.from_camera(cam)


def test_log1p_normalisation_is_invertible_and_signed() -> None:
    c = np.array([-3.0, 0.0, 2.5, 1500.0, np.nan], dtype=np.float32)
    u = log1p_charge(c)
    assert u[4] == 0.0 and u[0] < 0 and u[1] == 0
    np.testing.assert_allclose(expm1_charge(u[:4]), c[:4], rtol=1e-5)


def test_check_images_errors() -> None:
    import pandas as pd

    with pytest.raises(RareflowError, match="not a feature table"):
        check_images(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(RareflowError, match=r"shape \(n, H, W\)"):
        check_images(np.zeros((3, 4)))
    with pytest.raises(RareflowError, match="trained on"):
        check_images(np.zeros((2, 5, 5)), shape=(4, 4))
    assert check_images(np.zeros((2, 1, 4, 4))).shape == (2, 4, 4)
