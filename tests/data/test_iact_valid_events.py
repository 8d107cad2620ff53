"""Drawing showers until N events are valid: exact counts, honest thrown counts, images in step."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.errors import RareflowError
from rareflow.iact.hillas import HILLAS_COLUMNS, extract_parameters
from rareflow.iact.simulate import SimulationConfig, simulate_events


def test_valid_mode_gives_exactly_n_valid_rows_in_the_requested_proportions() -> None:
    sim = simulate_events(1000, 0.4, seed=3, muon_fraction=0.05)
    t = sim.table
    assert len(t) == 1000 and t["is_valid"].all()
    assert t["label"].value_counts().to_dict() == {"proton": 550, "gamma": 400, "muon": 50}
    assert (t["event_id"] == np.arange(1000)).all()
    assert (t["label"].iloc[:100] == "gamma").mean() < 0.8  # shuffled, not blocks
    rec = sim.simulation
    assert rec["kept"] == "valid" and rec["n_events"] == 1000
    for name, n in (("gamma", 400), ("proton", 550), ("muon", 50)):
        assert rec["particles"][name]["n_valid"] == n <= rec["particles"][name]["n_showers"]


def test_thrown_counts_give_the_same_efficiency_as_keeping_everything() -> None:
    """n_valid / n_showers (valid mode, stopped at the N-th valid event) estimates the fraction of
    valid events that keep='all' measures directly on independent showers: both within 4 sigma."""
    rec = simulate_events(3000, 0.5, seed=21, muon_fraction=0.0).simulation["particles"]
    ref = simulate_events(6000, 0.5, seed=22, muon_fraction=0.0, keep="all").table
    for name in ("gamma", "proton"):
        eff = rec[name]["n_valid"] / rec[name]["n_showers"]
        v = ref.loc[ref.label == name, "is_valid"]
        p, n = v.mean(), len(v)
        sigma = np.sqrt(p * (1 - p) / n + eff * (1 - eff) / rec[name]["n_showers"])
        assert abs(eff - p) < 4 * sigma, (name, eff, p)


def test_images_follow_the_rows_and_seed_reproduces() -> None:
    a = simulate_events(500, 0.5, seed=7, return_images=True)
    b = simulate_events(500, 0.5, seed=7, return_images=True)
    assert np.array_equal(a.images, b.images) and a.table.equals(b.table)
    cfg = SimulationConfig()
    again = extract_parameters(
        a.images, a.camera, picture_thresh=cfg.picture_thresh, boundary_thresh=cfg.boundary_thresh,
        min_number_picture_neighbors=cfg.min_number_picture_neighbors,
    )  # fmt: skip
    np.testing.assert_allclose(again[HILLAS_COLUMNS].to_numpy(), a.table[HILLAS_COLUMNS].to_numpy())
    assert not simulate_events(500, 0.5, seed=8).table["true_energy"].equals(a.table["true_energy"])


def test_keep_is_checked_and_hopeless_options_fail_in_one_line() -> None:
    with pytest.raises(RareflowError, match="keep must be"):
        simulate_events(10, 0.5, keep="some")
    with pytest.raises(RareflowError, match="leave >= 3 pixels"):
        simulate_events(200, 0.5, seed=0, config=SimulationConfig(picture_thresh=1e6))
