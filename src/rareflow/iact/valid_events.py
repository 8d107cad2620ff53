"""Draw showers until enough events are valid, counting what was thrown (for honest weights).

An event is *valid* when >= 3 pixels survive the cleaning (its Hillas parameters exist). The toy
simulator loses about half of what it throws (faint, distant showers), which an analysis drops
anyway; :func:`draw_valid` throws showers in rounds until each particle has its target number of
valid events.

Honest counting: within a round showers are i.i.d. in draw order, and for each particle the draw
stops at its ``target``-th valid event (a stopping time: inverse binomial sampling), so
``n_thrown`` = the position of that event, and ``n_valid / n_thrown`` is the maximum-likelihood
trigger + cleaning efficiency. Events drawn after it are discarded *as if never thrown*: their
fate does not enter the count. pyirf-style event weights use ``n_thrown`` (``n_showers`` in the
simulation record) as the simulated total, exactly as if every thrown shower had been kept and the
invalid ones cut later.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.camera_response import cleaning_thresholds, simulate_chunk
from rareflow.iact.hillas import extract_parameters
from rareflow.iact.shower_model import SimulationConfig
from rareflow.seeding import rng as make_rng

#: Prior valid fractions (first round only; later rounds use the measured ones).
_PRIOR_EFFICIENCY = {"gamma": 0.4, "proton": 0.4, "muon": 0.9}
_MIN_EFFICIENCY = 0.002  # below this the options (dead pixels, thresholds) leave nothing to analyse
_FLOOR_EFFICIENCY = 0.02  # a round never throws more than 1/0.02 x the need (the check stops hopeless cases)
_MAX_ROUNDS = 20


def parametrise_chunk(
    images: np.ndarray, truth: pd.DataFrame, cam: CameraGeometry, cfg: SimulationConfig, nsb_rate: float = 0.12
) -> pd.DataFrame:
    """Clean and parametrise one chunk of images; the Hillas columns and ``is_valid`` beside the truth.
    The tail cuts are ``cfg``'s, scaled to the camera's pixel noise (:func:`cleaning_thresholds`)."""
    picture, boundary = cleaning_thresholds(cam, cfg, nsb_rate)
    params = extract_parameters(
        images, cam, picture_thresh=picture, boundary_thresh=boundary,
        min_number_picture_neighbors=cfg.min_number_picture_neighbors,
    )  # fmt: skip
    return pd.concat([params.reset_index(drop=True), truth.reset_index(drop=True)], axis=1)


def _throws(need: dict[str, int], thrown: dict[str, int], valid: dict[str, int]) -> dict[str, int]:
    """Showers to throw per particle this round: the need over the (measured) efficiency, +15 %."""
    out = {}
    for name, n in need.items():
        if n <= 0:
            continue
        eff = valid[name] / thrown[name] if thrown[name] >= 200 else _PRIOR_EFFICIENCY[name]
        out[name] = int(np.ceil(n / max(eff, _FLOOR_EFFICIENCY) * 1.15)) + 16
    return out


def _round(
    rng: np.random.Generator, throws: dict[str, int], cam: CameraGeometry, cfg: SimulationConfig,
    source: str, nsb_rate: float, dead: np.ndarray, return_images: bool, chunk: int,
) -> tuple[pd.DataFrame, np.ndarray | None]:  # fmt: skip
    """One round of throws in a shuffled order, simulated and parametrised chunk by chunk."""
    labels = np.concatenate([np.full(n, name, dtype=object) for name, n in throws.items()])
    labels = labels[rng.permutation(labels.size)]
    children = rng.spawn(-(-labels.size // chunk))
    tables, images = [], []
    for k, child in enumerate(children):
        imgs, truth = simulate_chunk(child, labels[k * chunk : (k + 1) * chunk], cam, cfg, source, nsb_rate, dead)
        imgs = imgs.astype(np.float32, copy=False)
        table = parametrise_chunk(imgs, truth, cam, cfg, nsb_rate)
        tables.append(table)
        if return_images:
            images.append(imgs[table["is_valid"].to_numpy()])  # only valid images are kept
    return pd.concat(tables, ignore_index=True), (np.concatenate(images) if return_images else None)


def _keep(table: pd.DataFrame, need: dict[str, int]) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """Rows to keep (the first ``need`` valid events per particle, draw order) and (thrown, valid) counts."""
    keep = np.zeros(len(table), bool)
    counts = {}
    labels, valid = table["label"].to_numpy(), table["is_valid"].to_numpy(bool)
    for name in need:
        mine = np.flatnonzero(labels == name)
        ok = mine[valid[mine]][: max(need[name], 0)]
        keep[ok] = True
        # the stopping time: everything up to the last kept valid event was thrown; if the round
        # ran short, every shower of the particle in this round was thrown
        n_thrown = int(np.searchsorted(mine, ok[-1]) + 1) if len(ok) == need[name] and len(ok) else mine.size
        counts[name] = (n_thrown, int(ok.size))
    return keep, counts


def draw_valid(
    targets: dict[str, int], seed: int, cam: CameraGeometry, cfg: SimulationConfig, source: str,
    nsb_rate: float, dead_pixel_fraction: float, return_images: bool, chunk: int,
) -> tuple[pd.DataFrame, np.ndarray | None, dict[str, tuple[int, int]]]:  # fmt: skip
    """``(table, images, {particle: (n_thrown, n_valid)})`` with exactly ``targets`` valid rows per
    particle, shuffled, ``event_id`` = row number (the images follow the same order)."""
    master = make_rng(seed)
    dead = master.random(cam.n_pixels) < dead_pixel_fraction
    thrown, valid = dict.fromkeys(targets, 0), dict.fromkeys(targets, 0)
    tables, images = [], []
    for _ in range(_MAX_ROUNDS):
        need = {k: targets[k] - valid[k] for k in targets}
        throws = _throws(need, thrown, valid)
        if not throws:
            break
        table, imgs = _round(master.spawn(1)[0], throws, cam, cfg, source, nsb_rate, dead, return_images, chunk)
        keep, counts = _keep(table, {k: need[k] for k in throws})
        for name, (n_thrown, n_valid) in counts.items():
            thrown[name] += n_thrown
            valid[name] += n_valid
        tables.append(table[keep])
        if imgs is not None:
            imgs_keep = keep[table["is_valid"].to_numpy(bool)]
            images.append(imgs[imgs_keep])
        _check_efficiency(thrown, valid, targets)
    else:
        raise RareflowError(f"simulate: {valid} valid events after {_MAX_ROUNDS} rounds, wanted {targets}")
    return _assemble(tables, images, master, return_images, cam) + ({k: (thrown[k], valid[k]) for k in targets},)


def _check_efficiency(thrown: dict[str, int], valid: dict[str, int], targets: dict[str, int]) -> None:
    for name, n in thrown.items():
        if n >= 1000 and valid[name] < targets[name] and valid[name] / n < _MIN_EFFICIENCY:
            raise RareflowError(
                f"simulate: only {valid[name]} of {n} thrown {name} showers leave >= 3 pixels after cleaning; "
                "check dead_pixel_fraction / the cleaning thresholds, or use keep='all'"
            )


def _assemble(
    tables: list[pd.DataFrame], images: list[np.ndarray], master: np.random.Generator, return_images: bool,
    cam: CameraGeometry,
) -> tuple[pd.DataFrame, np.ndarray | None]:  # fmt: skip
    table = pd.concat(tables, ignore_index=True)
    order = master.permutation(len(table))  # classes mixed, not in blocks
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "event_id", np.arange(len(table), dtype=np.int64))
    first = ["event_id", "label"]
    table = table[first + [c for c in table.columns if c not in first]]
    out_images = None
    if return_images:
        stacked = np.concatenate(images) if images else np.empty((0, cam.n_pixels), np.float32)
        out_images = np.ascontiguousarray(stacked[order])
    return table, out_images
