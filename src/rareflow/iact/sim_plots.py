"""Plots of simulated IACT events: example camera images per class and gamma-vs-proton features.

Called by ``rareflow simulate --plots DIR``. Uses matplotlib's object API with the Agg canvas (no
pyplot, no global backend change, no display needed). Files are written atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from rareflow.atomic import write_bytes_atomic
from rareflow.iact.camera import CameraGeometry
from rareflow.errors import RareflowError
from rareflow.seeding import rng as make_rng

__all__ = ["draw_camera_image", "write_simulation_plots"]

FEATURES: list[tuple[str, str]] = [
    ("hillas_intensity", "log10(intensity / p.e.)"),
    ("hillas_length", "length [deg]"),
    ("hillas_width", "width [deg]"),
    ("alpha", "|alpha| [deg]"),
    ("dist", "dist [deg]"),
    ("miss", "miss [deg]"),
    ("conc1", "conc1"),
    ("conc2", "conc2"),
    ("asym", "asym [deg]"),
    ("m3_long", "m3_long [deg]"),
    ("hillas_skewness", "skewness"),
    ("hillas_kurtosis", "kurtosis"),
    ("leakage_intensity_width_2", "leakage (2 rings)"),
    ("n_pixels", "n_pixels"),
    ("n_islands", "n_islands"),
]
_COLORS = {"gamma": "tab:blue", "proton": "tab:red", "muon": "tab:green"}


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes_atomic(path, buf.getvalue())


def draw_camera_image(ax, camera: CameraGeometry, image: np.ndarray, row: pd.Series | None = None) -> None:  # type: ignore[no-untyped-def]
    """Draw one image as hexagons on ``ax`` (and the Hillas ellipse of ``row`` when valid)."""
    coll = PolyCollection(camera.hexagon_vertices(), array=np.asarray(image, float), cmap="viridis",
                          edgecolors="none", linewidths=0)  # fmt: skip
    lim = np.percentile(image, 99.5)
    coll.set_clim(0, max(lim, 1.0))
    ax.add_collection(coll)
    half = 0.5 * camera.fov_deg
    ax.set_xlim(-half, half)
    ax.set_ylim(-half, half)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if row is not None and bool(row.get("is_valid", False)):
        ell = Ellipse((row["hillas_x"], row["hillas_y"]), 4 * row["hillas_length"], 4 * row["hillas_width"],
                      angle=row["hillas_psi"], fill=False, color="w", lw=0.8)  # fmt: skip
        ax.add_patch(ell)
        ax.set_title(f"{row['hillas_intensity']:.0f} p.e., |a|={abs(row['alpha']):.0f} deg", fontsize=7)


def _gallery(table: pd.DataFrame, images: np.ndarray, camera: CameraGeometry, label: str, path: Path,
             gen: np.random.Generator, n_examples: int) -> None:  # fmt: skip
    idx = np.flatnonzero((table["label"].to_numpy() == label) & table["is_valid"].to_numpy(bool))
    if idx.size == 0:
        idx = np.flatnonzero(table["label"].to_numpy() == label)
    pick = np.sort(gen.choice(idx, size=min(n_examples, idx.size), replace=False))
    ncol = 4
    nrow = max(1, -(-pick.size // ncol))
    fig = Figure(figsize=(2.2 * ncol, 2.3 * nrow))
    for k, i in enumerate(pick):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        draw_camera_image(ax, camera, images[i], table.iloc[i])
    fig.suptitle(f"simulated {label} images ({camera.name}; ellipses: 2 x length/width)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _features(table: pd.DataFrame, path: Path) -> None:
    valid = table[table["is_valid"].to_numpy(bool)] if "is_valid" in table else table
    ncol = 5
    nrow = -(-len(FEATURES) // ncol)
    fig = Figure(figsize=(3.0 * ncol, 2.4 * nrow))
    for k, (col, title) in enumerate(FEATURES):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        vals = {lab: valid.loc[valid["label"] == lab, col].to_numpy(float) for lab in ("gamma", "proton")}
        if col == "hillas_intensity":
            vals = {k2: np.log10(v[v > 0]) for k2, v in vals.items()}
        if col == "alpha":
            vals = {k2: np.abs(v) for k2, v in vals.items()}
        both = np.concatenate([v[np.isfinite(v)] for v in vals.values()])
        if both.size == 0:
            continue
        lo, hi = np.percentile(both, [0.5, 99.5])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        for lab, v in vals.items():
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=bins, density=True, histtype="step", color=_COLORS[lab], label=f"{lab} ({v.size})")
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
        if k == 0:
            ax.legend(fontsize=7)
    fig.suptitle("Hillas features of valid images (>= 3 pixels), normalised", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def write_simulation_plots(
    table: pd.DataFrame,
    images: np.ndarray | None,
    camera: CameraGeometry,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    n_examples: int = 8,
) -> list[Path]:
    """Write ``gallery_<class>.png`` (if ``images`` given) and ``features_gamma_vs_proton.png``.

    ``table`` is a :func:`rareflow.iact.simulate.simulate_events` table (``label``, ``is_valid``,
    Hillas columns), ``images`` its (n_events, n_pixels) images in the same row order. Returns the
    paths written.
    """
    out = Path(out_dir)
    for col in ("label", "is_valid"):
        if col not in table.columns:
            raise RareflowError(f"write_simulation_plots: table lacks column {col!r}; pass a simulate_events table")
    if images is not None and (images.ndim != 2 or images.shape != (len(table), camera.n_pixels)):
        raise RareflowError(
            f"write_simulation_plots: images {np.shape(images)} do not match "
            f"{len(table)} events x {camera.n_pixels} pixels"
        )
    out.mkdir(parents=True, exist_ok=True)
    gen = make_rng(seed)
    written: list[Path] = []
    if images is not None:
        for label in sorted(table["label"].unique()):
            path = out / f"gallery_{label}.png"
            _gallery(table.reset_index(drop=True), images, camera, str(label), path, gen, n_examples)
            written.append(path)
    path = out / "features_gamma_vs_proton.png"
    _features(table, path)
    written.append(path)
    return written
