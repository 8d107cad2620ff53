"""Grid images on disk for training in bounded memory: one ``.npy`` of float32 ``(n, H, W)`` grids.

The image detectors take grid images (camera pixels mapped to a square grid, log1p-normalised:
:mod:`rareflow.iact.images`). Held in memory, 10^5 images of a 29 x 29 grid take 336 MB and
10^6 take 3.4 GB; written once to an ``.npy`` file and opened with :func:`open_grids`
(``np.load(mmap_mode="r")``: no pickle, nothing executed), they are read a batch at a time by the
training loop (:class:`rareflow.training.StreamedRows`, chosen automatically for memory-mapped
input) and by batched scoring.

* :func:`write_grids` streams chunks of grids into the file (memory: one chunk), atomically;
* :func:`simulate_grids` runs the toy simulator chunk by chunk and writes the grids of the valid
  gamma / proton events, returning their Hillas table (``image_index`` = row in the file);
* :func:`open_grids` opens a grid file read-only, with one-line errors.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from rareflow.atomic import atomic_path
from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.images import GridMapping, log1p_charge
from rareflow.iact.shower_model import SimulationConfig
from rareflow.iact.simulate import iter_image_chunks
from rareflow.iact.valid_events import parametrise_chunk

__all__ = ["open_grids", "simulate_grids", "write_grids"]


def write_grids(path: str | os.PathLike[str], chunks: Iterable[np.ndarray], shape: tuple[int, int]) -> int:
    """Write chunks of ``(m, H, W)`` grids as one float32 ``.npy`` of all rows; returns the row count.

    Memory: one chunk. The rows go to a raw temporary file first (their number is known only at
    the end), then behind an ``.npy`` header into a temporary file beside the target, which is
    renamed onto it on success.
    """
    h, w = (int(s) for s in shape)
    target = Path(path)
    with atomic_path(target) as tmp:
        raw = tmp.with_name(tmp.name + ".raw")  # hidden beside the target; removed whatever happens
        try:
            n = _write_raw(raw, chunks, target, (h, w))
            with open(tmp, "wb") as out, open(raw, "rb") as src:  # plain file I/O: nothing mapped, 16 MiB at a time
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": (n, h, w)}
                np.lib.format.write_array_header_1_0(out, header)
                shutil.copyfileobj(src, out, 16 * 2**20)
        finally:
            raw.unlink(missing_ok=True)
    return n


def _write_raw(raw: Path, chunks: Iterable[np.ndarray], target: Path, shape: tuple[int, int]) -> int:
    n = 0
    with open(raw, "wb") as f:
        for chunk in chunks:
            arr = np.ascontiguousarray(chunk, dtype=np.float32)
            if arr.ndim != 3 or arr.shape[1:] != shape:
                raise RareflowError(f"{target}: a chunk of grids has shape {arr.shape}; expected (m, {shape[0]}, {shape[1]})")
            arr.tofile(f)
            n += len(arr)
    return n


def open_grids(path: str | os.PathLike[str]) -> np.ndarray:
    """A grid file of :func:`write_grids` / :func:`simulate_grids`, memory-mapped read-only."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise RareflowError(f"{p}: no such grid file; write one with rareflow.iact.grid_files.simulate_grids")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # ValueError (not .npy, object arrays), OSError
        raise RareflowError(f"{p}: not a grid file ({type(exc).__name__}: {exc}); write it with write_grids") from exc
    if arr.dtype != np.float32 or arr.ndim != 3:
        raise RareflowError(f"{p}: a grid file holds float32 images (n, H, W); this one holds {arr.dtype} {arr.shape}")
    return arr


def simulate_grids(
    path: str | os.PathLike[str],
    n_events: int,
    rare_fraction: float = 0.5,
    seed: int = 0,
    *,
    camera: CameraGeometry | None = None,
    config: SimulationConfig | None = None,
    source: str = "point",
) -> pd.DataFrame:
    """Throw ``n_events`` gamma / proton showers chunk by chunk; write the log1p grid images of the
    valid ones (>= 3 pixels after cleaning) to ``path``; return their table (Hillas columns,
    truth, ``label``, ``event_id``, ``image_index`` = row in the grid file).

    Memory is one simulation chunk, whatever ``n_events``. The events are those of
    :func:`rareflow.iact.simulate.simulate_events` with ``keep="all"``, ``muon_fraction=0`` and the
    same seed, with the invalid events left out.
    """
    cfg = config or SimulationConfig()
    cam, chunks = iter_image_chunks(n_events, rare_fraction, seed, muon_fraction=0.0, camera=camera,
                                    source=source, config=cfg)  # fmt: skip
    mapping = GridMapping.from_camera(cam)
    parts: list[pd.DataFrame] = []

    def grids() -> Iterable[np.ndarray]:
        for _, images, truth in chunks:
            table = parametrise_chunk(images, truth, cam, cfg)
            keep = table["is_valid"].to_numpy(dtype=bool)
            parts.append(table[keep])
            yield mapping.to_grid(log1p_charge(images[keep]))

    n = write_grids(path, grids(), mapping.shape)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    table["image_index"] = np.arange(n, dtype=np.int64)
    first = ["event_id", "label"]
    return table[first + [c for c in table.columns if c not in first]]
