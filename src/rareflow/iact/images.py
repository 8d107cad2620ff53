r"""Camera images as tensors: hexagonal pixels -> square grid (axial addressing) and back.

Convolutions need a square grid; IACT cameras have hexagonal pixels. Following the "axial
addressing" of Nieto et al. (ICRC 2019, arXiv:1912.09898, who compare it with oversampling,
rebinning, interpolation and image shifting and find comparable accuracy at the lowest cost),
every pixel centre is written in the lattice basis :math:`(a_1, a_2)` of the camera,

.. math:: p_i = q_i\, a_1 + r_i\, a_2, \qquad q_i, r_i \in \mathbb{Z},

and its value goes to grid cell :math:`(r_i - r_{min}, q_i - q_{min})`. On a hexagonal lattice
:math:`a_2` is :math:`a_1` turned by 60 deg, so the grid is the camera sheared into a
parallelogram: neighbouring pixels stay neighbouring cells (six of the eight 3x3 neighbours),
no pixel is split or merged, and the map is **lossless**: :meth:`GridMapping.to_pixels` of
:meth:`GridMapping.to_grid` returns every pixel value exactly. Cells outside the camera hold 0
(``mask`` marks the camera cells). A square lattice (e.g. MNIST, or square-pixel cameras) gives
:math:`a_2 \perp a_1` and the identity up to orientation.

Anomaly maps computed on the grid (possibly at a lower resolution, upsampled bilinearly to the
grid) come back to the camera with the same gather, :meth:`GridMapping.to_pixels`.

Normalisation: :func:`log1p_charge` :math:`u = \operatorname{sign}(c)\log(1 + |c|)` of the charge
:math:`c` [p.e.] — the dynamic range of 1..10^4 p.e. compressed, NSB fluctuations (which can be
negative after pedestal subtraction) kept and invertible (:func:`expm1_charge`).

Loaders (:class:`ImageSet`: pixel images, camera, mapping, a table aligned with the rows):

* :func:`load_simulated` — the ``.npz`` of ``rareflow simulate --images-out`` (+ its Parquet table);
* :func:`load_simtel` — sim_telarray files via :mod:`rareflow.io.simtel` (one camera type);
  :func:`iter_simtel` streams such a file a chunk of events at a time (all telescopes, or some),
  :func:`simtel_cameras` lists its telescopes' cameras without reading events;
* :func:`load_idx_pair_set` — MNIST / notMNIST IDX gzip files as a second, non-physics dataset;
* :func:`iterate_batches` — float32 tensors of a fixed batch size for scoring loops.

Hybrid input (:class:`ImagesWithFeatures`): the grid images and the feature table of the same
events, for image methods that also read the table (``cnn-classifier`` with ``hillas: true``);
indexing it takes the same rows of both, so the compare runner's splits apply unchanged.

Camera symmetries (:func:`grid_symmetries`): the rotations and reflections of the lattice
(hexagonal: the 12 elements of :math:`D_6`; square: the 8 of :math:`D_4`) written in axial
coordinates — on a hexagonal lattice the 60 deg rotation is :math:`(q, r) \mapsto (-r, q + r)`
and a reflection :math:`(q, r) \mapsto (q + r, -r)` — kept when they map the set of camera cells
onto itself; each is a permutation of grid cells (a gather index), so an augmented image holds
exactly the camera's pixel values, moved to other pixels, and nothing off the camera.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.iact.camera import CameraGeometry
from rareflow.errors import RareflowError

__all__ = [
    "GridMapping",
    "ImageSet",
    "ImagesWithFeatures",
    "grid_symmetries",
    "check_images",
    "check_tel_ids",
    "expm1_charge",
    "image_moments",
    "iterate_batches",
    "iter_simtel",
    "load_idx_pair_set",
    "load_simtel",
    "load_simulated",
    "log1p_charge",
    "simtel_cameras",
    "square_camera",
]

_TOL = 0.1  # max distance of a pixel centre from its lattice point, in units of the pixel spacing


def log1p_charge(charge: np.ndarray) -> np.ndarray:
    """:math:`\\operatorname{sign}(c)\\log(1+|c|)` as float32 (NaN -> 0: unusable pixels read 0)."""
    c = np.nan_to_num(np.asarray(charge, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return (np.sign(c) * np.log1p(np.abs(c))).astype(np.float32)


def expm1_charge(u: np.ndarray) -> np.ndarray:
    """Inverse of :func:`log1p_charge`: :math:`\\operatorname{sign}(u)(e^{|u|}-1)`."""
    u = np.asarray(u, dtype=np.float64)
    return np.sign(u) * np.expm1(np.abs(u))


@dataclass(frozen=True)
class GridMapping:
    """Lossless pixel <-> grid map: pixel ``i`` lives in cell ``(row[i], col[i])`` of an (H, W) grid."""

    row: np.ndarray
    col: np.ndarray
    shape: tuple[int, int]
    lattice: str  # "hexagonal" | "square"

    @property
    def n_pixels(self) -> int:
        """Number of camera pixels."""
        return int(self.row.size)

    @property
    def mask(self) -> np.ndarray:
        """Boolean (H, W): True on cells that hold a camera pixel."""
        m = np.zeros(self.shape, dtype=bool)
        m[self.row, self.col] = True
        return m

    @classmethod
    def from_camera(cls, camera: CameraGeometry) -> "GridMapping":
        """Axial addressing of a camera on a regular hexagonal or square lattice (any rotation)."""
        pts = np.column_stack([camera.pix_x, camera.pix_y])
        if len(pts) < 3:
            raise RareflowError(f"camera {camera.name!r} has {len(pts)} pixels; images need at least 3")
        a1, a2, origin, lattice = _lattice_basis(camera)
        rel = pts - origin
        coef = rel @ np.linalg.inv(np.column_stack([a1, a2])).T  # (q, r) per pixel
        q, r = np.rint(coef[:, 0]).astype(np.int64), np.rint(coef[:, 1]).astype(np.int64)
        resid = np.hypot(*(rel - np.outer(q, a1) - np.outer(r, a2)).T) / np.hypot(*a1)
        if resid.max() > _TOL:
            raise RareflowError(
                f"camera {camera.name!r} is not a regular {lattice} lattice (a pixel lies {resid.max():.2f} spacings "
                "off it); image methods need a lattice camera — use the Hillas-table methods for this camera"
            )
        row, col = r - r.min(), q - q.min()
        shape = (int(row.max()) + 1, int(col.max()) + 1)
        if len(np.unique(row * shape[1] + col)) != len(row):
            raise RareflowError(f"camera {camera.name!r}: two pixels share a lattice point; check the pixel positions")
        # image up = +y: put the largest r at the top row
        return cls(shape[0] - 1 - row, col, shape, lattice)

    @classmethod
    def square(cls, height: int, width: int) -> "GridMapping":
        """The identity map of an (H, W) image stored row-major as H*W 'pixels'."""
        rows, cols = np.divmod(np.arange(height * width), width)
        return cls(rows, cols, (int(height), int(width)), "square")

    def to_grid(self, pixels: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(n, P) pixel values -> (n, H, W) grid (cells outside the camera = ``fill``)."""
        pixels = np.asarray(pixels)
        one = pixels.ndim == 1
        pixels = np.atleast_2d(pixels)
        if pixels.shape[1] != self.n_pixels:
            raise RareflowError(f"images have {pixels.shape[1]} pixels but the camera grid maps {self.n_pixels}")
        out = np.full((len(pixels), *self.shape), fill, dtype=pixels.dtype)
        out[:, self.row, self.col] = pixels
        return out[0] if one else out

    def to_pixels(self, grid: np.ndarray) -> np.ndarray:
        """(n, H, W) grid (or maps of another size, resized bilinearly) -> (n, P) pixel values."""
        grid = np.asarray(grid)
        one = grid.ndim == 2
        grid = grid[None] if one else grid
        if grid.shape[1:] != self.shape:
            grid = resize_maps(grid, self.shape)
        out = grid[:, self.row, self.col]
        return out[0] if one else out


