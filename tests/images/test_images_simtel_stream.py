"""`rareflow score` of a sim_telarray file streams it: chunks of events, every telescope with the
model's camera, an atomic Parquet output (skipped without ../shared/data or ctapipe).

The shared LST file holds 3 events of one LSTCam telescope, so ``chunk_events=1`` scores it in
three chunks and ``chunk_events=1000`` in one, the whole file as before streaming.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareflow.cli import main
from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.images import GridMapping, ImagesWithFeatures, log1p_charge
from tests.conftest import SHARED_DATA, require_shared

pytestmark = pytest.mark.shared_data

LST = SHARED_DATA / "simtel" / "lst_muons_with_true_photons.simtel.zst"
SCORE_COLUMNS = ["score", "gammaness"]
# The model computes in float32 and torch's convolutions may sum in another order for a batch of
# one image than for a batch of three: scores of the same image then differ in the last bits
# (seen: ~1e-8 on scores ~5). Everything else (the table, dtypes, row order) is compared exactly.
RTOL = 1e-6


@pytest.fixture(scope="module")
def lst() -> Path:
    pytest.importorskip("ctapipe", reason="needs the iact extra: pip install 'rareflow[iact]'")
    return require_shared(LST)


@pytest.fixture(scope="module")
def lst_sim(lst: Path):
    """Toy showers simulated on the LST file's camera (table with Hillas columns + images)."""
    from rareflow.iact.simtel_camera import camera_from_simtel
    from rareflow.iact.simulate import simulate_events

    sim = simulate_events(120, 0.5, 0, camera=camera_from_simtel(lst), return_images=True)
    return sim, GridMapping.from_camera(sim.camera)


@pytest.fixture(scope="module")
def lst_model(lst_sim):
    """A tiny conv-autoencoder that remembers LSTCam."""
    from rareflow.detectors import get_detector

    sim, mapping = lst_sim
    det = get_detector("conv-autoencoder", channels=[4], latent=4, training={"epochs": 1, "batch_size": 64}, random_state=0)
    det.fit(mapping.to_grid(log1p_charge(sim.images)))
    det.remember_camera(sim.camera, mapping)
    return det


