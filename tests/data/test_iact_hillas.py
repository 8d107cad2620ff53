"""Hillas and derived parameters: ctapipe agreement, analytic ellipses, MAGIC conventions, flags."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from rareflow.iact.camera import CameraGeometry
from rareflow.iact.cleaning import tailcuts_clean
from rareflow.iact.hillas import (
    HILLAS_COLUMNS,
    MAGIC_COLUMNS,
    MM_PER_DEG_MAGIC,
    extract_parameters,
    hillas_parameters,
    magic_view,
)
from rareflow.errors import RareflowError

CAM = CameraGeometry.hexagonal()
ANGLES = ["hillas_x", "hillas_y", "hillas_r", "hillas_length", "hillas_width"]
RTOL, ATOL_DEG = 1e-6, 1e-6


def _ctapipe_reference(geom, image: np.ndarray, mask: np.ndarray) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import astropy.units as u
    from ctapipe.image import hillas_parameters as ct_hillas
    from ctapipe.image import leakage_parameters, number_of_islands

    h = ct_hillas(geom[mask], image[mask])
    leak = leakage_parameters(geom, image, mask)
    return {
        "hillas_intensity": h.intensity,
        "hillas_x": h.fov_lon.to_value(u.deg),
        "hillas_y": h.fov_lat.to_value(u.deg),
        "hillas_r": h.r.to_value(u.deg),
        "hillas_phi": h.phi.to_value(u.deg),
        "hillas_length": h.length.to_value(u.deg),
        "hillas_width": h.width.to_value(u.deg),
        "hillas_psi": h.psi.to_value(u.deg),
        "hillas_skewness": h.skewness,
        "hillas_kurtosis": h.kurtosis,
        "leakage_intensity_width_1": leak.intensity_width_1,
        "leakage_intensity_width_2": leak.intensity_width_2,
        "n_pixels": int(mask.sum()),
        "n_islands": number_of_islands(geom, mask)[0],
    }


def _assert_matches(row: pd.Series, ref: dict[str, float]) -> None:
    for key, val in ref.items():
        got = row[key]
        if key in ("hillas_psi", "hillas_phi"):  # angles [deg]: absolute, modulo 360
            diff = (got - val + 180.0) % 360.0 - 180.0
            assert abs(diff) <= ATOL_DEG, (key, got, val)
        elif key in ANGLES:
            assert np.isclose(got, val, rtol=RTOL, atol=ATOL_DEG), (key, got, val)
        elif key.startswith("leakage"):  # ctapipe sums float32 charges: ~1e-7 relative rounding
            assert np.isclose(got, val, rtol=1e-5, atol=1e-7), (key, got, val)
        elif key in ("hillas_skewness", "hillas_kurtosis"):
            assert np.isclose(got, val, rtol=RTOL, atol=1e-9), (key, got, val)
        else:
            assert np.isclose(got, val, rtol=RTOL, atol=0), (key, got, val)


def test_equals_ctapipe_on_simulated_images(small_sim) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ctapipe")
    geom = CAM.to_ctapipe()
    images = small_sim.images[:600]
    settings = dict(picture_thresh=6.0, boundary_thresh=3.0, min_number_picture_neighbors=1)
    df = extract_parameters(images, CAM, **settings)
    mask = tailcuts_clean(images, CAM, **settings)
    n_checked = 0
    for k in range(len(images)):
        if mask[k].sum() < 3:
            assert not df["is_valid"][k]
            continue
        _assert_matches(df.iloc[k], _ctapipe_reference(geom, images[k], mask[k]))
        n_checked += 1
    assert n_checked > 200


def _simtel_images(path, max_events: int = 5):  # type: ignore[no-untyped-def]
    from ctapipe.calib import CameraCalibrator
    from ctapipe.coordinates import TelescopeFrame
    from ctapipe.io import EventSource

    out = []
    with EventSource(path, focal_length_choice="EQUIVALENT", max_events=max_events) as src:
        calib = CameraCalibrator(src.subarray)
        for event in src:
            calib(event)
            for tel_id, dl1 in event.dl1.tel.items():
                geom = src.subarray.tel[tel_id].camera.geometry
                out.append((geom, geom.transform_to(TelescopeFrame()), np.asarray(dl1.image, np.float32)))
    return out


@pytest.mark.parametrize("name", ["gamma_with_obslevel_particles.simtel.zst", "lst_muons_with_true_photons.simtel.zst",
                                  "n_hv_disabled.simtel.gz"])  # fmt: skip
def test_equals_ctapipe_on_simtel_events(simtel_dir, name: str) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ctapipe")
    n_checked = 0
    for geom_m, geom_deg, image in _simtel_images(simtel_dir / name):
        cam = CameraGeometry.from_ctapipe(geom_m)
        for pic, bnd in ((10.0, 5.0), (6.0, 3.0), (3.0, 1.5)):
            df = extract_parameters(image[None], cam, picture_thresh=pic, boundary_thresh=bnd)
            mask = tailcuts_clean(image, cam, pic, bnd)
            if mask.sum() < 3:
                continue
            _assert_matches(df.iloc[0], _ctapipe_reference(geom_deg, image, mask))
            n_checked += 1
    assert n_checked >= 1


@pytest.mark.parametrize("psi_deg", [0.0, 30.0, 60.0, 89.0, 90.0, -45.0, -89.5, 135.0])
def test_analytic_gaussian_ellipse(psi_deg: float) -> None:
    """A noiseless 2D Gaussian sampled on a fine grid: moments are exact to far below 1e-6."""
    cam = _fine_camera()
    length, width, cx, cy = 0.2, 0.05, 0.15, -0.1
    psi = np.radians(psi_deg)
    dx, dy = cam.pix_x - cx, cam.pix_y - cy
    lon = dx * np.cos(psi) + dy * np.sin(psi)
    tra = -dx * np.sin(psi) + dy * np.cos(psi)
    image = 1000.0 * np.exp(-0.5 * (lon / length) ** 2 - 0.5 * (tra / width) ** 2)
    row = hillas_parameters(image[None], cam, np.ones((1, cam.n_pixels), bool)).iloc[0]
    expected_psi = (psi_deg + 90.0) % 180.0 - 90.0
    expected_psi = 90.0 if expected_psi == -90.0 else expected_psi
    assert row["hillas_length"] == pytest.approx(length, rel=1e-6)
    assert row["hillas_width"] == pytest.approx(width, rel=1e-6)
    assert row["hillas_x"] == pytest.approx(cx, abs=1e-7) and row["hillas_y"] == pytest.approx(cy, abs=1e-7)
    assert row["hillas_psi"] == pytest.approx(expected_psi, abs=1e-6)
    assert row["hillas_skewness"] == pytest.approx(0.0, abs=1e-6)
    assert row["hillas_kurtosis"] == pytest.approx(3.0, rel=1e-6)
    assert row["hillas_r"] == pytest.approx(np.hypot(cx, cy), rel=1e-6)
    assert row["hillas_phi"] == pytest.approx(np.degrees(np.arctan2(cy, cx)), abs=1e-6)


_FINE: list[CameraGeometry] = []


def _fine_camera() -> CameraGeometry:
    if not _FINE:
        _FINE.append(CameraGeometry.hexagonal(pixel_spacing_deg=0.01, fov_deg=3.0, name="fine"))
    return _FINE[0]


def _line_image(cam: CameraGeometry, cx: float, tail_sign: float) -> np.ndarray:
    """Pixels along y = 0 around x = cx with a skewed (one-sided exponential) profile."""
    on_axis = np.abs(cam.pix_y) < 1e-9
    u = (cam.pix_x - cx) * tail_sign
    img = np.where(on_axis & (u > -0.5) & (u < 2.0), np.exp(-np.clip(u, -0.5, None) / 0.5) * 100.0, 0.0)
    return img


def test_source_dependent_parameters_and_signs() -> None:
    cam = CameraGeometry.hexagonal(pixel_spacing_deg=0.05, fov_deg=8.0)
    # tail pointing away from a source at the origin: positive m3_long, alpha = 0, miss = 0
    img = _line_image(cam, 1.5, +1.0)
    mask = img > 0
    row = hillas_parameters(img[None], cam, mask[None]).iloc[0]
    assert row["hillas_psi"] == pytest.approx(0.0, abs=1e-9)
    assert row["alpha"] == pytest.approx(0.0, abs=1e-9) and row["miss"] == pytest.approx(0.0, abs=1e-9)
    assert row["dist"] == pytest.approx(row["hillas_x"])
    assert row["m3_long"] > 0 and row["hillas_skewness"] > 0 and row["asym"] > 0
    # source beyond the image: the same tail now points to the source -> signs flip (MARS)
    far = hillas_parameters(img[None], cam, mask[None], source=(5.0, 0.0)).iloc[0]
    assert far["m3_long"] == pytest.approx(-row["m3_long"]) and far["asym"] == pytest.approx(-row["asym"])
    assert far["hillas_skewness"] == pytest.approx(row["hillas_skewness"])
    # a source off the axis: alpha and miss by geometry
    off = hillas_parameters(img[None], cam, mask[None], source=(row["hillas_x"] - 1.0, 1.0)).iloc[0]
    assert abs(off["alpha"]) == pytest.approx(45.0, abs=1e-6)
    assert off["miss"] == pytest.approx(1.0, rel=1e-9) and off["dist"] == pytest.approx(np.sqrt(2.0), rel=1e-9)


def test_conc_and_asym_by_hand() -> None:
    cam = CameraGeometry.hexagonal(n_pixels=61)
    img = np.zeros(cam.n_pixels)
    right = np.argmin(np.hypot(cam.pix_x - 0.36, cam.pix_y))
    left = np.argmin(np.hypot(cam.pix_x + 0.36, cam.pix_y))
    img[[left, 0, right]] = [10.0, 30.0, 60.0]
    row = hillas_parameters(img[None], cam).iloc[0]
    assert row["conc1"] == pytest.approx(0.6) and row["conc2"] == pytest.approx(0.9)
    cog = (10 * -0.36 + 60 * 0.36) / 100.0
    # brightest pixel at +0.36; centroid - brightest projected on the axis, sign by source side
    assert row["hillas_x"] == pytest.approx(cog)
    assert abs(row["asym"]) == pytest.approx(0.36 - cog)
    assert row["n_pixels"] == 3 and row["n_islands"] == 1 and row["hillas_width"] == 0.0


def test_small_images_are_flagged_not_garbage() -> None:
    images = np.zeros((4, CAM.n_pixels), np.float32)
    nbrs = CAM.neighbor_lists()[0]
    images[1, 0] = 20.0  # one isolated pixel: cleaned away
    images[2, [0, nbrs[0]]] = 20.0  # two pixels
    images[3, [0, nbrs[0], nbrs[1]]] = 20.0  # three pixels: valid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = extract_parameters(images, CAM)
    assert list(df["is_valid"]) == [False, False, False, True]
    assert list(df["n_pixels"]) == [0, 0, 2, 3]
    assert list(df["hillas_intensity"]) == [0.0, 0.0, 40.0, 60.0]
    bad = df[~df["is_valid"]]
    moment_cols = [c for c in HILLAS_COLUMNS if c not in ("hillas_intensity", "n_pixels", "n_islands")]
    assert bad[moment_cols].isna().all().all()
    assert df.loc[3, moment_cols].notna().all()


def test_columns_and_magic_view(small_sim) -> None:  # type: ignore[no-untyped-def]
    df = hillas_parameters(small_sim.images[:50], CAM, tailcuts_clean(small_sim.images[:50], CAM))
    assert list(df.columns) == HILLAS_COLUMNS
    full = extract_parameters(small_sim.images[:50], CAM)
    assert list(full.columns) == [*HILLAS_COLUMNS, "is_valid"]
    assert np.allclose(df.fillna(-1).to_numpy(float), full[HILLAS_COLUMNS].fillna(-1).to_numpy(float))
    table = small_sim.table
    view = magic_view(table)
    assert list(view.columns) == [*MAGIC_COLUMNS, "label"]
    valid = table["is_valid"].to_numpy()
    assert np.allclose(view["fLength"][valid], table["hillas_length"][valid] * MM_PER_DEG_MAGIC)
    assert np.allclose(view["fSize"][valid], np.log10(table["hillas_intensity"][valid]))
    assert (view["fAlpha"][valid] >= 0).all() and (view["fAlpha"][valid] <= 90).all()
    assert pytest.approx(1 / 0.00337, rel=1e-3) == MM_PER_DEG_MAGIC
    with pytest.raises(RareflowError):
        magic_view(table.drop(columns=["conc2"]))


def test_bad_input_shapes() -> None:
    with pytest.raises(RareflowError):
        extract_parameters(np.zeros((2, 5)), CAM)
    empty = extract_parameters(np.zeros((0, CAM.n_pixels)), CAM)
    assert len(empty) == 0 and list(empty.columns) == [*HILLAS_COLUMNS, "is_valid"]
