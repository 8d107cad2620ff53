"""Camera geometry of an imaging atmospheric Cherenkov telescope (IACT), in degrees.

A :class:`CameraGeometry` holds the pixel centres (``pix_x``, ``pix_y``, degrees in the telescope
frame, i.e. angles from the optical axis), the pixel areas (deg^2), the neighbour adjacency as a
symmetric boolean ``scipy.sparse.csr_array`` and the camera border masks needed for leakage.

Neighbours follow ctapipe's rule for hexagonal pixels exactly (``CameraGeometry.calc_pixel_neighbors``):
pixel *j* is a neighbour of *i* when it is among *i*'s 6 nearest pixels and closer than 1.4 x the
distance to *i*'s nearest pixel. Border masks follow ctapipe's ``get_border_pixel_mask``: width 1 =
pixels with fewer neighbours than the maximum, width *k* = pixels with a neighbour in border *k-1*.

Constructors
------------
* :meth:`CameraGeometry.hexagonal` — a regular hexagonal grid; the default is TAIGA-IACT-like
  (571 pixels of 0.36 deg, 9.4 deg field of view; the TAIGA-IACT cameras have ~560 PMT pixels of
  ~0.36 deg and a ~9.6 deg field of view — approximate values from the TAIGA collaboration's
  descriptions, not an exact replica of the pixel layout).
* :meth:`CameraGeometry.from_arrays` — any pixel layout (e.g. the one stored in an image ``.npz``).
* :meth:`CameraGeometry.from_ctapipe` — a ctapipe geometry (as read from a sim_telarray file);
  metres are converted to degrees with ctapipe's own CameraFrame -> TelescopeFrame transformation
  and the geometry's focal length, so parameters match ctapipe's telescope-frame parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from rareflow.errors import RareflowError

__all__ = ["CameraGeometry", "neighbor_matrix"]

SQRT3 = float(np.sqrt(3.0))


def neighbor_matrix(pix_x: np.ndarray, pix_y: np.ndarray) -> sp.csr_array:
    """Boolean adjacency of a hexagonal/circular-pixel camera, ctapipe's rule (6 nearest, < 1.4 d_min)."""
    n = len(pix_x)
    if n <= 1:
        return sp.csr_array(np.ones((n, n), dtype=bool))
    points = np.column_stack([pix_x, pix_y]).astype(np.float64)
    k = min(7, n)
    dist, cand = cKDTree(points).query(points, k=k, p=2)
    dist, cand = dist[:, 1:], cand[:, 1:]
    inside = dist < 1.4 * dist.min(axis=1, keepdims=True)
    rows, col = np.nonzero(inside)
    data = np.ones(len(rows), dtype=bool)
    return sp.csr_array((data, (rows, cand[rows, col])), shape=(n, n))


