"""Simulation metadata: recorded by the simulator, survives Parquet write -> read."""

from __future__ import annotations

import pandas as pd
import pytest

from rareflow.iact.simulate import SimulationConfig, simulate_events
from rareflow.errors import RareflowError
from rareflow.io.metadata import read_simulation, validate_particle, write_parquet


def test_simulation_record_survives_write_read(tmp_path):
    sim = simulate_events(300, rare_fraction=0.4, seed=3, muon_fraction=0.05, source="point", keep="all")
    rec = sim.simulation
    counts = sim.table["label"].value_counts()
    # thrown showers = every simulated event of the particle, valid (>= 3 pixels) or not
    assert not sim.table["is_valid"].all()
    for name in ("gamma", "proton", "muon"):
        assert rec["particles"][name]["n_showers"] == counts[name]
    cfg = SimulationConfig()
    g, p = rec["particles"]["gamma"], rec["particles"]["proton"]
    assert (g["energy_min_tev"], g["energy_max_tev"]) == cfg.gamma_energy_tev
    assert g["spectral_index"] == -cfg.gamma_index and g["viewcone_max_deg"] == 0.0
    assert p["max_impact_m"] == cfg.proton_max_impact_m and p["viewcone_max_deg"] == cfg.proton_viewcone_deg
    assert rec["seed"] == 3 and rec["camera"]["n_pixels"] == sim.camera.n_pixels

    out = tmp_path / "events.parquet"
    write_parquet(sim.table, out, simulation=rec)
    assert read_simulation(out) == rec
    pd.testing.assert_frame_equal(pd.read_parquet(out), sim.table)


def test_diffuse_gammas_record_their_view_cone():
    sim = simulate_events(50, rare_fraction=1.0, seed=0, muon_fraction=0.0, source="diffuse")
    assert sim.simulation["particles"]["gamma"]["viewcone_max_deg"] == SimulationConfig().diffuse_radius_deg


def test_missing_metadata_is_one_line(tmp_path):
    out = tmp_path / "plain.parquet"
    write_parquet(pd.DataFrame({"a": [1.0]}), out)
    assert read_simulation(out) is None
    with pytest.raises(RareflowError, match="no simulation metadata"):
        validate_particle(None, "gamma", str(out))
    rec = {"particles": {"gamma": {"n_showers": 10, "energy_min_tev": 1.0}}}
    with pytest.raises(RareflowError, match="lacks field 'energy_max_tev'"):
        validate_particle(rec, "gamma", str(out))
    with pytest.raises(RareflowError, match="no particle 'proton'"):
        validate_particle(rec, "proton", str(out))


def test_cli_simulate_writes_the_record(tmp_path):
    from rareflow.cli import main

    out = tmp_path / "sim.parquet"
    assert main(["simulate", "--n-events", "120", "--rare-fraction", "0.5", "--out", str(out), "--seed", "1", "-q"]) == 0
    rec = read_simulation(out)
    table = pd.read_parquet(out)
    labels = table["label"].value_counts()
    # the CLI keeps valid events only: 60 valid gammas, drawn from more thrown showers (all counted)
    assert table["is_valid"].all() and rec["kept"] == "valid"
    g = rec["particles"]["gamma"]
    assert rec["seed"] == 1 and g["n_valid"] == labels["gamma"] == 60 and g["n_showers"] > 60
