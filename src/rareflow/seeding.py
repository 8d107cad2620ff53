"""Seeding in one place: numpy generators, Python's ``random`` and torch."""

from __future__ import annotations

import random

import numpy as np


def rng(seed: int | None) -> np.random.Generator:
    """A numpy Generator for ``seed`` (PCG64); the only way rareflow makes random numbers."""
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's legacy global state and torch (if installed) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # torch is only needed by the torch detectors
        return
    torch.manual_seed(seed)


def derive_seed(seed: int, *keys: int | str) -> int:
    """A reproducible child seed from ``seed`` and ``keys`` (e.g. a method name and a fold)."""
    entropy = [seed] + [k if isinstance(k, int) else int.from_bytes(k.encode(), "little") % (2**63) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] % (2**31 - 1))