@dataclass(frozen=True, eq=False)
class CameraGeometry:
    """Pixel layout of an IACT camera in the telescope frame (degrees).

    Attributes
    ----------
    name: camera name (e.g. ``"TAIGA-IACT-like"``, ``"HESS-1U"``).
    pix_x, pix_y: pixel centres [deg], float64 arrays of shape (n_pixels,).
    pix_area: pixel areas [deg^2].
    neighbors: symmetric boolean ``csr_array`` (n_pixels, n_pixels), no self loops.
    pix_rotation_deg: rotation of the hexagons (0 = flat sides facing +-x, "pointy top"), for drawing.
    lattice: for regular hexagonal grids, ``(spacing_deg, rotation_deg)`` enabling a fast
        position -> pixel lookup; ``None`` for arbitrary layouts (a KD-tree is used instead).
    """

    name: str
    pix_x: np.ndarray
    pix_y: np.ndarray
    pix_area: np.ndarray
    neighbors: sp.csr_array
    pix_rotation_deg: float = 0.0
    lattice: tuple[float, float] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        pix_x: np.ndarray,
        pix_y: np.ndarray,
        pix_area: np.ndarray | float | None = None,
        name: str = "custom",
        pix_rotation_deg: float = 0.0,
        neighbors: sp.spmatrix | sp.sparray | None = None,
    ) -> CameraGeometry:
        """A camera from pixel centres [deg]; areas default to the hexagon of the nearest-pixel spacing."""
        pix_x = np.asarray(pix_x, dtype=np.float64).ravel()
        pix_y = np.asarray(pix_y, dtype=np.float64).ravel()
        if pix_x.shape != pix_y.shape or pix_x.size == 0:
            raise RareflowError(
                f"camera {name!r}: pix_x and pix_y must be non-empty and of equal length "
                f"(got {pix_x.size} and {pix_y.size}); pass one position per pixel"
            )
        if not (np.all(np.isfinite(pix_x)) and np.all(np.isfinite(pix_y))):
            raise RareflowError(f"camera {name!r}: pixel positions contain NaN/inf; fix the geometry input")
        nb = neighbor_matrix(pix_x, pix_y) if neighbors is None else sp.csr_array(neighbors, dtype=bool)
        if pix_area is None:
            spacing = _nearest_spacing(pix_x, pix_y)
            pix_area = SQRT3 / 2.0 * spacing**2
        area = np.broadcast_to(np.asarray(pix_area, dtype=np.float64), pix_x.shape).copy()
        return cls(name, pix_x, pix_y, area, nb, float(pix_rotation_deg))

    @classmethod
    def hexagonal(
        cls,
        n_pixels: int = 576,
        pixel_spacing_deg: float = 0.36,
        fov_deg: float | None = None,
        name: str = "TAIGA-IACT-like",
        exact_count: bool = False,
    ) -> CameraGeometry:
        """A round camera cut from a regular hexagonal grid of pixel pitch ``pixel_spacing_deg``.

        By default whole rings (pixels at equal distance from the centre) are kept, so the camera is
        6-fold symmetric and the pixel count is the ring-complete count closest to ``n_pixels``
        (576 -> 571, 960 -> 955). ``exact_count=True`` keeps exactly ``n_pixels`` (the outermost ring
        partly filled, by polar angle). ``fov_deg`` (full field of view) overrides ``n_pixels``:
        all pixels whose outer edge lies within ``fov_deg / 2`` are kept.
        """
        if pixel_spacing_deg <= 0:
            raise RareflowError(f"pixel_spacing_deg must be > 0 (got {pixel_spacing_deg}); use e.g. 0.36")
        if fov_deg is None and n_pixels < 1:
            raise RareflowError(f"n_pixels must be >= 1 (got {n_pixels}); use e.g. 576")
        if fov_deg is not None:
            if fov_deg <= pixel_spacing_deg:
                raise RareflowError(f"fov_deg={fov_deg} must exceed the pixel spacing {pixel_spacing_deg}")
            n_guess = (fov_deg / pixel_spacing_deg) ** 2 * np.pi / 4 / (SQRT3 / 2)
        else:
            n_guess = n_pixels
        rings = int(np.ceil(np.sqrt(n_guess / 3.0))) + 3
        i, j = np.meshgrid(np.arange(-rings, rings + 1), np.arange(-rings, rings + 1), indexing="ij")
        x = (i + 0.5 * j).ravel()
        y = (SQRT3 / 2.0 * j).ravel()
        r = np.round(np.hypot(x, y), 9)
        order = np.lexsort((np.round(np.arctan2(y, x), 12), r))
        x, y, r = x[order], y[order], r[order]
        if fov_deg is not None:
            keep = r * pixel_spacing_deg + pixel_spacing_deg / 2 <= fov_deg / 2 + 1e-9
            n_keep = int(keep.sum())
        elif exact_count:
            n_keep = n_pixels
        else:
            _, counts = np.unique(r, return_counts=True)
            cum = np.cumsum(counts)
            n_keep = int(cum[np.argmin(np.abs(cum - n_pixels))])
        x, y = x[:n_keep] * pixel_spacing_deg, y[:n_keep] * pixel_spacing_deg
        area = np.full(n_keep, SQRT3 / 2.0 * pixel_spacing_deg**2)
        cam = cls(name, x, y, area, neighbor_matrix(x, y), 0.0, (float(pixel_spacing_deg), 0.0))
        return cam

    @classmethod
    def from_ctapipe(cls, geom: Any, focal_length_m: float | None = None) -> CameraGeometry:
        """Convert a ``ctapipe.instrument.CameraGeometry`` (metres or degrees) to degrees.

        Metres are converted with ctapipe's ``geom.transform_to(TelescopeFrame())`` using the focal
        length stored in ``geom.frame`` (or ``focal_length_m``), so that Hillas parameters computed
        here match ctapipe's telescope-frame parameters. The neighbour matrix is ctapipe's own.
        """
        import astropy.units as u

        unit = geom.pix_x.unit
        if unit.is_equivalent(u.m):
            from ctapipe.coordinates import CameraFrame, TelescopeFrame

            frame = getattr(geom, "frame", None)
            f = getattr(frame, "focal_length", None) if frame is not None else None
            if focal_length_m is not None:
                geom = _with_frame(geom, CameraFrame(focal_length=focal_length_m * u.m))
            elif f is None or not np.isfinite(f.to_value(u.m)) or f.to_value(u.m) <= 0:
                raise RareflowError(
                    f"camera {geom.name!r} is in metres but has no focal length; "
                    "pass focal_length_m= to CameraGeometry.from_ctapipe"
                )
            geom = geom.transform_to(TelescopeFrame())
        pix_x = geom.pix_x.to_value(u.deg)
        pix_y = geom.pix_y.to_value(u.deg)
        area = geom.pix_area.to_value(u.deg**2)
        rot = float(geom.pix_rotation.to_value(u.deg))
        nb = sp.csr_array(geom.neighbor_matrix_sparse, dtype=bool)
        return cls(str(geom.name), pix_x, pix_y, area, nb, rot)

    def to_ctapipe(self) -> Any:
        """This geometry as a ``ctapipe.instrument.CameraGeometry`` in degrees (needs ctapipe)."""
        import astropy.units as u
        from ctapipe.instrument import CameraGeometry as CtaGeometry
        from ctapipe.instrument import PixelShape

        return CtaGeometry(
            name=self.name,
            pix_id=np.arange(self.n_pixels),
            pix_x=u.Quantity(self.pix_x, u.deg),
            pix_y=u.Quantity(self.pix_y, u.deg),
            pix_area=u.Quantity(self.pix_area, u.deg**2),
            pix_type=PixelShape.HEXAGON,
            pix_rotation=self.pix_rotation_deg * u.deg,
        )

    # ------------------------------------------------------------------ derived quantities
    @property
    def n_pixels(self) -> int:
        """Number of pixels."""
        return int(self.pix_x.size)

    @property
    def pixel_spacing_deg(self) -> float:
        """Median distance between neighbouring pixel centres [deg]."""
        if "spacing" not in self._cache:
            self._cache["spacing"] = _nearest_spacing(self.pix_x, self.pix_y)
        return float(self._cache["spacing"])

    @property
    def fov_deg(self) -> float:
        """Full field of view: twice the largest centre distance plus one pixel [deg]."""
        return float(2 * np.hypot(self.pix_x, self.pix_y).max() + self.pixel_spacing_deg)

    @property
    def n_neighbors(self) -> np.ndarray:
        """Number of neighbours of each pixel."""
        return np.asarray(self.neighbors.sum(axis=1)).ravel().astype(np.int64)

    def neighbor_lists(self) -> list[np.ndarray]:
        """The neighbours of each pixel as a list of index arrays."""
        nb = self.neighbors
        return [nb.indices[nb.indptr[i] : nb.indptr[i + 1]].copy() for i in range(self.n_pixels)]

    def neighbor_table(self) -> np.ndarray:
        """Neighbours as a dense (n_pixels, max_neighbors) int array padded with ``n_pixels``."""
        if "table" not in self._cache:
            nb = self.neighbors
            counts = np.diff(nb.indptr)
            k = int(counts.max()) if counts.size else 0
            table = np.full((self.n_pixels, max(k, 1)), self.n_pixels, dtype=np.int64)
            rows = np.repeat(np.arange(self.n_pixels), counts)
            cols = np.arange(nb.indices.size) - np.repeat(nb.indptr[:-1], counts)
            table[rows, cols] = nb.indices
            self._cache["table"] = table
        return self._cache["table"]

    def neighbor_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Undirected neighbour pairs ``(i, j)`` with ``i < j``."""
        if "pairs" not in self._cache:
            coo = sp.coo_array(self.neighbors)
            keep = coo.row < coo.col
            self._cache["pairs"] = (coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64))
        return self._cache["pairs"]

    def border_mask(self, width: int = 1) -> np.ndarray:
        """Pixels in the camera border of ``width`` rings (ctapipe's ``get_border_pixel_mask``)."""
        if width < 1:
            raise RareflowError(f"border width must be >= 1 (got {width})")
        key = f"border{width}"
        if key not in self._cache:
            if width == 1:
                n_nb = self.n_neighbors
                mask = n_nb < n_nb.max()
            else:
                prev = self.border_mask(width - 1).astype(np.int8)
                mask = (self.neighbors @ prev) > 0
            self._cache[key] = np.asarray(mask, dtype=bool)
        return self._cache[key]

    def pixel_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the pixel containing each point [deg]; ``-1`` outside the camera.

        Regular hexagonal grids use exact hexagon rounding in axial coordinates; other layouts use
        the nearest pixel centre within half a pixel spacing (a circular-pixel approximation).
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if self.lattice is not None and self.lattice[1] == 0.0:
            return self._lattice_index(x, y)
        tree = self._cache.get("tree")
        if tree is None:
            tree = self._cache["tree"] = cKDTree(np.column_stack([self.pix_x, self.pix_y]))
        dist, idx = tree.query(np.column_stack([x.ravel(), y.ravel()]), k=1, workers=-1)
        idx = np.where(dist <= 0.5 * self.pixel_spacing_deg * 1.1547, idx, -1)
        return idx.reshape(x.shape)

    def _lattice_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        spacing = self.lattice[0]  # type: ignore[index]
        lut, off, size = self._lattice_lut()
        # axial coordinates (x = s (q + r/2), y = s sqrt(3)/2 r), cube rounding to the nearest hexagon
        r_f = y / (spacing * SQRT3 / 2.0)
        q_f = x / spacing - 0.5 * r_f
        s_f = -q_f - r_f
        q, r, s = np.rint(q_f), np.rint(r_f), np.rint(s_f)
        dq, dr, ds = np.abs(q - q_f), np.abs(r - r_f), np.abs(s - s_f)
        fix_q = (dq > dr) & (dq > ds)
        fix_r = ~fix_q & (dr > ds)
        q = np.where(fix_q, -r - s, q)
        r = np.where(fix_r, -q - s, r)
        qi = q.astype(np.int64) + off
        ri = r.astype(np.int64) + off
        inside = (qi >= 0) & (qi < size) & (ri >= 0) & (ri < size)
        out = np.full(x.shape, -1, dtype=np.int64)
        out[inside] = lut[qi[inside], ri[inside]]
        return out

    def _lattice_lut(self) -> tuple[np.ndarray, int, int]:
        if "lut" not in self._cache:
            spacing = self.lattice[0]  # type: ignore[index]
            r = np.rint(self.pix_y / (spacing * SQRT3 / 2.0)).astype(np.int64)
            q = np.rint(self.pix_x / spacing - 0.5 * r).astype(np.int64)
            off = int(max(np.abs(q).max(), np.abs(r).max())) + 1
            size = 2 * off + 1
            lut = np.full((size, size), -1, dtype=np.int64)
            lut[q + off, r + off] = np.arange(self.n_pixels)
            self._cache["lut"] = (lut, off, size)
        return self._cache["lut"]

    def hexagon_vertices(self) -> np.ndarray:
        """Hexagon corners for drawing, shape (n_pixels, 6, 2) [deg] (flat-to-flat = spacing)."""
        radius = np.sqrt(2.0 * self.pix_area / (3.0 * SQRT3))  # circumradius from the hexagon area
        ang = np.deg2rad(self.pix_rotation_deg + 30.0 + 60.0 * np.arange(6))
        vx = self.pix_x[:, None] + radius[:, None] * np.cos(ang)[None, :]
        vy = self.pix_y[:, None] + radius[:, None] * np.sin(ang)[None, :]
        return np.stack([vx, vy], axis=-1)

    def __repr__(self) -> str:
        return (
            f"CameraGeometry(name={self.name!r}, n_pixels={self.n_pixels}, "
            f"spacing={self.pixel_spacing_deg:.3f} deg, fov={self.fov_deg:.2f} deg)"
        )


def _nearest_spacing(pix_x: np.ndarray, pix_y: np.ndarray) -> float:
    if pix_x.size < 2:
        return 1.0
    dist, _ = cKDTree(np.column_stack([pix_x, pix_y])).query(np.column_stack([pix_x, pix_y]), k=2)
    return float(np.median(dist[:, 1]))


def _with_frame(geom: Any, frame: Any) -> Any:
    from copy import deepcopy

    new = deepcopy(geom)
    new.frame = frame
    return new
