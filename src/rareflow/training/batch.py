"""``Batch``: the rows a torch loss sees (features, optional context, label and weight)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor


@dataclass
class Batch:
    """Rows of a training set: features ``x`` and optional ``context``, ``label``, ``weight``."""

    x: Tensor
    context: Tensor | None = None
    label: Tensor | None = None
    weight: Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def _map(self, fn: Callable[[Tensor], Tensor]) -> "Batch":
        return Batch(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name)) for f in fields(self)})

    def index(self, idx: Tensor | slice) -> "Batch":
        """The rows ``idx`` of every field."""
        return self._map(lambda t: t[idx])

    def to(self, device: torch.device | str) -> "Batch":
        """Every field on ``device``."""
        return self._map(lambda t: t.to(device))

    def total_weight(self) -> float:
        """Sum of weights (row count without weights)."""
        return float(self.weight.sum()) if self.weight is not None else float(len(self))

    def order(self, gen: torch.Generator) -> Tensor:
        """One epoch's visiting order: a permutation of all rows (drawn on the CPU with ``gen``)."""
        return torch.randperm(len(self), generator=gen).to(self.x.device)


def to_tensor(a: np.ndarray | None, dtype: torch.dtype = torch.float32) -> Tensor | None:
    """numpy -> torch (float32 by default); None stays None."""
    return None if a is None else torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)


def make_batch(
    X: np.ndarray,
    idx: np.ndarray,
    label: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    label_dtype: torch.dtype = torch.float32,
) -> Batch:
    """Rows ``idx`` of ``X`` (any trailing shape) as a float32 :class:`Batch`; labels and weights optional."""
    return Batch(
        x=to_tensor(X[idx]),  # type: ignore[arg-type]
        label=None if label is None else to_tensor(label[idx], label_dtype),
        weight=None if weight is None else to_tensor(weight[idx]),
    )


def weighted_mean(values: Tensor, weight: Tensor | None, dim: int | None = None) -> Tensor:
    """:math:`\\sum_i w_i v_i / \\sum_i w_i` (plain mean without weights), over all entries or along ``dim``."""
    if weight is None:
        return values.mean(dim=dim)
    return (values * weight).sum(dim=dim) / weight.sum(dim=dim).clamp_min(torch.finfo(values.dtype).tiny)


def class_balanced_weights(y: np.ndarray, w: np.ndarray | None, balance: bool = True) -> np.ndarray:
    """Event weights (ones when ``w`` is None); with ``balance`` each class (0 / 1) gets half of
    the total, rescaled so the weights sum to the number of rows (the loss keeps its scale)."""
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    if balance:
        for cls in (0, 1):
            w = np.where(y == cls, w / max(w[y == cls].sum(), 1e-300), w)
        w = w * len(y) / w.sum()
    return w
