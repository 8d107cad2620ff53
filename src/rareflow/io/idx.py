"""Reader for IDX files (MNIST format), plain or gzip-compressed, in pure numpy.

Layout (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian magic number
``0x0000 TT DD`` (``TT = 0x08`` for unsigned bytes, ``DD`` = number of dimensions), then ``DD``
big-endian uint32 sizes, then the values. Images (``DD = 3``) therefore have a 16-byte header,
labels (``DD = 1``) an 8-byte header. Used for the MNIST test split and notMNIST letters in
``../shared/data/images`` (digits vs letters experiment of Bungert 2021).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from rareflow.errors import RareflowError

_UBYTE = 0x08


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The uint8 array stored in an IDX file (``.gz`` decompressed); RareflowError if missing/corrupt."""
    path = Path(path)
    if not path.is_file():
        raise RareflowError(f"{path}: IDX file not found; the image data live in ../shared/data/images")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise RareflowError(f"{path}: cannot decompress ({type(exc).__name__}); the file is damaged") from None
    return _parse(raw, path)


def _parse(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise RareflowError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != _UBYTE:
        raise RareflowError(f"{path}: IDX value type 0x{raw[2]:02x} not supported; only unsigned bytes (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise RareflowError(f"{path}: truncated IDX header")
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise RareflowError(
            f"{path}: IDX header says {size} values of shape {shape} but the file holds {len(raw) - header}; damaged file"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def load_idx_pair(folder: str | os.PathLike[str], prefix: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """``(images (n, 28, 28) uint8, labels (n,) uint8)`` from ``prefix-images-idx3-ubyte[.gz]`` and labels."""
    folder = Path(folder)
    images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise RareflowError(
            f"{folder}: images {images.shape} and labels {labels.shape} do not match; expected (n, h, w) and (n,)"
        )
    return images, labels


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise RareflowError(f"{folder}: no {stem}[.gz]; the image data live in ../shared/data/images")
