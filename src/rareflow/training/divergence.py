"""The divergence policy, in one place.

When the loss, a gradient norm or the validation loss becomes NaN/inf, the loop restores the best
weights so far and raises :class:`TrainingDiverged` (a :class:`RareflowError`) carrying the
history. :func:`apply_policy` is what every torch detector does with it: ``on_divergence="raise"``
re-raises, ``"keep"`` warns and goes on with the restored weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from rareflow.errors import RareflowError

POLICIES = ("raise", "keep")


class TrainingDiverged(RareflowError):
    """The loss or gradient became NaN/inf; the best weights so far were restored."""

    def __init__(self, message: str, history: dict[str, Any]) -> None:
        super().__init__(message)
        self.history = history


def diverged_message(epoch: int, what: str, value: float, best_epoch: int) -> str:
    """The one-line message of a divergence (which quantity, which epoch, which weights were kept)."""
    kept = f"best weights from epoch {best_epoch} kept" if best_epoch else "initial weights kept"
    return (
        f"training diverged at epoch {epoch}: {what} is {value}; {kept} "
        "(lower lr, set clip_grad, or check the inputs for extreme values)"
    )


def apply_policy(run: Callable[[], dict[str, Any]], on_divergence: str) -> dict[str, Any]:
    """``run()`` (a training run returning its history) under the policy ``on_divergence``.

    ``raise``: a divergence propagates. ``keep``: it warns and returns the history of the run,
    whose model holds the best weights reached before the divergence.
    """
    if on_divergence not in POLICIES:
        raise RareflowError(f"on_divergence must be 'raise' or 'keep', got {on_divergence!r}")
    try:
        return run()
    except TrainingDiverged as exc:
        if on_divergence == "raise":
            raise
        warnings.warn(f"{exc}; continuing with those weights (on_divergence='keep')", stacklevel=3)
        return exc.history
