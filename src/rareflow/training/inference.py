"""Batched inference: the one loop that turns numpy rows into model outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from rareflow.training.device import torch_threads


def predict_batched(
    fn: Callable[[Tensor], Tensor],
    X: np.ndarray,
    batch_size: int,
    device: torch.device | str = "cpu",
    *,
    dtype: torch.dtype = torch.float32,
    out_dtype: type = np.float64,
    n_threads: int | None = None,
) -> np.ndarray:
    """``fn`` applied to ``X`` in chunks of ``batch_size`` rows, concatenated as numpy.

    Each chunk is moved to ``device`` as ``dtype``; ``fn`` runs under :func:`torch.inference_mode`
    (and :func:`torch_threads`), and its output (first dimension = rows) is copied back to the
    host as ``out_dtype``. Memory beyond input and output is one chunk. The caller puts its model
    in eval mode.
    """
    bs = max(int(batch_size), 1)
    out: np.ndarray | None = None
    with torch_threads(n_threads), torch.inference_mode():
        for start in range(0, len(X), bs):
            chunk = np.ascontiguousarray(X[start : start + bs])
            if not chunk.flags.writeable:  # a read-only memory-mapped file: torch wants its own copy
                chunk = chunk.copy()
            xb = torch.from_numpy(chunk).to(device=device, dtype=dtype)
            res = fn(xb).detach().cpu().numpy()
            if out is None:
                out = np.empty((len(X), *res.shape[1:]), dtype=out_dtype)
            out[start : start + len(res)] = res
    if out is None:  # no rows: the shape of one row is unknown without a call
        with torch_threads(n_threads), torch.inference_mode():
            probe = fn(torch.zeros((1, *X.shape[1:]), dtype=dtype, device=device)).cpu().numpy()
        out = np.empty((0, *probe.shape[1:]), dtype=out_dtype)
    return out
