"""Image models on the camera of a sim_telarray file: simulate on its geometry (`--camera-from`),
train, remember the camera, score the file's real images, refuse another camera (issue 19 item 6)."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareflow.cli import main
from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.images import GridMapping, log1p_charge
from rareflow.iact.simulate import simulate_events, simulate_images
from tests.conftest import SHARED_DATA, require_shared

LST = SHARED_DATA / "simtel" / "lst_muons_with_true_photons.simtel.zst"
HESS = SHARED_DATA / "simtel" / "gamma_with_obslevel_particles.simtel.zst"
TINY = ["-p", "training={epochs: 1, batch_size: 64}", "-p", "channels=[4, 8]", "-p", "latent=8"]


def _simtel(path: Path) -> Path:
    pytest.importorskip("ctapipe", reason="needs the iact extra: pip install 'rareflow[iact]'")
    return require_shared(path)


def _tiny_autoencoder(grids: np.ndarray):
    from rareflow.detectors import get_detector

    det = get_detector("conv-autoencoder", channels=[4], latent=4, training={"epochs": 1, "batch_size": 64}, random_state=0)
    return det.fit(grids)


# -- the simulator on a file's camera --------------------------------------------------------------
@pytest.mark.shared_data
@pytest.mark.parametrize("path,name,n_pixels,grid", [(LST, "LSTCam", 1855, (55, 55)), (HESS, "HESS-1U", 960, (42, 41))])
def test_simulate_on_the_camera_of_a_simtel_file(path: Path, name: str, n_pixels: int, grid: tuple[int, int]) -> None:
    from rareflow.iact.simtel_camera import camera_from_simtel

    cam = camera_from_simtel(_simtel(path))
    assert cam.name == name and cam.n_pixels == n_pixels and 0.09 < cam.pixel_spacing_deg < 0.17
    sim = simulate_events(300, 0.5, 0, camera=cam, return_images=True)
    assert sim.images.shape == (300, n_pixels) and GridMapping.from_camera(sim.camera).shape == grid
    parts = sim.simulation["particles"]
    assert sim.simulation["camera"] == {"name": name, "n_pixels": n_pixels}
    # the cleaning keeps its significance on small pixels: valid fractions like the default camera's
    assert parts["gamma"]["n_valid"] / parts["gamma"]["n_showers"] > 0.3
    assert parts["proton"]["n_valid"] / parts["proton"]["n_showers"] > 0.15
    gam = sim.table[sim.table["label"] == "gamma"]
    assert gam["n_pixels"].median() >= 5 and 0.05 < gam["hillas_width"].median() < 0.2  # degrees, not pixels
    assert 0.1 < gam["hillas_length"].median() < 1.0


def test_nsb_and_cleaning_scale_with_pixel_size_and_not_on_the_default_camera() -> None:
    from rareflow.iact.camera_response import cleaning_thresholds, nsb_per_pixel
    from rareflow.iact.shower_model import SimulationConfig

    cfg = SimulationConfig()
    default = CameraGeometry.hexagonal()
    assert np.ndim(nsb_per_pixel(default, cfg, 0.12)) == 0 and nsb_per_pixel(default, cfg, 0.12) == 0.12 * 20.0
    assert cleaning_thresholds(default, cfg, 0.12) == (cfg.picture_thresh, cfg.boundary_thresh)
    fine = CameraGeometry.hexagonal(n_pixels=500, pixel_spacing_deg=0.1)
    fine = CameraGeometry.from_arrays(fine.pix_x, fine.pix_y, fine.pix_area, name="fine")  # not a 'lattice' camera
    nsb = nsb_per_pixel(fine, cfg, 0.12)
    assert np.allclose(nsb, 2.4 * (0.1 / 0.36) ** 2)
    picture, boundary = cleaning_thresholds(fine, cfg, 0.12)
    assert 2.0 < picture < cfg.picture_thresh and boundary == pytest.approx(picture / 2)


@pytest.mark.shared_data
def test_camera_from_simtel_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rareflow.iact.simtel_camera import camera_from_simtel

    lst = _simtel(LST)
    with pytest.raises(RareflowError, match="no such sim_telarray file"):
        camera_from_simtel(tmp_path / "missing.simtel.zst")
    with pytest.raises(RareflowError, match=r"has no telescope 7; its telescopes: 1 \(LSTCam\)"):
        camera_from_simtel(lst, tel_id=7)
    assert camera_from_simtel(lst, tel_id=1).name == "LSTCam"
    monkeypatch.setitem(sys.modules, "ctapipe.calib", None)  # as if ctapipe were not installed
    with pytest.raises(RareflowError, match=r"pip install 'rareflow\[iact\]'"):
        camera_from_simtel(lst)


# -- the model remembers its camera ---------------------------------------------------------------
def test_model_remembers_its_camera_and_refuses_another(tmp_path: Path) -> None:
    from rareflow.persistence import load_model, save_model

    images, _, cam = simulate_images(120, 0.0, 0, muon_fraction=0.0)
    mapping = GridMapping.from_camera(cam)
    det = _tiny_autoencoder(mapping.to_grid(log1p_charge(images)))
    det.remember_camera(cam, mapping)
    save_model(det, tmp_path / "m.rfm")
    back = load_model(tmp_path / "m.rfm")
    assert back.camera_ == {"name": cam.name, "n_pixels": cam.n_pixels, "grid": list(mapping.shape), "lattice": "hexagonal"}
    back.check_camera(cam, mapping, "same.npz")  # the training camera passes
    other = CameraGeometry.hexagonal(n_pixels=1000, pixel_spacing_deg=0.2, name="OtherCam")
    with pytest.raises(RareflowError) as err:
        back.check_camera(other, GridMapping.from_camera(other), "other.simtel.zst")
    msg = str(err.value)
    assert "\n" not in msg and f"model trained on camera {cam.name} (29x29 grid" in msg
    assert "other.simtel.zst has camera OtherCam" in msg and "`rareflow simulate --camera-from other.simtel.zst`" in msg
    with pytest.raises(RareflowError, match="remember the camera of the training images"):
        back.remember_camera(other)


def test_model_saved_without_camera_fields_still_loads(tmp_path: Path) -> None:
    from rareflow.persistence import load_model, save_model

    images, _, cam = simulate_images(120, 0.0, 1, muon_fraction=0.0)
    mapping = GridMapping.from_camera(cam)
    grids = mapping.to_grid(log1p_charge(images))
    det = _tiny_autoencoder(grids)
    det.remember_camera(cam, mapping)
    save_model(det, tmp_path / "new.rfm")
    # the same file as an older rareflow wrote it: no "camera" in the detector state
    with zipfile.ZipFile(tmp_path / "new.rfm") as zin:
        parts = {n: zin.read(n) for n in zin.namelist()}
    meta = json.loads(parts["meta.json"])
    assert meta["state"].pop("camera")["name"] == cam.name
    parts["meta.json"] = json.dumps(meta).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for name, data in parts.items():
            zout.writestr(name, data)
    (tmp_path / "old.rfm").write_bytes(buf.getvalue())
    old = load_model(tmp_path / "old.rfm")
    assert old.camera_ is None and old.image_shape_ == mapping.shape
    assert np.allclose(old.decision_function(grids[:5]), det.decision_function(grids[:5]))
    old.check_camera(cam, mapping, "same grid")  # checked on the grid shape only
    other = CameraGeometry.hexagonal(n_pixels=1000, pixel_spacing_deg=0.2, name="OtherCam")
    with pytest.raises(RareflowError, match=r"model trained on 29x29 grid images \(camera not recorded\)"):
        old.check_camera(other, GridMapping.from_camera(other), "other.simtel.zst")


# -- the CLI: simulate on the file's camera -> train -> score the file ----------------------------
@pytest.mark.shared_data
def test_cli_simulate_train_score_lst_file(tmp_path: Path) -> None:
    from rareflow.iact.images import load_simtel
    from rareflow.io.scores import read_scores

    lst = _simtel(LST)
    table, npz, model, out = (tmp_path / n for n in ("sim.parquet", "sim.npz", "m.rfm", "scores.parquet"))
    assert main(["simulate", "--camera-from", str(lst), "--n-events", "300", "--out", str(table),
                 "--images-out", str(npz), "-q", "--seed", "2"]) == 0  # fmt: skip
    assert main(["train", "conv-autoencoder", "--data", str(table), "--images", str(npz), "--out", str(model),
                 "-q", *TINY]) == 0  # fmt: skip
    assert main(["score", "--model", str(model), "--data", str(lst), "--out", str(out), "-q"]) == 0
    df, meta = read_scores(out)
    truth = load_simtel(lst).table
    assert len(df) == len(truth) > 0 and np.isfinite(df["score"]).all()
    for col in ("obs_id", "event_id", "tel_id", "hillas_intensity"):
        assert np.array_equal(df[col].to_numpy(), truth[col].to_numpy())
    assert np.array_equal(df["prediction"], (df["score"] > df["threshold"]).astype(int))
    assert meta["camera"] == "LSTCam" and meta["grid"] == [55, 55] and meta["method"] == "conv-autoencoder"


@pytest.mark.shared_data
def test_cli_default_camera_model_refuses_the_lst_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lst = _simtel(LST)
    table, npz, model, out = (tmp_path / n for n in ("sim.parquet", "sim.npz", "m.rfm", "scores.parquet"))
    assert main(["simulate", "--n-events", "200", "--out", str(table), "--images-out", str(npz), "-q"]) == 0
    assert main(["train", "conv-autoencoder", "--data", str(table), "--images", str(npz), "--out", str(model), "-q", *TINY]) == 0
    capsys.readouterr()
    assert main(["score", "--model", str(model), "--data", str(lst), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists()
    assert "model trained on camera TAIGA-IACT-like (29x29 grid" in err and "has camera LSTCam (55x55 grid" in err
    assert f"simulate on LSTCam with `rareflow simulate --camera-from {lst}`" in err


def test_cli_image_options_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.parquet"
    assert main(["simulate", "--tel-id", "1", "--out", str(table), "-q"]) == 2
    assert "--tel-id goes with --camera-from" in capsys.readouterr().err
    pd.DataFrame({"a": [1.0, 2.0], "label": ["gamma", "proton"]}).to_parquet(table)
    assert main(["train", "gbdt", "--data", str(table), "--images", str(table), "--out", str(tmp_path / "m.rfm"), "-q"]) == 2
    assert "reads tables, not images" in capsys.readouterr().err
    model, npz = tmp_path / "m.rfm", tmp_path / "images.npz"
    npz.write_bytes(b"")
    pd.DataFrame({"a": np.arange(40.0), "label": ["gamma", "proton"] * 20}).to_parquet(table)
    assert main(["train", "gbdt", "--data", str(table), "--out", str(model), "-q", "-p", "max_iter=5"]) == 0
    capsys.readouterr()
    assert main(["score", "--model", str(model), "--data", str(npz), "--out", str(tmp_path / "s.parquet"), "--chunk-events", "5", "-q"]) == 2
    assert f"--chunk-events goes with sim_telarray files; {npz} is read whole: drop the option" in capsys.readouterr().err


# -- compare on the file's camera ------------------------------------------------------------------
@pytest.mark.shared_data
def test_compare_config_simulates_on_camera_from(tmp_path: Path) -> None:
    from rareflow.config import load_config, parse_config
    from rareflow.evaluation.runner import load_experiment_data

    lst = _simtel(LST)
    cfg_path = tmp_path / "exp.yaml"
    cfg_path.write_text(
        f"data:\n  source: simulate\n  images: true\n  simulate: {{n_events: 300, camera_from: {lst}}}\n"
        "methods:\n  - {name: conv-autoencoder, params: {channels: [4], training: {epochs: 1}}}\n"
    )
    ds = load_experiment_data(load_config(cfg_path), seed=0)
    assert ds.camera.name == "LSTCam" and ds.images.shape[1:] == (55, 55) and len(ds.images) == len(ds.frame)
    assert "camera LSTCam" in ds.source
    with pytest.raises(RareflowError, match="tel_id goes with data.simulate.camera_from"):
        parse_config({"data": {"simulate": {"tel_id": 1}}}, "exp.yaml")
