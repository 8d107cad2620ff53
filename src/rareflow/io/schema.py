"""The feature-table schema shared by the readers (io) and the IACT pipeline (iact).

``HILLAS_COLUMNS`` are SPEC's Hillas parameter columns, in order; :func:`source_parameters` is the
source-dependent geometry of a Hillas ellipse (alpha, dist, miss) that a reader of stored parameter
tables (ctapipe DL1) derives at the edge, and that :mod:`rareflow.iact.hillas` computes the same way.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HILLAS_COLUMNS", "source_parameters"]

HILLAS_COLUMNS: list[str] = [
    "hillas_intensity", "hillas_x", "hillas_y", "hillas_r", "hillas_phi", "hillas_length",
    "hillas_width", "hillas_psi", "hillas_skewness", "hillas_kurtosis", "alpha", "dist", "miss",
    "conc1", "conc2", "asym", "m3_long", "m3_trans", "leakage_intensity_width_1",
    "leakage_intensity_width_2", "n_pixels", "n_islands",
]  # fmt: skip


def source_parameters(
    cx: np.ndarray, cy: np.ndarray, c: np.ndarray, s: np.ndarray, source: tuple[float, float]
) -> dict[str, np.ndarray]:
    r"""alpha, dist, miss and the sign of MARS fCosDeltaAlpha relative to ``source``.

    With the centroid offset :math:`(d_x, d_y) = (\bar x - x_s, \bar y - y_s)` and the major axis
    direction :math:`(\cos\psi, \sin\psi)`: ``dist`` :math:`= |d|`, ``miss`` :math:`= |\cos\psi\,d_y - \sin\psi\,d_x|`,
    ``alpha`` :math:`= \arcsin(\mathrm{miss}_\pm / \mathrm{dist})` [deg] (Hillas 1985).
    """
    dx, dy = cx - source[0], cy - source[1]
    dist = np.hypot(dx, dy)
    arg1 = c * dy - s * dx
    arg2 = c * dx + s * dy
    return {
        "alpha": np.degrees(np.arcsin(np.clip(arg1 / dist, -1.0, 1.0))),
        "dist": dist,
        "miss": np.abs(arg1),
        "_sign_cda": np.where(arg2 < 0, -1.0, 1.0),
    }
