"""Seeding in one place: numpy generators, Python's ``random`` and torch."""

from __future__ import annotations

import random
import sys

import numpy as np


def rng(seed: int | None) -> np.random.Generator:
    """A numpy Generator for ``seed`` (PCG64); the only way rareflow makes random numbers."""
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's legacy global state and torch with ``seed``.

    torch is seeded only if it is already imported (importing it costs seconds at start-up);
    every torch detector seeds its own generators from its ``random_state``.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def derive_seed(seed: int, *keys: int | str) -> int:
    """A reproducible child seed from ``seed`` and ``keys`` (e.g. a method name and a fold)."""
    entropy = [seed]
    for k in keys:
        if isinstance(k, int):
            entropy.append(k)
        else:  # every 8 bytes of the key count (keys sharing a long prefix used to collide)
            raw = k.encode()
            entropy += [int.from_bytes(raw[i : i + 8], "little") for i in range(0, max(len(raw), 1), 8)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] % (2**31 - 1))
