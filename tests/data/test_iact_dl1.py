"""ctapipe DL1 HDF5 parameter tables -> rareflow columns (on a small file with ctapipe's layout)."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.errors import RareflowError

tables = pytest.importorskip("tables")

from rareflow.io.dl1 import read_dl1_parameters  # noqa: E402

PARAM_COLS = [
    ("obs_id", np.int32), ("event_id", np.int64), ("tel_id", np.int16), ("hillas_intensity", np.float64),
    ("hillas_skewness", np.float64), ("hillas_kurtosis", np.float64), ("hillas_fov_lon", np.float64),
    ("hillas_fov_lat", np.float64), ("hillas_r", np.float64), ("hillas_phi", np.float64),
    ("hillas_length", np.float64), ("hillas_width", np.float64), ("hillas_psi", np.float64),
    ("leakage_intensity_width_1", np.float32), ("leakage_intensity_width_2", np.float32),
    ("concentration_pixel", np.float64), ("morphology_n_pixels", np.int32), ("morphology_n_islands", np.int32),
]  # fmt: skip
DEG = {"hillas_fov_lon", "hillas_fov_lat", "hillas_r", "hillas_phi", "hillas_length", "hillas_width", "hillas_psi"}


def _param_table(tel_id: int, events: list[int]) -> np.ndarray:
    arr = np.zeros(len(events), dtype=PARAM_COLS)
    arr["obs_id"] = 1
    arr["event_id"] = events
    arr["tel_id"] = tel_id
    arr["hillas_intensity"] = [100.0 * (k + 1) for k in range(len(events))]
    arr["hillas_fov_lon"] = 1.0
    arr["hillas_fov_lat"] = 0.0
    arr["hillas_r"] = 1.0
    arr["hillas_length"] = 0.2
    arr["hillas_width"] = 0.05
    arr["hillas_psi"] = [0.0, 30.0, 90.0][: len(events)]
    arr["morphology_n_pixels"] = [10, 2, 7][: len(events)]
    arr["morphology_n_islands"] = 1
    arr["concentration_pixel"] = 0.3
    return arr


def _write_dl1(path, with_truth: bool = True) -> None:  # type: ignore[no-untyped-def]
    with tables.open_file(str(path), "w") as h5:
        for tel_id, events in ((1, [10, 11, 12]), (2, [10, 12])):
            params = _param_table(tel_id, events)
            node = h5.create_table(
                "/dl1/event/telescope/parameters", f"tel_{tel_id:03d}", obj=params, createparents=True
            )
            for i, name in enumerate(node.colnames):
                if name in DEG:
                    node.attrs[f"CTAFIELD_{i}_UNIT"] = "deg"
            impact = np.zeros(len(events), dtype=[("obs_id", np.int32), ("event_id", np.int64), ("tel_id", np.int16),
                                                   ("true_impact_distance", np.float32)])  # fmt: skip
            impact["obs_id"], impact["event_id"], impact["tel_id"] = 1, events, tel_id
            impact["true_impact_distance"] = 100.0 + tel_id
            h5.create_table("/simulation/event/telescope/impact", f"tel_{tel_id:03d}", obj=impact, createparents=True)
        if with_truth:
            shower = np.zeros(3, dtype=[("obs_id", np.int32), ("event_id", np.int64), ("true_energy", np.float64),
                                        ("true_shower_primary_id", np.int32), ("true_x_max", np.float64)])  # fmt: skip
            shower["obs_id"], shower["event_id"] = 1, [10, 11, 12]
            shower["true_energy"] = [1.0, 2.0, 3.0]
            shower["true_shower_primary_id"] = [0, 101, 2]
            h5.create_table("/simulation/event/subarray", "shower", obj=shower, createparents=True)


def test_read_all_telescopes_with_truth(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dl1.h5"
    _write_dl1(path)
    df = read_dl1_parameters(path)
    assert len(df) == 5
    for col in ("hillas_intensity", "hillas_x", "hillas_y", "hillas_length", "hillas_width", "hillas_psi",
                "leakage_intensity_width_2", "n_pixels", "n_islands", "conc1", "alpha", "dist", "miss"):  # fmt: skip
        assert col in df.columns, col
    assert "hillas_fov_lon" not in df.columns and "morphology_n_pixels" not in df.columns
    assert list(df.columns[:4]) == ["obs_id", "event_id", "tel_id", "label"]
    tel1 = df[df.tel_id == 1].set_index("event_id")
    assert list(tel1["label"]) == ["gamma", "proton", "muon"]
    assert list(tel1["true_particle"]) == [0, 101, 2] and list(tel1["true_energy"]) == [1.0, 2.0, 3.0]
    assert np.allclose(tel1["true_impact"], 101.0)
    # centroid (1, 0): psi 0 points at the camera centre, psi 90 is perpendicular to it
    assert np.allclose(np.abs(tel1["alpha"]), [0.0, 30.0, 90.0]) and np.allclose(tel1["dist"], 1.0)
    assert np.allclose(tel1["miss"], [0.0, 0.5, 1.0])
    assert list(tel1["is_valid"]) == [True, False, True]  # 2 pixels -> flagged


def test_select_telescope_and_no_truth(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dl1.h5"
    _write_dl1(path, with_truth=False)
    df = read_dl1_parameters(path, tel_id=2)
    assert len(df) == 2 and (df["tel_id"] == 2).all() and "label" not in df.columns
    with pytest.raises(RareflowError, match="tel_id=7"):
        read_dl1_parameters(path, tel_id=7)


def test_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RareflowError, match="no such"):
        read_dl1_parameters(tmp_path / "missing.h5")
    not_h5 = tmp_path / "text.h5"
    not_h5.write_text("hello")
    with pytest.raises(RareflowError, match="HDF5"):
        read_dl1_parameters(not_h5)
    no_params = tmp_path / "empty.h5"
    with tables.open_file(str(no_params), "w") as h5:
        h5.create_group("/", "dl1")
    with pytest.raises(RareflowError, match="write-parameters"):
        read_dl1_parameters(no_params)
