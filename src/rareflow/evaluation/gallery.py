"""Gallery of a compare run's image methods: the highest-scoring test images and their anomaly maps.

For each image method (first seed), the top test images by score are drawn on the camera —
hexagons for a hexagonal camera, squares for square-pixel images (MNIST) — with the anomaly map
(brought back from the grid to the camera pixels, :meth:`GridMapping.to_pixels`) underneath and
the map's maximum marked on both. Matplotlib's object API with the Agg canvas; written atomically.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from rareflow.atomic import write_bytes_atomic
from rareflow.iact.camera import CameraGeometry

__all__ = ["draw_pixels", "file_label", "write_gallery"]


def _vertices(camera: CameraGeometry, lattice: str) -> np.ndarray:
    if lattice != "square":
        return camera.hexagon_vertices()
    half = 0.5 * camera.pixel_spacing_deg
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    return np.stack([camera.pix_x, camera.pix_y], axis=-1)[:, None, :] + corners[None]


def draw_pixels(ax: Any, camera: CameraGeometry, values: np.ndarray, lattice: str = "hexagonal", cmap: str = "viridis") -> None:
    """Draw per-pixel ``values`` on ``ax`` as the camera's pixel shapes, colour scale min..99.5 %."""
    values = np.asarray(values, dtype=float)
    coll = PolyCollection(_vertices(camera, lattice), array=values, cmap=cmap, edgecolors="none", linewidths=0)
    lo, hi = float(np.min(values)), float(np.percentile(values, 99.5))
    coll.set_clim(lo, hi if hi > lo else lo + 1e-9)
    ax.add_collection(coll)
    pad = camera.pixel_spacing_deg
    ax.set_xlim(camera.pix_x.min() - pad, camera.pix_x.max() + pad)
    ax.set_ylim(camera.pix_y.min() - pad, camera.pix_y.max() + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _figure(method: str, entry: dict[str, Any], camera: CameraGeometry, lattice: str) -> Figure:
    n = len(entry["rows"])
    fig = Figure(figsize=(1.9 * n, 4.1))
    for k in range(n):
        top = fig.add_subplot(2, n, k + 1)
        bottom = fig.add_subplot(2, n, n + k + 1)
        draw_pixels(top, camera, entry["pixels"][k], lattice)
        draw_pixels(bottom, camera, entry["maps"][k], lattice, cmap="inferno")
        j = int(np.argmax(entry["maps"][k]))
        for ax in (top, bottom):
            ax.plot(camera.pix_x[j], camera.pix_y[j], "o", mfc="none", mec="tab:red", ms=9, mew=1.2)
        top.set_title(f"#{k + 1} {entry['labels'][k]}\nscore {entry['scores'][k]:.3g}", fontsize=7)
    fig.suptitle(
        f"{method}: highest-scoring test images (top: log1p charge; bottom: anomaly map; circle: map maximum)",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def file_label(method: str) -> str:
    """A method label as a file-name part: runs of other characters -> ``_``, no leading/trailing
    ``_`` / ``.`` / ``-`` (``"fastflow (selfsup)"`` -> ``"fastflow_selfsup"``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", method).strip("_.-") or "method"


def write_gallery(gallery: dict[str, dict[str, Any]], camera: CameraGeometry, out_dir: Path, lattice: str = "hexagonal") -> list[tuple[str, Path]]:
    """One PNG per image method, ``gallery_<method>.png``; returns ``(caption, path)`` pairs."""
    out = []
    for method, entry in gallery.items():
        fig = _figure(method, entry, camera, lattice)
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        path = Path(out_dir) / f"gallery_{file_label(method)}.png"
        write_bytes_atomic(path, buf.getvalue())
        out.append((f"{method}: top test images and anomaly maps", path))
    return out
