"""PNG gallery and feature histograms of simulated events."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.iact.sim_plots import write_simulation_plots
from rareflow.errors import RareflowError

PNG = b"\x89PNG\r\n\x1a\n"


def test_writes_gallery_per_class_and_features(tmp_path, small_sim) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "plots"
    paths = write_simulation_plots(small_sim.table, small_sim.images, small_sim.camera, out, seed=1, n_examples=4)
    names = sorted(p.name for p in paths)
    assert names == ["features_gamma_vs_proton.png", "gallery_gamma.png", "gallery_muon.png", "gallery_proton.png"]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary files left


def test_features_only_without_images(tmp_path, small_sim) -> None:  # type: ignore[no-untyped-def]
    paths = write_simulation_plots(small_sim.table, None, small_sim.camera, tmp_path)
    assert [p.name for p in paths] == ["features_gamma_vs_proton.png"]


def test_bad_inputs(tmp_path, small_sim) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RareflowError):
        write_simulation_plots(small_sim.table.drop(columns=["label"]), None, small_sim.camera, tmp_path)
    with pytest.raises(RareflowError):
        write_simulation_plots(small_sim.table, np.zeros((3, 3)), small_sim.camera, tmp_path)
