"""Toy simulator: determinism, classes, physical distributions, gbdt AUC band, image files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rareflow.iact.camera import CameraGeometry
from rareflow.iact.hillas import HILLAS_COLUMNS
from rareflow.iact.simulate import PARTICLE_IDS, load_images, save_images, simulate_events, simulate_images
from rareflow.errors import RareflowError


def test_same_seed_same_table_and_images() -> None:
    a = simulate_events(1500, 0.4, seed=7, return_images=True)
    b = simulate_events(1500, 0.4, seed=7, return_images=True)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert np.array_equal(a.images, b.images)
    c = simulate_events(1500, 0.4, seed=8)
    assert not c.table["true_energy"].equals(a.table["true_energy"])
    assert a.images.dtype == np.float32 and a.images.shape == (1500, a.camera.n_pixels)


def test_classes_and_truth_columns(small_sim) -> None:  # type: ignore[no-untyped-def]
    t = small_sim.table
    counts = t["label"].value_counts()
    assert counts["gamma"] == 1500 and counts["muon"] == 300 and counts["proton"] == 1200
    assert set(HILLAS_COLUMNS) <= set(t.columns)
    for col in ("label", "event_id", "is_valid", "true_particle", "true_energy", "true_impact", "true_source_x"):
        assert col in t.columns
    assert (t["true_particle"] == t["label"].map(PARTICLE_IDS)).all()
    assert t["event_id"].is_unique
    assert t["is_valid"].dtype == bool
    # classes are shuffled, not blocks
    assert (t["label"].iloc[:100] == "gamma").mean() < 0.8
    # energies in the configured ranges, protons ~3x gammas for the same light
    assert t.loc[t.label == "gamma", "true_energy"].between(0.7, 300).all()
    assert t.loc[t.label == "proton", "true_energy"].between(2.0, 1000).all()
    assert t.loc[t.label == "muon", "true_energy"].between(0.01, 1.0).all()
    assert not simulate_events(10, 0.5, seed=0).images  # images only on request


def test_valid_flag_consistent(small_sim) -> None:  # type: ignore[no-untyped-def]
    t = small_sim.table
    moment_cols = [c for c in HILLAS_COLUMNS if c not in ("hillas_intensity", "n_pixels", "n_islands")]
    assert t.loc[t.is_valid, moment_cols].notna().all().all()
    assert t.loc[~t.is_valid, moment_cols].isna().all().all()
    assert (t.loc[~t.is_valid, "n_pixels"] < 3).all() and (t.loc[t.is_valid, "n_pixels"] >= 3).all()
    # realistic low-size failures: some events do not survive cleaning, most muons do
    frac = t.groupby("label")["is_valid"].mean()
    assert 0.2 < frac["gamma"] < 0.9 and 0.1 < frac["proton"] < 0.9 and frac["muon"] > 0.8


def test_alpha_small_for_gammas_uniform_for_protons(small_sim) -> None:  # type: ignore[no-untyped-def]
    v = small_sim.table[small_sim.table.is_valid]
    a_gamma = np.abs(v.loc[v.label == "gamma", "alpha"])
    a_proton = np.abs(v.loc[v.label == "proton", "alpha"])
    assert np.median(a_gamma) < 15 and (a_gamma < 20).mean() > 0.6
    # protons: |alpha| roughly uniform on [0, 90]
    hist = np.histogram(a_proton, bins=6, range=(0, 90))[0] / len(a_proton)
    assert np.all(np.abs(hist - 1 / 6) < 0.07), hist
    assert 35 < np.median(a_proton) < 55


def test_shapes_follow_the_literature(small_sim) -> None:  # type: ignore[no-untyped-def]
    v = small_sim.table[small_sim.table.is_valid]
    g, p = v[v.label == "gamma"], v[v.label == "proton"]
    bright = lambda d: d[d.hillas_intensity > 100]  # noqa: E731
    # protons broader and longer at the same size; gamma widths ~0.1 deg (plus 0.36 deg pixelisation)
    assert np.median(bright(p).hillas_width) > np.median(bright(g).hillas_width)
    assert np.median(bright(p).hillas_length) > np.median(bright(g).hillas_length)
    assert 0.06 < np.median(g.hillas_width) < 0.16
    # gamma images point away from the source with their tail: positive m3_long
    assert np.median(bright(g).m3_long) > 0
    # protons split into several islands more often
    assert (p.n_islands > 1).mean() > (g.n_islands > 1).mean()
    # size distribution overlaps (no trivial separation by size)
    assert abs(np.log10(g.hillas_intensity).median() - np.log10(p.hillas_intensity).median()) < 0.3


def test_muon_ring_radius() -> None:
    t = simulate_events(400, 0.0, seed=3, muon_fraction=1.0, return_images=True)
    v = t.table[t.table.is_valid & (t.table.n_pixels >= 15)]
    # a full ring of radius R has length = width = R / sqrt(2)
    full = v[v.hillas_width / v.hillas_length > 0.8]
    assert len(full) > 10
    radius = np.sqrt(2) * np.median(full.hillas_length)
    assert 1.0 < radius < 1.35


def test_gbdt_auc_in_realistic_band() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    t = simulate_events(20000, 0.5, seed=0, keep="all").table  # the calibration: 20k thrown showers
    v = t[t.is_valid & t.label.isin(["gamma", "proton"])]
    x = v[HILLAS_COLUMNS].to_numpy()
    y = (v.label == "gamma").to_numpy()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    with threadpool_limits(limits=1, user_api="openmp"):  # OpenMP spin-waits crawl on a busy machine
        clf = HistGradientBoostingClassifier(random_state=0).fit(x_tr, y_tr)
    auc = roc_auc_score(y_te, clf.predict_proba(x_te)[:, 1])
    assert 0.85 <= auc <= 0.97, auc


def test_options_dead_pixels_diffuse_nsb() -> None:
    cam = CameraGeometry.hexagonal(n_pixels=200, pixel_spacing_deg=0.5)
    images, _, _ = simulate_images(300, 0.5, seed=2, camera=cam, dead_pixel_fraction=0.1)
    dead = np.all(images == 0, axis=0)
    assert 5 <= dead.sum() <= 40
    diffuse = simulate_events(2000, 1.0, seed=4, muon_fraction=0.0, source="diffuse").table
    point = simulate_events(2000, 1.0, seed=4, muon_fraction=0.0).table
    assert np.median(np.abs(diffuse.alpha.dropna())) > 2 * np.median(np.abs(point.alpha.dropna()))
    assert diffuse.true_source_x.std() > 1.0
    quiet = simulate_images(200, 0.5, seed=1, nsb_rate=0.0)[0]
    noisy = simulate_images(200, 0.5, seed=1, nsb_rate=0.3)[0]
    assert noisy.std() > quiet.std()


@pytest.mark.parametrize(
    "kwargs",
    [dict(n_events=-1), dict(rare_fraction=1.5), dict(muon_fraction=0.7), dict(source="galactic"),
     dict(dead_pixel_fraction=1.0), dict(nsb_rate=-1.0)],
)  # fmt: skip
def test_bad_arguments(kwargs: dict) -> None:
    args = dict(n_events=10, rare_fraction=0.5) | kwargs
    with pytest.raises(RareflowError):
        simulate_events(args.pop("n_events"), args.pop("rare_fraction"), **args)


def test_zero_events() -> None:
    r = simulate_events(0, 0.5, seed=0, return_images=True)
    assert len(r.table) == 0 and r.images.shape == (0, r.camera.n_pixels)


def test_image_file_round_trip(tmp_path, small_sim) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sub" / "images.npz"
    ids = small_sim.table["event_id"].to_numpy()[:100]
    save_images(path, small_sim.images[:100], small_sim.camera, ids)
    assert [p.name for p in path.parent.iterdir()] == ["images.npz"]  # no temp files left
    images, cam, event_ids = load_images(path)
    assert np.array_equal(images, small_sim.images[:100]) and np.array_equal(event_ids, ids)
    assert cam.n_pixels == small_sim.camera.n_pixels and np.allclose(cam.pix_x, small_sim.camera.pix_x)
    assert (cam.neighbors != small_sim.camera.neighbors).nnz == 0
    with np.load(path, allow_pickle=False) as npz:
        assert {"images", "pix_x", "pix_y", "event_id"} <= set(npz.files)


def test_image_file_errors(tmp_path, small_sim) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RareflowError):
        load_images(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(RareflowError):
        load_images(bad)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(RareflowError):
        load_images(other)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, images=np.array([object()], dtype=object), pix_x=np.zeros(1), pix_y=np.zeros(1),
             pix_area=np.ones(1), event_id=np.zeros(1))  # fmt: skip
    with pytest.raises(RareflowError):
        load_images(pickled)
    with pytest.raises(RareflowError):
        save_images(tmp_path / "x.npz", small_sim.images[:5], small_sim.camera, np.arange(3))


def test_streamed_parametrisation_equals_whole_batch() -> None:
    """simulate_events parametrises chunk by chunk (bounded memory): same table as one batch."""
    from rareflow.iact.hillas import extract_parameters
    from rareflow.iact.simulate import SimulationConfig, iter_image_chunks, simulate_events

    n = 8192 + 500  # two chunks
    with_images = simulate_events(n, 0.4, seed=11, return_images=True)
    without = simulate_events(n, 0.4, seed=11)
    pd.testing.assert_frame_equal(with_images.table, without.table)
    cfg = SimulationConfig()
    whole = extract_parameters(
        with_images.images, with_images.camera, picture_thresh=cfg.picture_thresh,
        boundary_thresh=cfg.boundary_thresh, min_number_picture_neighbors=cfg.min_number_picture_neighbors,
    )  # fmt: skip
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), without.table[list(whole.columns)])
    cam, chunks = iter_image_chunks(n, 0.4, seed=11)
    firsts = [(a, len(img), int(t["event_id"].iloc[0])) for a, img, t in chunks]
    assert firsts == [(0, 8192, 0), (8192, 500, 8192)]
