"""Fixtures for the IACT data-layer tests (camera, cleaning, Hillas, simulator, sim_telarray)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rareflow.iact.simulate import SimulationResult, simulate_events

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("RAREFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))  # override for tests
SIMTEL_FILES = {
    "gamma": "gamma_with_obslevel_particles.simtel.zst",
    "proton": "n_hv_disabled.simtel.gz",
    "muon": "lst_muons_with_true_photons.simtel.zst",
}


@pytest.fixture(scope="session")
def simtel_dir() -> Path:
    """../shared/data/simtel, or skip."""
    path = SHARED / "simtel"
    if not all((path / name).is_file() for name in SIMTEL_FILES.values()):
        pytest.skip(f"../shared/data not found: sim_telarray test files expected in {path}")
    return path


@pytest.fixture(scope="session")
def small_sim() -> SimulationResult:
    """A small simulated sample with images, shared by several tests: every thrown shower kept
    (keep="all"), so the invalid (< 3 pixels) events are there to be checked too."""
    return simulate_events(3000, 0.5, seed=11, muon_fraction=0.1, return_images=True, keep="all")