def _lattice_basis(camera: CameraGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Two primitive lattice vectors from a central pixel's nearest neighbours (hexagonal: 60 deg
    apart, square: 90 deg) and that pixel's centre as the lattice origin."""
    pts = np.column_stack([camera.pix_x, camera.pix_y])
    centre = int(np.argmin(np.hypot(*(pts - pts.mean(axis=0)).T)))
    d = np.hypot(*(pts - pts[centre]).T)
    d[centre] = np.inf
    near = pts[d < 1.2 * d.min()] - pts[centre]
    angles = np.degrees(np.arctan2(near[:, 1], near[:, 0]))
    lattice = "hexagonal" if len(near) >= 5 else "square"
    a1 = near[np.argmin(np.abs(((angles + 180.0) % 360.0) - 180.0))]  # closest to +x
    turn = 60.0 if lattice == "hexagonal" else 90.0
    rel = (angles - np.degrees(np.arctan2(a1[1], a1[0]))) % 360.0
    a2 = near[np.argmin(np.abs(rel - turn))]
    if abs(((rel[np.argmin(np.abs(rel - turn))]) - turn)) > 10.0:
        raise RareflowError(f"camera {camera.name!r}: cannot find a regular lattice among the central pixel's neighbours")
    return a1, a2, pts[centre], lattice


