"""Camera geometry: pixel counts, neighbours, borders, position lookup, ctapipe conversion."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.iact.camera import CameraGeometry
from rareflow.errors import RareflowError


def test_default_camera_is_taiga_like() -> None:
    cam = CameraGeometry.hexagonal()
    assert 560 <= cam.n_pixels <= 590
    assert cam.pixel_spacing_deg == pytest.approx(0.36)
    assert 9.0 <= cam.fov_deg <= 10.5
    assert np.allclose(cam.pix_area, np.sqrt(3) / 2 * 0.36**2)
    # ring-complete camera: 6-fold symmetric, centred
    assert abs(cam.pix_x.mean()) < 1e-9 and abs(cam.pix_y.mean()) < 1e-9


def test_exact_count_and_fov() -> None:
    assert CameraGeometry.hexagonal(960, 0.16, exact_count=True).n_pixels == 960
    cam = CameraGeometry.hexagonal(pixel_spacing_deg=0.36, fov_deg=9.7)
    assert np.hypot(cam.pix_x, cam.pix_y).max() + 0.18 <= 9.7 / 2 + 1e-9


def test_neighbours_symmetric_and_six_inside() -> None:
    cam = CameraGeometry.hexagonal()
    nb = cam.neighbors
    assert (nb != nb.T).nnz == 0
    assert nb.diagonal().sum() == 0
    n_nb = cam.n_neighbors
    inner = np.hypot(cam.pix_x, cam.pix_y) < 0.8 * np.hypot(cam.pix_x, cam.pix_y).max()
    assert np.all(n_nb[inner] == 6)
    assert n_nb.min() >= 2
    # neighbours are exactly one pitch apart
    i, j = cam.neighbor_pairs()
    assert np.allclose(np.hypot(cam.pix_x[i] - cam.pix_x[j], cam.pix_y[i] - cam.pix_y[j]), 0.36)
    lists = cam.neighbor_lists()
    assert all(len(lists[k]) == n_nb[k] for k in range(cam.n_pixels))
    table = cam.neighbor_table()
    assert table.shape == (cam.n_pixels, 6) and np.all((table == cam.n_pixels).sum(axis=1) == 6 - n_nb)


def test_border_rings() -> None:
    cam = CameraGeometry.hexagonal()
    b1, b2 = cam.border_mask(1), cam.border_mask(2)
    assert b1.sum() > 0 and np.all(b2[b1]) and b2.sum() > b1.sum()
    r = np.hypot(cam.pix_x, cam.pix_y)
    assert r[b1].min() > r[~b2].max() - 0.5  # the border is the outside of the camera
    with pytest.raises(RareflowError):
        cam.border_mask(0)


def test_pixel_index_lattice_matches_nearest_centre() -> None:
    cam = CameraGeometry.hexagonal()
    assert np.array_equal(cam.pixel_index(cam.pix_x, cam.pix_y), np.arange(cam.n_pixels))
    gen = np.random.default_rng(0)
    x, y = gen.uniform(-4, 4, (2, 20000))
    fast = cam.pixel_index(x, y)
    generic = CameraGeometry.from_arrays(cam.pix_x, cam.pix_y).pixel_index(x, y)
    inside = (fast >= 0) & (generic >= 0)
    assert inside.mean() > 0.6
    assert np.array_equal(fast[inside], generic[inside])
    assert np.all(cam.pixel_index(np.array([20.0]), np.array([0.0])) == -1)


def test_hexagon_vertices_tile_the_plane() -> None:
    cam = CameraGeometry.hexagonal(n_pixels=37)
    v = cam.hexagon_vertices()
    assert v.shape == (37, 6, 2)
    # flat-to-flat size equals the pitch: opposite-edge distance = 2 * inradius
    edge_mid = 0.5 * (v[0, 0] + v[0, 1])
    inradius = np.hypot(edge_mid[0] - cam.pix_x[0], edge_mid[1] - cam.pix_y[0])
    assert 2 * inradius == pytest.approx(0.36)


def test_bad_arguments() -> None:
    with pytest.raises(RareflowError):
        CameraGeometry.hexagonal(pixel_spacing_deg=0)
    with pytest.raises(RareflowError):
        CameraGeometry.from_arrays([0.0, 1.0], [0.0])
    with pytest.raises(RareflowError):
        CameraGeometry.from_arrays([0.0, np.nan], [0.0, 1.0])


def test_same_neighbours_and_borders_as_ctapipe() -> None:
    pytest.importorskip("ctapipe")
    for cam in (CameraGeometry.hexagonal(), CameraGeometry.hexagonal(960, 0.16, exact_count=True)):
        geom = cam.to_ctapipe()
        assert (geom.neighbor_matrix_sparse != cam.neighbors).nnz == 0
        for width in (1, 2):
            assert np.array_equal(geom.get_border_pixel_mask(width), cam.border_mask(width))


def test_from_ctapipe_geometry_in_the_simtel_file(simtel_dir) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ctapipe")
    import astropy.units as u
    from ctapipe.coordinates import TelescopeFrame
    from ctapipe.io import EventSource

    with EventSource(simtel_dir / "gamma_with_obslevel_particles.simtel.zst") as src:
        geom = src.subarray.tel[1].camera.geometry
    assert geom.pix_x.unit.is_equivalent(u.m)
    cam = CameraGeometry.from_ctapipe(geom)
    ref = geom.transform_to(TelescopeFrame())
    assert cam.n_pixels == 960 and cam.name == "HESS-1U"
    assert np.allclose(cam.pix_x, ref.pix_x.to_value(u.deg)) and np.allclose(cam.pix_y, ref.pix_y.to_value(u.deg))
    assert 0.1 < cam.pixel_spacing_deg < 0.2  # H.E.S.S. pixels are 0.16 deg
    assert (cam.neighbors != ref.neighbor_matrix_sparse).nnz == 0
    back = cam.to_ctapipe()
    assert np.allclose(back.pix_x.to_value(u.deg), cam.pix_x)
