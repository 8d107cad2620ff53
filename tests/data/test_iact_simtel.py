"""sim_telarray input through ctapipe: the shared files, errors on bad files, no network."""

from __future__ import annotations

import socket
import sys
import warnings

import numpy as np
import pytest

from rareflow.iact.hillas import HILLAS_COLUMNS
from rareflow.errors import RareflowError

pytest.importorskip("ctapipe")
pytest.importorskip("eventio")

from rareflow.iact.extract import extract_simtel
from rareflow.io.simtel import particle_label


@pytest.fixture()
def no_network(monkeypatch):  # type: ignore[no-untyped-def]
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_extract_the_three_shared_files(simtel_dir, no_network) -> None:  # type: ignore[no-untyped-def]
    expected = {
        "gamma_with_obslevel_particles.simtel.zst": ("gamma", 0, 1, 1.0),
        "n_hv_disabled.simtel.gz": ("proton", 101, 1, 0.1325),
        "lst_muons_with_true_photons.simtel.zst": ("muon", 2, 3, 0.1),
    }
    for name, (label, pid, n_rows, energy) in expected.items():
        df = extract_simtel(simtel_dir / name)
        assert len(df) == n_rows, name
        assert (df["label"] == label).all() and (df["true_particle"] == pid).all()
        assert np.allclose(df["true_energy"], energy, rtol=1e-3)
        assert {*HILLAS_COLUMNS, "is_valid", "event_id", "tel_id", "obs_id"} <= set(df.columns)
        assert df.attrs["truncated"] is False
    gamma = extract_simtel(simtel_dir / "gamma_with_obslevel_particles.simtel.zst", focal_length_choice="equivalent")
    # same numbers as `ctapipe-process` (ImageProcessor, telescope frame, 10/5/2 tail cuts)
    row = gamma.iloc[0]
    assert row["is_valid"] and row["n_pixels"] == 25 and row["n_islands"] == 1
    assert row["hillas_intensity"] == pytest.approx(926.442912, rel=1e-6)
    assert row["hillas_psi"] == pytest.approx(77.069926, abs=1e-5)
    assert row["hillas_length"] == pytest.approx(0.130614, rel=1e-5)
    assert row["true_impact"] == pytest.approx(3.452, rel=1e-3)
    muons = extract_simtel(simtel_dir / "lst_muons_with_true_photons.simtel.zst")
    assert muons["is_valid"].all() and (muons["hillas_width"] / muons["hillas_length"] > 0.9).all()  # rings
    # the proton is faint (0.13 TeV, 400 m away): no pixel survives 10/5 cleaning -> a flag, not NaN garbage
    proton = extract_simtel(simtel_dir / "n_hv_disabled.simtel.gz")
    assert not proton["is_valid"].any() and (proton["n_pixels"] < 3).all()
    loose = extract_simtel(
        simtel_dir / "n_hv_disabled.simtel.gz", picture_threshold=4, boundary_threshold=2, min_neighbors=0
    )
    assert loose["n_pixels"].iloc[0] > proton["n_pixels"].iloc[0]


def test_source_options(simtel_dir) -> None:  # type: ignore[no-untyped-def]
    path = simtel_dir / "gamma_with_obslevel_particles.simtel.zst"
    centre = extract_simtel(path)
    true = extract_simtel(path, source="true")
    shifted = extract_simtel(path, source=(1.0, 0.0))
    assert np.isfinite(true["true_source_x"]).all()
    assert true["dist"].iloc[0] == pytest.approx(
        np.hypot(centre["hillas_x"] - true["true_source_x"], centre["hillas_y"] - true["true_source_y"]).iloc[0]
    )
    assert shifted["dist"].iloc[0] == pytest.approx(np.hypot(centre["hillas_x"] - 1.0, centre["hillas_y"]).iloc[0])
    for bad in ("moon", (1.0,), ("a", "b")):
        with pytest.raises(RareflowError, match="source must be"):
            extract_simtel(path, source=bad)


@pytest.mark.parametrize("fraction", [0.0005, 0.3, 0.9, 0.999])
def test_truncated_copies_raise(simtel_dir, tmp_path, fraction: float) -> None:  # type: ignore[no-untyped-def]
    data = (simtel_dir / "lst_muons_with_true_photons.simtel.zst").read_bytes()
    cut = tmp_path / "cut.simtel.zst"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RareflowError, match=r"cut\.simtel\.zst"):
            extract_simtel(cut)


def test_truncated_kept_on_request(simtel_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = (simtel_dir / "lst_muons_with_true_photons.simtel.zst").read_bytes()
    cut = tmp_path / "cut.simtel.zst"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    with pytest.warns(UserWarning, match="truncated"):
        df = extract_simtel(cut, allow_truncated=True)
    assert 1 <= len(df) < 3 and df.attrs["truncated"] is True


def test_corrupt_missing_and_empty_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.simtel.gz"
    junk.write_bytes(bytes(range(256)) * 50)
    empty = tmp_path / "empty.simtel.zst"
    empty.write_bytes(b"")
    for path, match in (
        (junk, "cannot open"),
        (empty, "empty"),
        (tmp_path / "nope.simtel", "no such"),
        (tmp_path, "not a file"),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RareflowError, match=match):
                extract_simtel(path)
    with pytest.raises(RareflowError):
        extract_simtel(junk, max_events=0)


def test_missing_ctapipe_gives_install_hint(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "x.simtel.zst"
    f.write_bytes(b"x" * 100)
    monkeypatch.setitem(sys.modules, "ctapipe.io", None)  # makes `from ctapipe.io import ...` fail
    with pytest.raises(RareflowError, match=r"rareflow\[iact\]"):
        extract_simtel(f)


def test_particle_labels() -> None:
    assert [particle_label(i) for i in (0, 1, 2, 101, 402, 5626, 9999, 7)] == [
        "gamma", "electron", "muon", "proton", "helium", "iron", "nucleus", "unknown"
    ]  # fmt: skip
