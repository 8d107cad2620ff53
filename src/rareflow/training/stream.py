"""Training rows read from an array on disk (``np.memmap``) a batch at a time, in bounded memory.

:func:`rareflow.training.train` takes either a :class:`~rareflow.training.batch.Batch` (every row
in memory) or a :class:`StreamedRows`: the same ``index`` / ``order`` / ``to`` /
``total_weight`` interface, but the features stay in the file and each step reads only its
batch. Labels and weights (one number per row) stay in memory.

Order: a :class:`Batch` is shuffled over all rows each epoch. Streamed rows are shuffled in
*blocks* (the block-shuffle of sharded data loaders, e.g. WebDataset and tf.data's shuffle buffer):
the blocks of ``block_rows`` consecutive rows are visited in a random order and the rows within a
block in a random order, so a batch reads from one or two nearby regions of the file and the
page cache holds a block, not the file. With ``block_rows >= len(rows)`` the order is exactly the
in-memory one (the same ``randperm`` draw), which the tests use to check that both paths train the
same model.
"""

from __future__ import annotations

import copy
import mmap

import numpy as np
import torch
from torch import Tensor

from rareflow.training.batch import Batch, make_batch, to_tensor

#: rows per shuffle block of a streamed epoch (8192 grid images of 29 x 29 float32 = 28 MB)
BLOCK_ROWS = 8192


def is_disk_backed(a: object) -> bool:
    """Whether ``a`` is (a view of) a memory-mapped file, e.g. ``np.load(path, mmap_mode="r")``."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


class StreamedRows:
    """Rows ``idx`` of the on-disk array ``X`` (any trailing shape), read a batch at a time.

    ``label`` / ``weight`` are full-length arrays (indexed by ``idx`` here). ``index(pos)`` reads
    rows ``idx[pos]`` of the file as a float32 :class:`Batch` on ``device``.
    """

    def __init__(
        self,
        X: np.ndarray,
        idx: np.ndarray,
        label: np.ndarray | None = None,
        weight: np.ndarray | None = None,
        *,
        label_dtype: torch.dtype = torch.float32,
        block_rows: int = BLOCK_ROWS,
        device: torch.device | str = "cpu",
    ) -> None:
        self.X, self.idx = X, np.asarray(idx, dtype=np.int64)
        self.label = None if label is None else to_tensor(np.asarray(label)[self.idx], label_dtype)
        self.weight = None if weight is None else to_tensor(np.asarray(weight)[self.idx])
        self.block_rows, self.device = max(int(block_rows), 1), torch.device(device)

    def __len__(self) -> int:
        return len(self.idx)

    def index(self, pos: Tensor | slice) -> Batch:
        """The rows at positions ``pos`` (a slice or an index tensor), read from the file."""
        p = pos if isinstance(pos, slice) else pos.cpu().numpy()
        x = torch.from_numpy(np.ascontiguousarray(self.X[self.idx[p]], dtype=np.float32))
        sel = pos if isinstance(pos, slice) else pos.cpu()
        return Batch(
            x=x.to(self.device),
            label=None if self.label is None else self.label[sel].to(self.device),
            weight=None if self.weight is None else self.weight[sel].to(self.device),
        )

    def load(self) -> Batch:
        """Every row read into memory at once (for a method step that needs the whole set)."""
        return self.index(slice(None))

    def to(self, device: torch.device | str) -> "StreamedRows":
        """The same rows, batches delivered on ``device``."""
        out = copy.copy(self)
        out.device = torch.device(device)
        return out

    def total_weight(self) -> float:
        return float(self.weight.sum()) if self.weight is not None else float(len(self))

    def order(self, gen: torch.Generator) -> Tensor:
        """One epoch's visiting order: blocks in random order, rows in random order within a block."""
        n, b = len(self), self.block_rows
        if n <= b:
            return torch.randperm(n, generator=gen)
        blocks = torch.randperm(-(-n // b), generator=gen).tolist()
        return torch.cat([k * b + torch.randperm(min(b, n - k * b), generator=gen) for k in blocks])


def training_rows(
    X: np.ndarray,
    idx: np.ndarray,
    label: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    label_dtype: torch.dtype = torch.float32,
) -> Batch | StreamedRows:
    """Rows ``idx`` of ``X`` for the training loop: streamed from the file when ``X`` is
    memory-mapped (:func:`is_disk_backed`), else a :class:`Batch` in memory (:func:`make_batch`)."""
    if is_disk_backed(X):
        return StreamedRows(X, idx, label, weight, label_dtype=label_dtype)
    return make_batch(X, idx, label, weight, label_dtype)
