"""Seeds of a torch detector: one documented key per purpose, and seeded torch RNG blocks.

A detector's ``random_state`` is turned into independent child seeds with
:func:`rareflow.seeding.derive_seed` under these FIXED keys (changing a key changes every model
trained with that purpose, so keys are defined here once):

* ``SPLIT`` (``"split"``) — the validation rows held out of training;
* ``INIT`` (``"init"``) — the initial weights (a detector with several networks appends an index
  or a name: ``derive_seed(random_state, INIT, 2)``);
* ``TRAIN`` (``"train"``) — the mini-batch order and any noise drawn in the loop (dropout,
  dequantisation, synthetic corruptions);
* ``SCORE`` (``"score"``) — noise drawn while scoring (e.g. a VAE's ELBO samples), so that scoring
  is deterministic;
* ``SYNTHETIC`` (``"synthetic"``) — generated training rows (selfsup-flow's synthetic R set, outlier-exposure's
  generated outliers; outlier-exposure also derives ``"flow"`` and ``"clusters"``, see its module).

``random_state=None`` stays None (:func:`child_seed`): torch and numpy then draw fresh entropy, and
two fits differ. The one exception is ``SCORE``, where a None seed uses ``derive_seed(0, SCORE)``
because the same model must give the same score twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from rareflow.seeding import derive_seed

SPLIT = "split"
INIT = "init"
TRAIN = "train"
SCORE = "score"
SYNTHETIC = "synthetic"


def child_seed(random_state: int | None, key: str, *more: int | str) -> int | None:
    """``derive_seed(random_state, key, *more)``; None stays None."""
    return None if random_state is None else derive_seed(int(random_state), key, *more)


def score_seed(random_state: int | None) -> int:
    """The seed of scoring noise: deterministic even for ``random_state=None``."""
    return derive_seed(0 if random_state is None else int(random_state), SCORE)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's global RNG for the block and restore the previous state afterwards (None: untouched)."""
    if seed is None:
        yield
        return
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield
