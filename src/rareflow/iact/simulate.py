r"""Toy IACT event simulator: gamma, proton and muon camera images, fast and fully seeded.

Not a replacement for CORSIKA + sim_telarray (see ``docs/simulator.md``). The physics model and its
sources are in :mod:`rareflow.iact.shower_model` (constants: :class:`SimulationConfig`), the camera
response in :mod:`rareflow.iact.camera_response`, image files in :mod:`rareflow.iact.image_files`;
this module is the public API.

What a call returns: by default (``keep="valid"``) showers are drawn until the requested number of
events are *valid* (>= 3 pixels survive the cleaning), so every row is usable; the showers thrown
per particle — valid or not — are counted in the simulation record (``n_showers``, what pyirf's
event weighting needs), with the valid counts beside them. ``keep="all"`` returns every thrown
event, invalid ones with ``is_valid`` False and NaN parameters.

Reproducibility: one master generator (:func:`rareflow.seeding.rng`) draws the event list and
spawns one child generator per chunk of events, so the same seed gives the same table and images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.camera_response import simulate_chunk
from rareflow.iact.image_files import load_images, save_images
from rareflow.iact.valid_events import draw_valid, parametrise_chunk
from rareflow.iact.shower_model import PARTICLE_IDS, SimulationConfig
from rareflow.seeding import rng as make_rng

__all__ = [
    "PARTICLE_IDS",
    "SimulationConfig",
    "SimulationResult",
    "load_images",
    "save_images",
    "simulate_events",
    "simulate_images",
    "iter_image_chunks",
    "simulation_record",
    "simulation_summary",
]

_CHUNK = 8192  # events per simulation chunk (fixed: part of the reproducibility contract)


@dataclass
class SimulationResult:
    """Output of :func:`simulate_events`: the parameter table, optional images and the camera."""

    table: pd.DataFrame
    images: np.ndarray | None
    camera: CameraGeometry
    config: SimulationConfig = field(default_factory=SimulationConfig)
    #: what was simulated (showers thrown per particle, spectra, impact disk, view cone):
    #: :func:`simulation_record`, written to the Parquet metadata by ``rareflow.io.metadata``
    simulation: dict | None = None


# ----------------------------------------------------------------------------- public API
def _class_counts(n_events: int, rare_fraction: float, muon_fraction: float) -> tuple[int, int, int]:
    if n_events < 0:
        raise RareflowError(f"n_events must be >= 0 (got {n_events})")
    if not 0.0 <= rare_fraction <= 1.0:
        raise RareflowError(f"rare_fraction must be in [0, 1] (got {rare_fraction}); e.g. 0.5")
    if not 0.0 <= muon_fraction <= 1.0 - rare_fraction:
        raise RareflowError(
            f"muon_fraction must be in [0, 1 - rare_fraction] (got {muon_fraction} with rare_fraction {rare_fraction})"
        )
    n_gamma = round(rare_fraction * n_events)
    n_muon = min(round(muon_fraction * n_events), n_events - n_gamma)
    return n_gamma, n_events - n_gamma - n_muon, n_muon


def simulate_images(
    n_events: int,
    rare_fraction: float = 0.5,
    seed: int = 0,
    *,
    muon_fraction: float = 0.02,
    camera: CameraGeometry | None = None,
    source: str = "point",
    dead_pixel_fraction: float = 0.0,
    nsb_rate: float = 0.12,
    config: SimulationConfig | None = None,
) -> tuple[np.ndarray, pd.DataFrame, CameraGeometry]:
    """Images (n_events, n_pixels) float32 [p.e.] and the truth table, without cleaning/parameters."""
    cam, chunks = iter_image_chunks(
        n_events, rare_fraction, seed, muon_fraction=muon_fraction, camera=camera, source=source,
        dead_pixel_fraction=dead_pixel_fraction, nsb_rate=nsb_rate, config=config,
    )  # fmt: skip
    images = np.empty((n_events, cam.n_pixels), dtype=np.float32)
    truths = []
    for a, chunk, truth in chunks:
        images[a : a + len(chunk)] = chunk
        truths.append(truth)
    return images, pd.concat(truths, ignore_index=True), cam


def iter_image_chunks(
    n_events: int,
    rare_fraction: float = 0.5,
    seed: int = 0,
    *,
    muon_fraction: float = 0.02,
    camera: CameraGeometry | None = None,
    source: str = "point",
    dead_pixel_fraction: float = 0.0,
    nsb_rate: float = 0.12,
    config: SimulationConfig | None = None,
) -> tuple[CameraGeometry, Iterator[tuple[int, np.ndarray, pd.DataFrame]]]:
    """The camera and a generator of ``(first event index, images, truth with event_id)`` per chunk.

    Each chunk has its own child generator spawned from the seed, so streaming the chunks gives
    the same events as :func:`simulate_images`, with memory bounded by one chunk of images.
    """
    cfg = config or SimulationConfig()
    cam = camera or CameraGeometry.hexagonal()
    _check_options(source, dead_pixel_fraction, nsb_rate)
    n_gamma, n_proton, n_muon = _class_counts(n_events, rare_fraction, muon_fraction)
    master = make_rng(seed)
    labels = np.array(["gamma"] * n_gamma + ["proton"] * n_proton + ["muon"] * n_muon, dtype=object)
    labels = labels[master.permutation(n_events)] if n_events else labels
    dead = master.random(cam.n_pixels) < dead_pixel_fraction
    children = master.spawn(max(1, -(-n_events // _CHUNK)))

    def chunks() -> Iterator[tuple[int, np.ndarray, pd.DataFrame]]:
        for k, child in enumerate(children):
            a, b = k * _CHUNK, min((k + 1) * _CHUNK, n_events)  # n_events = 0: one empty chunk
            images, truth = simulate_chunk(child, labels[a:b], cam, cfg, source, nsb_rate, dead)
            truth.insert(0, "event_id", np.arange(a, b, dtype=np.int64))
            yield a, images.astype(np.float32, copy=False), truth

    return cam, chunks()



def simulate_events(
    n_events: int,
    rare_fraction: float = 0.5,
    seed: int = 0,
    *,
    muon_fraction: float = 0.02,
    camera: CameraGeometry | None = None,
    source: str = "point",
    dead_pixel_fraction: float = 0.0,
    nsb_rate: float = 0.12,
    return_images: bool = False,
    config: SimulationConfig | None = None,
    keep: str = "valid",
) -> SimulationResult:
    """Simulate gamma / proton / muon events, clean them and compute their Hillas parameters.

    ``rare_fraction`` of the events are gammas, ``muon_fraction`` muons, the rest protons (shuffled).
    ``keep="valid"`` (default): showers are drawn until ``n_events`` events are valid (>= 3 pixels
    after cleaning), in those proportions; the record's ``n_showers`` counts every shower thrown
    until then (valid or not) and ``n_valid`` the rows kept, so event weights stay those of the
    thrown spectrum. ``keep="all"``: ``n_events`` thrown showers, invalid ones with NaN parameters.
    ``source``: ``"point"`` (gammas from the camera centre) or ``"diffuse"`` (gammas uniform within
    ``config.diffuse_radius_deg``); alpha / dist / miss are always relative to the camera centre.
    ``nsb_rate``: night-sky background [p.e./ns] per pixel of 0.36 deg (scaled by pixel solid angle). The table holds the SPEC Hillas columns,
    ``is_valid`` (False: < 3 pixels survived the cleaning; parameters NaN), ``label``, ``event_id``
    and the truth: ``true_particle`` (0 gamma, 101 proton, 2 muon), ``true_energy`` [TeV],
    ``true_impact`` [m] (muons: impact on the mirror plane), ``true_source_x/_y`` [deg] (muons: ring
    centre), ``true_x_max`` [g cm^-2], ``true_n_pe`` (Cherenkov p.e. landing in the camera).
    """
    if keep not in ("valid", "all"):
        raise RareflowError(f"keep must be 'valid' or 'all' (got {keep!r})")
    cfg = config or SimulationConfig()
    if keep == "valid" and n_events > 0:
        _class_counts(n_events, rare_fraction, muon_fraction)  # validates the fractions first
        cam = camera or CameraGeometry.hexagonal()
        _check_options(source, dead_pixel_fraction, nsb_rate)
        table, images, thrown = draw_valid(
            _targets(n_events, rare_fraction, muon_fraction), seed, cam, cfg, source, nsb_rate,
            dead_pixel_fraction, return_images, _CHUNK,
        )  # fmt: skip
        record = simulation_record(n_events, rare_fraction, muon_fraction, source, cam, cfg, seed, thrown=thrown)
        return SimulationResult(table, images, cam, cfg, simulation=record)
    cam, chunks = iter_image_chunks(
        n_events, rare_fraction, seed, muon_fraction=muon_fraction, camera=camera, source=source,
        dead_pixel_fraction=dead_pixel_fraction, nsb_rate=nsb_rate, config=cfg,
    )  # fmt: skip
    images = np.empty((n_events, cam.n_pixels), dtype=np.float32) if return_images else None
    parts = []
    for a, chunk, truth in chunks:  # images are parametrised chunk by chunk: memory ~ one chunk
        if images is not None:
            images[a : a + len(chunk)] = chunk
        parts.append(parametrise_chunk(chunk, truth, cam, cfg, nsb_rate))
    table = pd.concat(parts, ignore_index=True)
    first = ["event_id", "label"]
    table = table[first + [c for c in table.columns if c not in first]]
    record = simulation_record(n_events, rare_fraction, muon_fraction, source, cam, cfg, seed)
    return SimulationResult(table, images, cam, cfg, simulation=record)


def _targets(n_events: int, rare_fraction: float, muon_fraction: float) -> dict[str, int]:
    n_gamma, n_proton, n_muon = _class_counts(n_events, rare_fraction, muon_fraction)
    return {"gamma": n_gamma, "proton": n_proton, "muon": n_muon}


def _check_options(source: str, dead_pixel_fraction: float, nsb_rate: float) -> None:
    if source not in ("point", "diffuse"):
        raise RareflowError(f"source must be 'point' or 'diffuse' (got {source!r})")
    if not 0.0 <= dead_pixel_fraction < 1.0:
        raise RareflowError(f"dead_pixel_fraction must be in [0, 1) (got {dead_pixel_fraction})")
    if nsb_rate < 0:
        raise RareflowError(f"nsb_rate must be >= 0 p.e./ns (got {nsb_rate})")


def simulation_record(
    n_events: int, rare_fraction: float, muon_fraction: float, source: str,
    camera: CameraGeometry, config: SimulationConfig, seed: int | None = None,
    thrown: dict[str, tuple[int, int]] | None = None,
) -> dict:  # fmt: skip
    """What was simulated, in pyirf's ``SimulatedEventsInfo`` terms (see ``docs/simulator.md``).

    ``n_showers`` counts every thrown event of the particle, also those that left < 3 pixels
    (``is_valid`` False): the simulator draws no trigger-level pre-selection. With ``thrown``
    (``{particle: (n_thrown, n_valid)}``, from drawing until enough events are valid) the record
    says ``kept: "valid"``, ``n_showers`` is the thrown count and ``n_valid`` the rows in the table;
    the valid fraction n_valid / n_showers is the trigger + cleaning efficiency. The view cone is the
    disk the arrival directions are drawn from (0 for a point source); muons' "impact" is on the
    mirror plane and their energies are the muon's, so they are recorded but not for weighting.
    """
    n_gamma, n_proton, n_muon = _class_counts(n_events, rare_fraction, muon_fraction)
    if thrown is not None:
        n_gamma, n_proton, n_muon = (thrown.get(k, (0, 0))[0] for k in ("gamma", "proton", "muon"))
    gamma_cone = config.diffuse_radius_deg if source == "diffuse" else 0.0
    rows = (
        ("gamma", n_gamma, config.gamma_energy_tev, config.gamma_index, config.gamma_max_impact_m, gamma_cone),
        ("proton", n_proton, config.proton_energy_tev, config.proton_index, config.proton_max_impact_m,
         config.proton_viewcone_deg),
        ("muon", n_muon, config.muon_energy_tev, config.muon_index,
         config.muon_max_impact_factor * config.mirror_radius_m, config.muon_max_offset_deg),
    )  # fmt: skip
    particles = {
        name: dict(n_showers=int(n), energy_min_tev=float(e[0]), energy_max_tev=float(e[1]),
                   spectral_index=-float(idx), max_impact_m=float(r), viewcone_min_deg=0.0, viewcone_max_deg=float(c))
        for name, n, e, idx, r, c in rows
    }  # fmt: skip
    if thrown is not None:
        for name, entry in particles.items():
            entry["n_valid"] = int(thrown.get(name, (0, 0))[1])
    return dict(
        kept="valid" if thrown is not None else "all",
        schema=1, simulator="rareflow.toy", source=source, seed=seed if isinstance(seed, int) else None, n_events=int(n_events), particles=particles,
        camera=dict(name=camera.name, n_pixels=int(camera.n_pixels)),
        telescope=dict(mirror_area_m2=config.mirror_area_m2, observation_level_km=config.observation_level_km),
    )  # fmt: skip




def simulation_summary(table: pd.DataFrame, record: dict | None) -> str:
    """One line on what the rows are: how many are valid, and (valid mode) from how many thrown showers,
    e.g. ``all 2000 valid (>= 3 pixels); thrown showers: gamma 2301 (43% valid), proton ...``."""
    n_valid = int(table["is_valid"].sum()) if "is_valid" in table else len(table)
    parts = (record or {}).get("particles", {})
    if (record or {}).get("kept") == "valid":
        thrown = ", ".join(
            f"{k} {v['n_showers']} ({v['n_valid'] / v['n_showers']:.0%} valid)" for k, v in parts.items() if v["n_showers"]
        )
        return f"all {n_valid} valid (>= 3 pixels after cleaning); thrown showers: {thrown}"
    return f"{n_valid} of {len(table)} valid (>= 3 pixels after cleaning; the others have NaN parameters)"
