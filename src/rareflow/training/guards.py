"""Bad-batch guards of the training loop: skip a bad batch a bounded number of times, then diverge.

A mini-batch is *bad* when

* its loss is NaN or infinite,
* its gradient norm :math:`\\lVert \\nabla_\\theta L \\rVert_2` (before clipping) is NaN or infinite, or
* its loss *exploded*: :math:`L > L_0 + F \\max(|L_0|, 1)` with :math:`L_0` the loss of the
  first good batch (the initial weights) and :math:`F` = ``EXPLODE_FACTOR`` (:math:`10^4`).
  A learning rate far too large (an autoencoder with ``lr=10`` reaches losses of :math:`10^{17}`)
  drives the weights away while every loss stays finite; this catches it.

A bad batch is skipped: no optimiser step, so the weights and the AdamW moments stay as they were
(one extreme batch cannot poison them). An epoch whose validation loss is NaN/inf or exploded
(same rule) is a divergence at once, so its weights never become the best ones kept. Skipping is what large-model training does with loss
spikes (e.g. Chowdhery et al. 2022, PaLM, sec. 5.1). It is allowed ``MAX_CONSECUTIVE`` (5) times in a row and ``max_skips`` times per run,
:math:`\\max(10, 1\\%` of the planned steps); one more bad batch is a divergence (a loss that stays
NaN is not skipped for ever), handled by the policy of :mod:`rareflow.training.divergence` (one-line error, or the best weights with a warning).
The number of skipped batches is the history's ``skipped_batches``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

EXPLODE_FACTOR = 1e4
MIN_SKIPS = 10
MAX_CONSECUTIVE = 5
SKIP_FRACTION = 0.01


def max_skips(planned_steps: int) -> int:
    """Bad batches a run may skip: ``max(10, 1% of the planned optimiser steps)``."""
    return max(MIN_SKIPS, int(SKIP_FRACTION * planned_steps))


def grad_norm(params: Sequence[torch.nn.Parameter], clip: float | None) -> float:
    """Total gradient 2-norm before clipping; clips to ``clip`` in place when it is set (> 0).

    The norm is summed in float32 as in :func:`torch.nn.utils.clip_grad_norm_` (same numbers);
    when that sum of squares overflows although every gradient entry is finite (entries of
    ~1e19, e.g. a fresh flow on a table with far-out rows), it is recomputed in float64 so the
    batch is clipped to ``clip`` rather than thrown away.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = torch.nn.utils.get_total_norm(grads)
    if torch.isinf(total) and all(bool(torch.isfinite(g).all()) for g in grads):
        total = torch.stack([g.double().square().sum() for g in grads]).sum().sqrt()
    if clip is not None and clip > 0 and bool(torch.isfinite(total)):
        torch.nn.utils.clip_grads_with_norm_(params, clip, total)
    return float(total)


class BatchGuard:
    """Decides whether a batch is bad (module doc) and counts the skipped ones."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.skipped = 0
        self.in_a_row = 0
        self.reference: float | None = None  # loss of the first good batch

    def bad_loss(self, value: float) -> str | None:
        """``"loss"`` / ``"exploded loss"`` when the batch loss ``value`` is bad, else None."""
        if not math.isfinite(value):
            return "loss"
        if self.reference is None:
            self.reference = value
            return None
        return "exploded loss" if self.exploded(value) else None

    def exploded(self, value: float) -> bool:
        """:math:`L > L_0 + F \\max(|L_0|, 1)` (False before the first good batch)."""
        ref = self.reference
        return ref is not None and value > ref + EXPLODE_FACTOR * max(abs(ref), 1.0)

    def bad_metric(self, value: float) -> str | None:
        """The epoch's validation (or training) loss: bad when NaN/inf or exploded. An epoch whose
        weights already exploded must not become the "best" one kept after a divergence."""
        if not math.isfinite(value):
            return "validation loss"
        return "exploded validation loss" if self.exploded(value) else None

    def bad_grad(self, norm: float) -> str | None:
        """``"gradient norm"`` when the gradient norm is NaN or infinite, else None (a good step)."""
        if not math.isfinite(norm):
            return "gradient norm"
        self.in_a_row = 0
        return None

    def skip(self) -> bool:
        """Count one skipped batch; False when that exceeds a limit (the run has diverged)."""
        self.skipped += 1
        self.in_a_row += 1
        return self.skipped <= self.limit and self.in_a_row <= MAX_CONSECUTIVE


class StackedGuard:
    """:class:`BatchGuard` for ``M`` members trained as one stacked network (one flag per member).

    Same rules, as tensors (no synchronisation): member ``k``'s batch is bad when its loss is NaN/inf
    or exploded against its own first good loss, or its gradient norm is NaN/inf. Its step is then
    skipped: its gradient is zeroed and its weights are put back after the optimiser step (AdamW's
    moments of that member still decay by :math:`\\beta_1, \\beta_2` once, the one difference
    from :class:`BatchGuard`). ``over_limit()`` flags the members past ``limit`` skips or
    ``MAX_CONSECUTIVE`` in a row: they have diverged.
    """

    def __init__(self, members: int, limit: int) -> None:
        self.limit = int(limit)
        self.reference = torch.full((members,), math.nan, dtype=torch.float64)
        self.skipped = torch.zeros(members, dtype=torch.long)
        self.in_a_row = torch.zeros(members, dtype=torch.long)

    def to(self, device: torch.device | str) -> StackedGuard:
        self.reference, self.skipped, self.in_a_row = (t.to(device) for t in (self.reference, self.skipped, self.in_a_row))
        return self

    def exploded(self, values: torch.Tensor) -> torch.Tensor:
        """Per member: :math:`L > L_0 + F \\max(|L_0|, 1)` (False before its first good batch)."""
        ref = self.reference
        return values.double() > ref + EXPLODE_FACTOR * ref.abs().clamp(min=1.0)  # NaN ref -> False

    def bad(self, losses: torch.Tensor, norms: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``(M,)`` bad-batch flags from the members' losses and gradient norms (``present``: the
        members that trained this step; the others are never flagged); records the first good
        losses and the skip counts."""
        bad = present & (~torch.isfinite(losses) | self.exploded(losses) | ~torch.isfinite(norms))
        first = present & torch.isfinite(losses) & torch.isnan(self.reference)  # as BatchGuard.bad_loss
        self.reference = torch.where(first, losses.double(), self.reference)
        self.skipped += bad
        self.in_a_row = torch.where(bad, self.in_a_row + 1, torch.where(present, 0, self.in_a_row))
        return bad

    def over_limit(self) -> torch.Tensor:
        return (self.skipped > self.limit) | (self.in_a_row > MAX_CONSECUTIVE)
