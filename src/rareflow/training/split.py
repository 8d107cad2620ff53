"""Seeded train / validation splits of the training rows."""

from __future__ import annotations

import numpy as np

from rareflow.errors import RareflowError
from rareflow.seeding import derive_seed, rng


def split_indices(n: int, validation_fraction: float, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random ``(train, validation)`` row indices; no validation rows when too few."""
    if not 0.0 <= validation_fraction < 1.0:
        raise RareflowError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    n_val = int(round(n * validation_fraction))
    if n_val < 1 or n - n_val < 2:
        return np.arange(n), np.arange(0)
    perm = rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def stratified_split(y: np.ndarray, fraction: float, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train, validation)`` indices with every class's share kept in both parts
    (class ``c`` split with ``derive_seed(seed, c)``)."""
    parts = []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        tr, va = split_indices(len(idx), fraction, None if seed is None else derive_seed(seed, int(cls)))
        parts.append((idx[tr], idx[va]))
    return np.sort(np.concatenate([p[0] for p in parts])), np.sort(np.concatenate([p[1] for p in parts]))
