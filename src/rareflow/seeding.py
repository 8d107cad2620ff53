"""Seeding in one place: numpy generators, Python's ``random`` and torch; the one meaning of a seed.

The rule (``train``, ``compare`` and the Python API all follow it):

1. A user seed ``s`` is an integer ``0 <= s <= MAX_SEED`` (:func:`check_seed`, one-line error).
   ``rareflow train --seed s``, ``rareflow compare --seed s`` (or ``--seed 0,1,2``; YAML
   ``scenario.seeds``) and :func:`rareflow.api.train_model` (``seed=s``) take it.
2. The detector of method ``m`` trained under seed ``s`` gets ``random_state = method_seed(s, m)``
   (``derive_seed(s, m)``), and the process is seeded with the same value
   (:func:`seed_everything`) right before ``fit``. ``compare`` uses the split seed ``s`` for both the
   split and the detector, so the same seed and the same training rows give the same model from
   ``train``, ``compare`` and the API; different seeds give different models. A ``random_state``
   given explicitly as a method parameter wins.
3. Inside a detector every random purpose draws from its own child seed
   ``derive_seed(random_state, "<key>")`` under a fixed, documented key (the torch detectors' keys,
   e.g. the validation split and weight initialisation, are listed in
   :mod:`rareflow.training` / ``TorchDetector``), so adding a purpose never shifts another.
4. ``compare`` with ``source: simulate`` draws the simulated data once, with the first seed.
"""

from __future__ import annotations

import random
import sys

import numpy as np

from rareflow.errors import RareflowError


#: Largest accepted user seed (numpy's legacy global seed and most libraries take 32 bits).
MAX_SEED = 2**32 - 1


def check_seed(value: object, where: str = "--seed") -> int:
    """``value`` as a seed (an integer 0..MAX_SEED), or a one-line :class:`RareflowError`."""
    seed: int | None = None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        seed = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+").isdigit():
        seed = int(value.strip())
    if seed is None or not 0 <= seed <= MAX_SEED:
        text = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        hint = f", e.g. {where} 0" if where.startswith("-") else ""
        raise RareflowError(f"{where} {text}: a seed is an integer from 0 to {MAX_SEED}{hint}")
    return seed


def parse_seeds(values: str | list[str] | list[int], where: str = "--seed") -> list[int]:
    """Seeds from ``"0,1,2"`` or repeated options (``["0", "1,2"]``): non-empty, distinct, each checked."""
    items = [values] if isinstance(values, (str, int)) else list(values)
    seeds: list[int] = []
    for item in items:
        parts = item.split(",") if isinstance(item, str) else [item]
        seeds += [check_seed(p, where) for p in parts if not (isinstance(p, str) and not p.strip())]
    if not seeds:
        raise RareflowError(f"{where}: no seed given; pass e.g. {where} 0 or {where} 0,1,2")
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise RareflowError(f"{where}: seed(s) {dup} given twice; list each seed once")
    return seeds


def method_seed(seed: int, method: str) -> int:
    """``random_state`` of method ``method`` trained under user seed ``seed`` (rule 2 above)."""
    return derive_seed(seed, method)


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