def _score(det, data: Path, out: Path, **kw) -> tuple[pd.DataFrame, dict]:
    from rareflow.image_scoring import score_images
    from rareflow.io.scores import read_scores

    n = score_images(det, data, out, **kw)
    df, meta = read_scores(out)
    assert n == int(np.isfinite(df["score"]).sum())
    return df, meta


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, dtypes, row order and values; the score columns to RTOL (see above)."""
    scored = [c for c in SCORE_COLUMNS if c in a]
    pd.testing.assert_frame_equal(a.drop(columns=scored), b.drop(columns=scored), check_exact=True)
    pd.testing.assert_frame_equal(a[scored], b[scored], check_exact=False, rtol=RTOL, atol=0.0)


def test_chunks_score_as_the_whole_file_and_as_single_images(lst: Path, lst_model, tmp_path: Path) -> None:
    from rareflow.iact.images import load_simtel

    one, meta = _score(lst_model, lst, tmp_path / "one.parquet", chunk_events=1)
    whole, _ = _score(lst_model, lst, tmp_path / "whole.parquet", chunk_events=1000)
    assert len(one) == 3 and np.isfinite(one["score"]).all()
    _assert_same_table(one, whole)
    # the whole-file output as `score` wrote it before streaming: load_simtel's table + scores
    imgs = load_simtel(lst)
    scores = lst_model.decision_function(imgs.grids())
    expected = imgs.table.assign(score=scores, prediction=(scores > lst_model.threshold_).astype(np.int8),
                                 threshold=lst_model.threshold_, gammaness=lst_model.gammaness_(scores))  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "whole.parquet"), expected, check_exact=True)
    # chunks of one event score each image alone
    grids = imgs.grids()
    alone = np.array([lst_model.decision_function(grids[i : i + 1])[0] for i in range(len(grids))])
    np.testing.assert_array_equal(one["score"].to_numpy(), alone)
    assert meta["tel_ids"] == [1] and "n_images" not in meta
    assert meta["camera"] == "LSTCam" and meta["grid"] == [55, 55]


def test_cli_chunk_events_and_tel_id(lst: Path, lst_model, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rareflow.persistence import save_model

    model = tmp_path / "m.rfm"
    save_model(lst_model, model)
    ref, _ = _score(model, lst, tmp_path / "ref.parquet")
    out = tmp_path / "cli.parquet"
    assert main(["score", "--model", str(model), "--data", str(lst), "--out", str(out), "--chunk-events", "2", "--tel-id", "1", "-q"]) == 0
    _assert_same_table(pd.read_parquet(out), ref)
    assert main(["score", "--model", str(model), "--data", str(lst), "--out", str(out), "--tel-id", "7", "-q"]) == 2
    assert "has no telescope 7; its telescopes: 1 (LSTCam)" in capsys.readouterr().err


def test_default_telescopes_are_those_with_the_models_camera(lst: Path, lst_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rareflow.iact.images as images

    real = images.simtel_cameras(lst)
    other = CameraGeometry.hexagonal(n_pixels=1000, pixel_spacing_deg=0.2, name="OtherCam")
    monkeypatch.setattr(images, "simtel_cameras", lambda path: {**real, 2: other})  # as if telescope 2 were another camera
    df, meta = _score(lst_model, lst, tmp_path / "s.parquet")
    assert meta["tel_ids"] == [1] and (df["tel_id"] == 1).all() and len(df) == 3
    with pytest.raises(RareflowError) as err:  # --tel-id on the other camera: check_camera's line
        _score(lst_model, lst, tmp_path / "t.parquet", tel_id=2)
    assert "has camera OtherCam" in str(err.value) and not (tmp_path / "t.parquet").exists()


def test_no_telescope_with_the_models_camera_is_one_line(lst: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import rareflow.iact.images as images
    from rareflow.detectors import get_detector
    from rareflow.iact.simulate import simulate_images
    from rareflow.persistence import save_model

    pix, _, cam = simulate_images(100, 0.0, 0, muon_fraction=0.0)  # the toy camera, not LSTCam
    mapping = GridMapping.from_camera(cam)
    det = get_detector("conv-autoencoder", channels=[4], latent=4, training={"epochs": 1}, random_state=0)
    det.fit(mapping.to_grid(log1p_charge(pix)))
    det.remember_camera(cam, mapping)
    model, out = tmp_path / "toy.rfm", tmp_path / "s.parquet"
    save_model(det, model)
    capsys.readouterr()
    assert main(["score", "--model", str(model), "--data", str(lst), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists()
    assert str(lst) in err and "has camera LSTCam (55x55 grid" in err and f"model trained on camera {cam.name}" in err
    # a file of several cameras, none the model's: one line listing them
    other = CameraGeometry.hexagonal(n_pixels=1000, pixel_spacing_deg=0.2, name="OtherCam")
    real = images.simtel_cameras(lst)
    monkeypatch.setattr(images, "simtel_cameras", lambda path: {**real, 2: other, 3: other})
    assert main(["score", "--model", str(model), "--data", str(lst), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists()
    assert f"model trained on camera {cam.name} (29x29 grid, {cam.n_pixels} pixels), {lst} has no telescope" in err
    assert f"LSTCam (1855 pixels) on telescope(s) 1; OtherCam ({other.n_pixels} pixels) on telescope(s) 2, 3" in err
    assert f"`rareflow simulate --camera-from {lst} --tel-id N`" in err


def test_output_equal_to_the_input_is_refused(lst: Path, lst_model, tmp_path: Path) -> None:
    from rareflow.image_scoring import score_images

    data = tmp_path / lst.name
    shutil.copyfile(lst, data)
    before = data.read_bytes()
    with pytest.raises(RareflowError, match="same file as --data"):
        score_images(lst_model, data, data)
    (tmp_path / "link.parquet").symlink_to(data)
    with pytest.raises(RareflowError, match="same file as --data"):
        score_images(lst_model, data, tmp_path / "link.parquet")
    assert data.read_bytes() == before


def test_nothing_is_written_when_a_later_chunk_fails(lst: Path, lst_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    import rareflow.iact.images as images

    real, written = images.iter_simtel, []

    def second_chunk_fails(*args, **kwargs):
        for i, chunk in enumerate(real(*args, **kwargs)):
            if i == 1:
                raise RuntimeError("disk on fire")
            yield chunk

    write_table = pq.ParquetWriter.write_table
    monkeypatch.setattr(pq.ParquetWriter, "write_table", lambda self, t, *a, **k: (written.append(len(t)), write_table(self, t, *a, **k)))
    monkeypatch.setattr(images, "iter_simtel", second_chunk_fails)
    out = tmp_path / "s.parquet"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="disk on fire"):
        _score(lst_model, lst, out, chunk_events=1)
    assert written == [1]  # the first chunk went to the (temporary) output before the failure
    assert out.read_bytes() == b"previous result" and sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet"]


def test_hybrid_model_per_chunk_leaves_images_without_hillas_unscored(lst: Path, lst_sim, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import rareflow.image_scoring as scoring
    from rareflow.detectors import get_detector
    from rareflow.iact.images import load_simtel

    sim, mapping = lst_sim
    feats = ["hillas_intensity", "hillas_width"]
    valid = sim.table["is_valid"].to_numpy(bool)
    both = ImagesWithFeatures(mapping.to_grid(log1p_charge(sim.images[valid])), sim.table.loc[valid, feats].reset_index(drop=True))
    y = (sim.table.loc[valid, "label"] == "gamma").to_numpy(np.int64)
    det = get_detector("cnn-classifier", hillas=True, epochs=1, progress=False, channels=[4], hidden=[4]).fit(both, y)
    merge = scoring._merge

    def no_hillas_for_event_200(parts):  # as if event 200's image had too few pixels after cleaning
        grids, table = merge(parts)
        table.loc[table["event_id"] == 200, "hillas_width"] = np.nan
        return grids, table

    monkeypatch.setattr(scoring, "_merge", no_hillas_for_event_200)
    one, _ = _score(det, lst, tmp_path / "one.parquet", chunk_events=1)
    whole, _ = _score(det, lst, tmp_path / "whole.parquet", chunk_events=1000)
    _assert_same_table(one, whole)
    imgs = load_simtel(lst)
    table = imgs.table.assign(hillas_width=np.where(imgs.table["event_id"] == 200, np.nan, imgs.table["hillas_width"]))
    expected, n_unscored = scoring._image_scores(det, imgs.grids(), table, str(lst))
    assert n_unscored == 1
    np.testing.assert_allclose(whole["score"].to_numpy(), expected, rtol=RTOL, atol=0.0)  # NaN where expected is NaN
    row = one["event_id"] == 200
    assert one.loc[row, "score"].isna().all() and (one.loc[row, "prediction"] == 0).all() and one.loc[row, "gammaness"].isna().all()
    assert np.isfinite(one.loc[~row, "score"]).all()


def test_chunk_events_goes_with_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table, model = tmp_path / "t.parquet", tmp_path / "m.rfm"
    pd.DataFrame({"a": np.arange(40.0), "label": ["gamma", "proton"] * 20}).to_parquet(table)
    assert main(["train", "gbdt", "--data", str(table), "--out", str(model), "-q", "-p", "max_iter=5"]) == 0
    capsys.readouterr()
    assert main(["score", "--model", str(model), "--data", str(table), "--out", str(tmp_path / "s.parquet"), "--chunk-events", "5", "-q"]) == 2
    assert "--chunk-events goes with a sim_telarray file scored by an image model" in capsys.readouterr().err
