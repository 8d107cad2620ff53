"""Batch tail-cuts cleaning and islands: semantics, and exact equality with ctapipe."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.iact.camera import CameraGeometry
from rareflow.iact.cleaning import label_islands, number_of_islands, tailcuts_clean
from rareflow.errors import RareflowError

CAM = CameraGeometry.hexagonal()
SETTINGS = [
    dict(picture_thresh=7.0, boundary_thresh=5.0),
    dict(picture_thresh=6.0, boundary_thresh=3.0, min_number_picture_neighbors=1),
    dict(picture_thresh=6.0, boundary_thresh=3.0, min_number_picture_neighbors=2),
    dict(picture_thresh=5.0, boundary_thresh=2.5, min_number_picture_neighbors=3),
    dict(picture_thresh=6.0, boundary_thresh=3.0, keep_isolated_pixels=True),
    dict(picture_thresh=4.0, boundary_thresh=6.0),  # boundary above picture: still ctapipe's logic
]


def _random_images(n: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    return (gen.normal(0, 2.5, (n, CAM.n_pixels)) + gen.exponential(1.5, (n, CAM.n_pixels))).astype(np.float32)


def test_semantics_by_hand() -> None:
    i0 = 0  # the central pixel
    nbrs = CAM.neighbor_lists()[i0]
    img = np.zeros(CAM.n_pixels, np.float32)
    img[i0] = 10
    assert not tailcuts_clean(img, CAM, 7, 5).any()  # isolated picture pixel dropped
    assert tailcuts_clean(img, CAM, 7, 5, keep_isolated_pixels=True)[i0]
    img[nbrs[0]] = 6  # a boundary neighbour keeps both
    mask = tailcuts_clean(img, CAM, 7, 5)
    assert mask[i0] and mask[nbrs[0]] and mask.sum() == 2
    assert not tailcuts_clean(img, CAM, 7, 5, min_number_picture_neighbors=1).any()
    img[nbrs[1]] = 8  # two picture pixels next to each other
    assert tailcuts_clean(img, CAM, 7, 5, min_number_picture_neighbors=1).sum() == 3


def test_shapes_and_errors() -> None:
    imgs = _random_images(5, 0)
    mask = tailcuts_clean(imgs, CAM)
    assert mask.shape == imgs.shape and mask.dtype == bool and mask.flags.c_contiguous
    assert np.array_equal(tailcuts_clean(imgs[2], CAM), mask[2])
    with pytest.raises(RareflowError):
        tailcuts_clean(np.zeros((3, 10)), CAM)
    assert tailcuts_clean(np.zeros((0, CAM.n_pixels)), CAM).shape == (0, CAM.n_pixels)


def test_islands_by_hand() -> None:
    mask = np.zeros((2, CAM.n_pixels), bool)
    far = np.argsort(np.hypot(CAM.pix_x - 3, CAM.pix_y))[:3]  # a blob at x = 3 deg
    mask[0, 0] = mask[0, CAM.neighbor_lists()[0][0]] = True
    mask[0, far] = True
    counts, labels = label_islands(mask, CAM)
    assert list(counts) == [2, 0]
    assert labels[0, 0] == 1 and np.all(labels[0, far] == 2) and labels[1].max() == 0
    assert number_of_islands(mask[0], CAM) == 2


@pytest.mark.parametrize("settings", SETTINGS)
def test_cleaning_equals_ctapipe(settings: dict, small_sim) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ctapipe")
    from ctapipe.image import tailcuts_clean as ct_clean

    geom = CAM.to_ctapipe()
    images = np.vstack([_random_images(300, 1), small_sim.images[:300]])
    mask = tailcuts_clean(images, CAM, **settings)
    ref = np.array([ct_clean(geom, im, **settings) for im in images])
    assert np.array_equal(mask, ref)
    assert mask.sum() > 0


def test_per_pixel_thresholds_equal_ctapipe() -> None:
    pytest.importorskip("ctapipe")
    from ctapipe.image import tailcuts_clean as ct_clean

    geom = CAM.to_ctapipe()
    gen = np.random.default_rng(5)
    pic = gen.uniform(5, 8, CAM.n_pixels)
    bnd = pic / 2
    images = _random_images(200, 2)
    mask = tailcuts_clean(images, CAM, pic, bnd, min_number_picture_neighbors=1)
    ref = np.array([ct_clean(geom, im, pic, bnd, min_number_picture_neighbors=1) for im in images])
    assert np.array_equal(mask, ref)


def test_islands_equal_ctapipe(small_sim) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("ctapipe")
    from ctapipe.image import number_of_islands as ct_islands

    geom = CAM.to_ctapipe()
    images = np.vstack([_random_images(300, 3), small_sim.images[:300]])
    for settings in (SETTINGS[0], SETTINGS[4]):
        mask = tailcuts_clean(images, CAM, **settings)
        counts, labels = label_islands(mask, CAM)
        for k in range(len(images)):
            n_ref, lab_ref = ct_islands(geom, mask[k])
            assert counts[k] == n_ref
            assert np.array_equal(labels[k], lab_ref)
        assert counts.max() >= 3  # the comparison covered multi-island images
