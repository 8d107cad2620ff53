"""ctapipe round trip: DL1 written by ctapipe from a sim_telarray file -> rareflow -> DL2 -> ctapipe."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rareflow.errors import RareflowError

pytest.importorskip("ctapipe")
from ctapipe.io import TableLoader  # noqa: E402

from rareflow.io.dl2 import read_dl1, write_dl2  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RAREFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
SIMTEL = SHARED / "simtel" / "gamma_with_obslevel_particles.simtel.zst"


@pytest.fixture(scope="module")
def dl1_file(tmp_path_factory) -> Path:
    """A DL1 file made by ctapipe itself (ctapipe-process --write-parameters)."""
    if not SIMTEL.is_file():
        pytest.skip(f"{SIMTEL} not found: set RAREFLOW_SHARED_DATA to the folder holding simtel/")
    from ctapipe.core import run_tool
    from ctapipe.tools.process import ProcessorTool

    out = tmp_path_factory.mktemp("dl1") / "events_dl1.h5"
    argv = [f"--input={SIMTEL}", f"--output={out}", "--write-parameters", "--overwrite", "--no-progress"]
    assert run_tool(ProcessorTool(), argv=argv, cwd=out.parent) == 0
    return out


def test_read_dl1_matches_tableloader(dl1_file):
    df = read_dl1(dl1_file)
    with TableLoader(dl1_file) as loader:
        ref = loader.read_telescope_events(dl1_parameters=True, simulated=True, instrument=False, pointing=False)
    assert len(df) == len(ref) > 0
    for k in ("obs_id", "event_id", "tel_id"):
        np.testing.assert_array_equal(df[k], np.asarray(ref[k]))
    np.testing.assert_allclose(df["hillas_intensity"], np.asarray(ref["hillas_intensity"]))
    np.testing.assert_allclose(df["hillas_x"], ref["hillas_fov_lon"].quantity.to_value("deg"))
    np.testing.assert_allclose(df["true_energy"], ref["true_energy"].quantity.to_value("TeV"))
    assert set(df["label"]) == {"gamma"} and {"alpha", "dist", "is_valid", "true_impact"} <= set(df.columns)
    with pytest.raises(RareflowError, match="no telescope"):
        read_dl1(dl1_file, telescopes=[999])


def test_dl2_round_trips_through_ctapipe(dl1_file, tmp_path):
    df = read_dl1(dl1_file)
    g = np.linspace(0.2, 0.9, len(df))
    g[-1] = np.nan  # an event without a valid gammaness
    out = tmp_path / "dl2.h5"
    write_dl2(df.assign(gammaness=g), out, template=dl1_file, prefix="rareflow")
    with TableLoader(out) as loader:
        tel = loader.read_telescope_events(dl1_parameters=True, dl2=True, simulated=False, instrument=False)
        sub = loader.read_subarray_events(dl2=True, simulated=False)
    got = pd.DataFrame({k: np.asarray(tel[k]) for k in ("obs_id", "event_id", "tel_id")})
    got["p"] = np.asarray(tel["rareflow_tel_prediction"])
    got["ok"] = np.asarray(tel["rareflow_tel_is_valid"])
    want = df[["obs_id", "event_id", "tel_id"]].assign(g=g).merge(got, on=["obs_id", "event_id", "tel_id"])
    assert len(want) == len(df)
    np.testing.assert_allclose(want["p"], want["g"])  # NaN where NaN
    np.testing.assert_array_equal(want["ok"], np.isfinite(want["g"]))
    mean = want[want["ok"]].groupby(["obs_id", "event_id"])["g"].mean()
    for o, e, p, ok in zip(sub["obs_id"], sub["event_id"], sub["rareflow_prediction"], sub["rareflow_is_valid"]):
        assert ok == ((o, e) in mean.index)
        if ok:
            assert p == pytest.approx(mean[(o, e)])


def test_dl2_bad_input_is_one_line(dl1_file, tmp_path):
    df = read_dl1(dl1_file)
    with pytest.raises(RareflowError, match="lacks column.*gammaness"):
        write_dl2(df, tmp_path / "a.h5", template=dl1_file)
    with pytest.raises(RareflowError, match=r"gammaness in \[0, 1\]"):
        write_dl2(df.assign(gammaness=2.0), tmp_path / "b.h5", template=dl1_file)
    with pytest.raises(RareflowError, match="no such ctapipe DL1"):
        read_dl1(tmp_path / "missing.h5")


def test_score_format_dl2_end_to_end(dl1_file, tmp_path, capsys):
    """`rareflow score --format dl2` on ctapipe's DL1: read_table goes through TableLoader (ids kept),
    the gammaness lands in ctapipe's DL2 layout and ctapipe's TableLoader reads it back."""
    from rareflow.cli import main
    from rareflow.detectors import get_detector
    from rareflow.io.tables import read_table
    from rareflow.persistence import save_model

    df = read_table(dl1_file)  # ctapipe installed: TableLoader, every telescope, ids kept
    ref = read_dl1(dl1_file)
    pd.testing.assert_frame_equal(df[["obs_id", "event_id", "tel_id"]], ref[["obs_id", "event_id", "tel_id"]])
    feats = ["hillas_intensity", "hillas_width", "hillas_length"]
    ok = df["is_valid"].to_numpy(bool) & np.isfinite(df[feats].to_numpy(float)).all(axis=1)
    r = np.random.default_rng(0)  # the DL1 file holds a handful of gammas: train on a toy of its columns
    y = r.random(400) < 0.5
    toy = pd.DataFrame({"hillas_intensity": 10 ** r.uniform(1, 4, 400), "hillas_width": r.gamma(2, 0.04, 400) * (1 + y),
                        "hillas_length": r.gamma(2, 0.08, 400) * (1 + y)})  # fmt: skip
    det = get_detector("mahalanobis").fit(toy, y.astype(int))
    model = tmp_path / "m.rfm"
    save_model(det, model)
    out = tmp_path / "dl2.h5"
    argv = ["score", "--model", str(model), "--data", str(dl1_file), "--format", "dl2", "--out", str(out), "-q"]
    assert main(argv) == 0
    with TableLoader(out) as loader:
        tel = loader.read_telescope_events(dl1_parameters=False, dl2=True, simulated=False, instrument=False)
    got = pd.DataFrame({k: np.asarray(tel[k]) for k in ("obs_id", "event_id", "tel_id")})
    got["p"] = np.asarray(tel["rareflow_tel_prediction"])
    want = df[["obs_id", "event_id", "tel_id"]].copy()
    want["g"] = np.nan
    want.loc[ok, "g"] = det.gammaness(df.loc[ok, feats])
    both = want.merge(got, on=["obs_id", "event_id", "tel_id"])
    assert len(both) == len(df) and ok.any()
    np.testing.assert_allclose(both["p"], both["g"])
    # not a DL1 file: one line, nothing written
    bad = tmp_path / "t.parquet"
    df.loc[ok, feats].to_parquet(bad)
    capsys.readouterr()
    argv = ["score", "--model", str(model), "--data", str(bad), "--format", "dl2", "--out", str(tmp_path / "x.h5"), "-q"]
    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "x.h5").exists()