def resize_maps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (n, h, w) maps to ``shape`` (align_corners=False, as torch's interpolate)."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.ascontiguousarray(maps), dtype=torch.float32)[:, None]
    return F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[:, 0].numpy()


def square_camera(height: int, width: int, name: str = "square") -> CameraGeometry:
    """A square-pixel 'camera' (unit pitch, y up) whose :meth:`GridMapping.from_camera` is the identity."""
    rows, cols = np.divmod(np.arange(height * width), width)
    x = cols - (width - 1) / 2.0
    y = (height - 1) / 2.0 - rows
    return CameraGeometry.from_arrays(x, y, 1.0, name=name, pix_rotation_deg=45.0)


def image_moments(pixels: np.ndarray, camera: CameraGeometry) -> pd.DataFrame:
    """Simple per-image moment features of non-negative intensities (for table methods on MNIST):
    ``size, n_lit, cog_x, cog_y, sigma_x, sigma_y, cov_xy``."""
    w = np.clip(np.asarray(pixels, dtype=np.float64), 0.0, None)
    size = w.sum(axis=1)
    safe = np.where(size > 0, size, 1.0)
    x, y = camera.pix_x, camera.pix_y
    mx, my = w @ x / safe, w @ y / safe
    sxx = np.clip(w @ (x * x) / safe - mx**2, 0.0, None)
    syy = np.clip(w @ (y * y) / safe - my**2, 0.0, None)
    sxy = w @ (x * y) / safe - mx * my
    return pd.DataFrame({
        "size": size, "n_lit": (w > 0.5 * w.max(axis=1, keepdims=True).clip(1e-12)).sum(axis=1).astype(float),
        "cog_x": mx, "cog_y": my, "sigma_x": np.sqrt(sxx), "sigma_y": np.sqrt(syy), "cov_xy": sxy,
    })  # fmt: skip


@dataclass
class ImageSet:
    """Pixel images (n, P) [charge, or intensity], their camera and grid map, and a table of n rows."""

    pixels: np.ndarray
    camera: CameraGeometry
    mapping: GridMapping
    table: pd.DataFrame
    source: str

    def grids(self, normalise: bool = True) -> np.ndarray:
        """(n, H, W) float32 grids, :func:`log1p_charge`-normalised unless ``normalise=False``."""
        px = log1p_charge(self.pixels) if normalise else np.asarray(self.pixels, dtype=np.float32)
        return self.mapping.to_grid(px)

    def __len__(self) -> int:
        return int(len(self.pixels))


def _from_camera(pixels: np.ndarray, camera: CameraGeometry, table: pd.DataFrame, source: str) -> ImageSet:
    return ImageSet(np.asarray(pixels, dtype=np.float32), camera, GridMapping.from_camera(camera), table, source)


def load_simulated(images_path: str | os.PathLike[str], table: pd.DataFrame | str | os.PathLike[str] | None = None) -> ImageSet:
    """Images from ``rareflow simulate --images-out`` joined to the event table on ``event_id``.

    ``table`` (a DataFrame or a Parquet/CSV path) gives the labels and Hillas columns; rows of the
    table without an image are an error, images without a row are dropped.
    """
    from rareflow.iact.simulate import load_images
    from rareflow.io.tables import read_table

    images, camera, event_ids = load_images(images_path)
    if table is None:
        df = pd.DataFrame({"event_id": event_ids})
    else:
        df = table if isinstance(table, pd.DataFrame) else read_table(table)
        if "event_id" not in df.columns:
            raise RareflowError(f"{images_path}: the event table has no 'event_id' column to join the images on")
    pos = pd.Series(np.arange(len(event_ids)), index=event_ids)
    if not pos.index.is_unique:
        raise RareflowError(f"{images_path}: event_id values repeat; re-create the file with save_images")
    missing = ~df["event_id"].isin(pos.index)
    if missing.any():
        first = int(df["event_id"].to_numpy()[missing.to_numpy()][0])
        raise RareflowError(
            f"{images_path}: {int(missing.sum())} table events have no image (first event_id {first}); "
            "use the table and images written by the same `rareflow simulate` call"
        )
    rows = pos.loc[df["event_id"].to_numpy()].to_numpy()
    return _from_camera(images[rows], camera, df.reset_index(drop=True), os.fspath(images_path))


def simtel_cameras(path: str | os.PathLike[str]) -> dict[int, CameraGeometry]:
    """The camera [deg] of every telescope of a sim_telarray file, read from its instrument description
    only (no event is read); the conversion :func:`iter_simtel` applies to the images."""
    from rareflow.io import simtel

    p = simtel.check_file(path, "sim_telarray")
    event_source, _ = simtel.import_ctapipe()
    with simtel.offline():
        src = simtel.open_source(event_source, p, "auto", None)
        try:
            tels = src.subarray.tel
            return {int(t): CameraGeometry.from_ctapipe(tels[t].camera.geometry) for t in sorted(src.subarray.tel_ids)}
        finally:
            src.close()


def _read_simtel(
    path: str | os.PathLike[str], tel_ids: list[int] | None, chunk_events: int, max_events: int | None
) -> Iterator[tuple[dict[int, list], dict[int, CameraGeometry]]]:
    """``({tel_id: [(image, meta), ...]}, cameras of the telescopes read so far)`` per chunk of
    events with images of the telescopes ``tel_ids`` (None: all); RareflowError for a telescope the
    file lacks, or at the end when no image was read."""
    from rareflow.io import simtel

    if chunk_events < 1:
        raise RareflowError(f"chunk_events must be >= 1 (got {chunk_events})")
    p = simtel.check_file(path, "sim_telarray")
    event_source, calibrator_cls = simtel.import_ctapipe()
    with simtel.offline():
        src = simtel.open_source(event_source, p, "auto", max_events)
    cameras: dict[int, CameraGeometry] = {}
    try:
        check_tel_ids({int(t): str(src.subarray.tel[t].camera.name) for t in src.subarray.tel_ids}, tel_ids, p)
        with simtel.offline():
            reader = simtel.EventReader(src, calibrator_cls(subarray=src.subarray), p, False, tel_ids)
        while not reader.done:
            per_tel = reader.read(chunk_events)
            with simtel.offline():
                for t in per_tel.keys() - cameras.keys():
                    cameras[t] = CameraGeometry.from_ctapipe(src.subarray.tel[t].camera.geometry)
            if per_tel:
                yield per_tel, cameras
    finally:
        src.close()
    if not cameras:
        which = "telescope images" if tel_ids is None else f"images of telescope(s) {sorted(tel_ids)}"
        raise RareflowError(f"{p}: no {which} in {reader.n_events} event(s); check the file")


def check_tel_ids(names: dict[int, str], tel_ids: list[int] | None, path: str | os.PathLike[str]) -> None:
    """One-line RareflowError when a file whose telescopes have the cameras ``names`` ({tel_id: camera
    name}) lacks one of ``tel_ids``."""
    bad = [t for t in tel_ids or [] if int(t) not in names]
    if bad:
        listed = ", ".join(f"{t} ({names[t]})" for t in sorted(names))
        raise RareflowError(f"{path} has no telescope {bad[0]}; its telescopes: {listed}; pass one of them to --tel-id")


def iter_simtel(
    path: str | os.PathLike[str],
    *,
    tel_ids: list[int] | None = None,
    chunk_events: int = 1000,
    picture_threshold: float = 10.0,
    boundary_threshold: float = 5.0,
    min_neighbors: int = 2,
    max_events: int | None = None,
) -> Iterator[dict[int, ImageSet]]:
    """The calibrated images + Hillas tables of a sim_telarray file, ``chunk_events`` events at a time.

    Yields, per chunk with images, ``{tel_id: ImageSet}`` of the telescopes ``tel_ids`` (default:
    all; their cameras must be lattice cameras) that have images in it; each table keeps ``_seq``
    (the event's position in the file) to merge telescopes in file order. Memory holds one chunk;
    rows do not depend on the chunk size (needs the ``iact`` extra)."""
    from rareflow.iact.extract import parametrise

    mappings: dict[int, GridMapping] = {}
    for per_tel, cameras in _read_simtel(path, tel_ids, chunk_events, max_events):
        chunk: dict[int, ImageSet] = {}
        for t, items in sorted(per_tel.items()):
            if t not in mappings:
                mappings[t] = GridMapping.from_camera(cameras[t])
            table = parametrise(items, cameras[t], picture_threshold, boundary_threshold, min_neighbors, "pointing")
            chunk[t] = ImageSet(_pixels(items), cameras[t], mappings[t], table.reset_index(drop=True), os.fspath(Path(path)))
        yield chunk


def _pixels(items: list) -> np.ndarray:
    """(n, P) float32 images of ``(image, meta)`` pairs; unusable (NaN) pixels read 0."""
    return np.stack([np.where(np.isfinite(im), im, 0.0) for im, _ in items]).astype(np.float32)


def load_simtel(
    path: str | os.PathLike[str],
    *,
    tel_id: int | None = None,
    picture_threshold: float = 10.0,
    boundary_threshold: float = 5.0,
    min_neighbors: int = 2,
    max_events: int | None = None,
) -> ImageSet:
    """Calibrated images + Hillas table of one telescope (default: the one with most images) of a
    whole sim_telarray file, read once through :mod:`rareflow.io.simtel` and parametrised by
    :func:`rareflow.iact.extract.parametrise` (needs the ``iact`` extra)."""
    from rareflow.iact.extract import parametrise

    per_tel: dict[int, list] = {}
    cameras: dict[int, CameraGeometry] = {}
    for chunk, cameras in _read_simtel(path, None if tel_id is None else [int(tel_id)], 1000, max_events):
        for t, items in chunk.items():
            per_tel.setdefault(t, []).extend(items)
    if tel_id is None:
        tel_id = max(per_tel, key=lambda t: (len(per_tel[t]), -t))
    tel_id = int(tel_id)
    items = per_tel[tel_id]
    table = parametrise(items, cameras[tel_id], picture_threshold, boundary_threshold, min_neighbors, "pointing")
    table = table.drop(columns=[c for c in table.columns if str(c).startswith("_")])
    return _from_camera(_pixels(items), cameras[tel_id], table.reset_index(drop=True), os.fspath(Path(path)))


def load_idx_pair_set(
    bulk_folder: str | os.PathLike[str],
    rare_folder: str | os.PathLike[str],
    bulk_label: str = "digit",
    rare_label: str = "letter",
    n_per_class: int | None = None,
    seed: int = 0,
) -> ImageSet:
    """Two IDX image sets (e.g. MNIST digits as bulk, notMNIST letters as rare) as one ImageSet.

    Intensities are scaled to 0..255 -> 0..~5.5 by :func:`log1p_charge` downstream like charges;
    the table holds ``label``, ``class_id`` (the IDX label) and :func:`image_moments` features.
    ``n_per_class`` draws that many images of each set (seeded) to keep runs small.
    """
    from rareflow.io.idx import load_idx_pair
    from rareflow.seeding import rng

    parts, labels, class_ids = [], [], []
    gen = rng(seed)
    for folder, label in ((bulk_folder, bulk_label), (rare_folder, rare_label)):
        imgs, cls = load_idx_pair(folder)
        if n_per_class is not None and n_per_class < len(imgs):
            pick = np.sort(gen.choice(len(imgs), size=int(n_per_class), replace=False))
            imgs, cls = imgs[pick], cls[pick]
        parts.append(imgs)
        labels += [label] * len(imgs)
        class_ids.append(cls.astype(np.int64))
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise RareflowError(f"{bulk_folder} and {rare_folder} hold images of different sizes {sorted(shapes)}")
    h, w = parts[0].shape[1:]
    pixels = np.concatenate(parts).reshape(-1, h * w).astype(np.float32)
    camera = square_camera(h, w, name=f"{h}x{w} image")
    table = pd.concat([pd.DataFrame({"label": labels, "class_id": np.concatenate(class_ids)}), image_moments(pixels, camera)], axis=1)
    table.insert(0, "event_id", np.arange(len(table), dtype=np.int64))
    return ImageSet(pixels, camera, GridMapping.square(h, w), table, f"{Path(bulk_folder).name} vs {Path(rare_folder).name}")


def check_images(X: Any, shape: tuple[int, int] | None = None, method: str = "image method") -> np.ndarray:
    """Validated float32 grid images (n, H, W) from (n, H, W) or (n, 1, H, W) input; ``shape``: the
    (H, W) a fitted model expects (None while fitting). RareflowError on tables, NaN or a size mismatch."""
    if isinstance(X, pd.DataFrame):
        raise RareflowError(
            f"method '{method}' works on camera images, not a feature table; "
            "use data.images: true (simulator), an image source, or a table method"
        )
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3:
        raise RareflowError(f"method '{method}' expects images of shape (n, H, W), got {arr.shape}")
    if shape is None and len(arr) == 0:
        raise RareflowError(f"method '{method}' got no training images")
    if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
        raise RareflowError(f"method '{method}' was trained on {tuple(shape)} images, got {tuple(arr.shape[1:])}; use the same camera")
    step = 8192  # in chunks: a memory-mapped image file is checked without loading it whole
    if not all(np.isfinite(arr[a : a + step]).all() for a in range(0, len(arr), step)):
        raise RareflowError(f"method '{method}': images contain NaN/inf; normalise them with log1p_charge")
    return arr


def iterate_batches(grids: np.ndarray, batch_size: int = 256) -> Iterator[Any]:
    """(n, H, W) or (n, C, H, W) arrays -> float32 torch tensors (n_b, C, H, W), in order."""
    import torch

    if batch_size < 1:
        raise RareflowError(f"batch_size must be >= 1 (got {batch_size})")
    for start in range(0, len(grids), batch_size):
        chunk = np.ascontiguousarray(grids[start : start + batch_size], dtype=np.float32)
        t = torch.from_numpy(chunk)
        yield t[:, None] if t.ndim == 3 else t


@dataclass
class ImagesWithFeatures:
    """Grid images (n, H, W) and a feature table (n rows) of the same events; ``x[idx]`` takes rows of both."""

    images: np.ndarray
    features: Any

    def __post_init__(self) -> None:
        if len(self.images) != len(self.features):
            raise RareflowError(f"{len(self.images)} images but {len(self.features)} feature rows; give one row per image")

    def __len__(self) -> int:
        return int(len(self.images))

    def __getitem__(self, idx: Any) -> "ImagesWithFeatures":
        feats = self.features.iloc[idx] if isinstance(self.features, pd.DataFrame) else np.asarray(self.features)[idx]
        return ImagesWithFeatures(self.images[idx], feats)


_HEX_GENERATORS = (np.array([[0, -1], [1, 1]]), np.array([[1, 1], [0, -1]]))  # 60 deg rotation, a reflection
_SQUARE_GENERATORS = (np.array([[0, -1], [1, 0]]), np.array([[1, 0], [0, -1]]))  # 90 deg rotation, a reflection


def lattice_group(lattice: str) -> list[np.ndarray]:
    """The point group of the lattice as integer matrices on axial coordinates (q, r), identity first."""
    gens = _HEX_GENERATORS if lattice == "hexagonal" else _SQUARE_GENERATORS
    group = [np.eye(2, dtype=np.int64)]
    frontier = list(group)
    while frontier:
        new = []
        for g in frontier:
            for h in gens:
                m = h @ g
                if not any(np.array_equal(m, e) for e in group):
                    group.append(m)
                    new.append(m)
        frontier = new
    return group


def grid_symmetries(cells: np.ndarray, lattice: str = "hexagonal") -> np.ndarray:
    """Gather indices (k, H*W) of the lattice symmetries that map the camera cells ``cells`` (H, W,
    bool) onto themselves, identity first: ``image.reshape(n, -1)[:, idx[j]]`` is the image turned
    by symmetry ``j``. Cells off the camera map to themselves. Grid cell (h, w) is the lattice point
    q = w, r = H - 1 - h (:meth:`GridMapping.from_camera`); symmetries act about the centre of the
    camera cells' bounding box in (q, r)."""
    if lattice not in ("hexagonal", "square"):
        raise RareflowError(f"lattice must be 'hexagonal' or 'square', got {lattice!r}")
    cells = np.asarray(cells, dtype=bool)
    H, W = cells.shape
    h, w = np.nonzero(cells)
    if len(h) == 0:
        return np.arange(H * W)[None]
    q, r = w, H - 1 - h
    sq, sr = q.min() + q.max(), r.min() + r.max()  # twice the centre
    d = np.stack([2 * q - sq, 2 * r - sr])  # doubled coordinates about the centre: integers
    flat = h * W + w
    out = []
    for m in lattice_group(lattice):
        dq, dr = m @ d
        if ((dq + sq) % 2).any() or ((dr + sr) % 2).any():
            continue
        q2, r2 = (dq + sq) // 2, (dr + sr) // 2
        h2, w2 = H - 1 - r2, q2
        inside = (h2 >= 0) & (h2 < H) & (w2 >= 0) & (w2 < W)
        if not inside.all() or not cells[h2, w2].all():
            continue
        src = np.arange(H * W)
        src[h2 * W + w2] = flat  # out[dest(c)] = in[c]
        out.append(src)
    return np.stack(out)
