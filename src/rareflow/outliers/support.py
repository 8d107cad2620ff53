"""The physical support of a flow's training data, and generated points kept inside it.

A flow's inverse is defined on all of :math:`\\mathbb R^d`, so a point placed far out in its latent
can map to a place no event reaches: a negative ``fWidth`` or ``fDist``, ``fConc`` above 1,
``fAlpha`` beyond 90 degrees. With a briefly trained MAGIC flow, ~2-3% of the points at
3 sigma had a negative width and ~45% left the training box somewhere (mostly ``fAlpha``).

The support used here is the box of the training rows, :math:`[\\min_i x_{ij}, \\max_i x_{ij}]`
per feature :math:`j`: the ``flow`` and ``outlier-exposure`` detectors store it with the model
(``support_``, a ``(2, d)`` array). Model files saved before it existed fall back to the bounds
the stored preprocessing knows: a log-transformed column is positive (above its log floor).

:func:`fill_inside` draws, drops the points outside the support and draws again (more each time,
from the acceptance rate so far) until ``n`` points are inside: the points keep the radius law
of their method, conditioned on being physical. It returns how many draws it rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rareflow.errors import RareflowError
from rareflow.outliers.latent import Generated

MAX_DRAW_FACTOR = 50  # at most this many times n points drawn in one attempt


@dataclass(frozen=True)
class Support:
    """Per-feature bounds ``low <= x <= high`` and where they come from."""

    low: np.ndarray
    high: np.ndarray
    source: str

    @classmethod
    def of_rows(cls, X: np.ndarray) -> "Support":
        """The box of the rows ``X`` (the training data)."""
        X = np.asarray(X, dtype=float)
        return cls(X.min(axis=0), X.max(axis=0), "training data")

    def inside(self, X: np.ndarray) -> np.ndarray:
        """Rows of ``X`` with every feature inside the bounds (NaN rows are outside)."""
        X = np.asarray(X, dtype=float)
        return ((X >= self.low) & (X <= self.high)).all(axis=1)

    def describe(self) -> dict[str, Any]:
        """JSON-able record for table metadata."""
        return {"source": self.source, "low": self.low.tolist(), "high": self.high.tolist()}


def training_box(X: np.ndarray) -> np.ndarray:
    """``(2, d)``: per-feature minimum and maximum of the training rows (what a detector stores)."""
    X = np.asarray(X, dtype=float)
    return np.vstack([X.min(axis=0), X.max(axis=0)])


def support_of(detector: Any, flow: Any) -> Support:
    """The stored training support of ``detector`` or, for older files, the preprocessing's bounds."""
    stored = getattr(detector, "support_", None)
    if stored is not None:
        arr = np.asarray(stored, dtype=float)
        return Support(arr[0], arr[1], "training data")
    pre = flow.pre
    log = pre.log_mask.detach().cpu().numpy().astype(bool)
    low = np.where(log, pre.log_floor.detach().cpu().double().numpy(), -np.inf)
    return Support(low, np.full(len(low), np.inf), "preprocessing (log columns positive; model saved without support)")


def _take(g: Generated, keep: np.ndarray) -> Generated:
    n = len(g.x)
    per_row = {k: v[keep] for k, v in g.params.items() if isinstance(v, np.ndarray) and len(v) == n}
    return replace(g, x=g.x[keep], z=g.z[keep], radius=g.radius[keep], p=g.p[keep], params={**g.params, **per_row})


def _concat(parts: list[Generated]) -> Generated:
    first = parts[0]
    n = len(first.x)
    per_row = {k: np.concatenate([p.params[k] for p in parts]) for k, v in first.params.items()
               if isinstance(v, np.ndarray) and len(v) == n}  # fmt: skip
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ("x", "z", "radius", "p")}
    return replace(first, **cat, params={**first.params, **per_row})


def fill_inside(draw: Callable[[int, int], Generated], n: int, support: Support | None,
                max_tries: int = 20) -> tuple[Generated, int]:  # fmt: skip
    """``n`` points of ``draw(m, attempt)`` inside ``support`` and the number of draws rejected.

    Attempt 0 draws exactly ``n`` (so nothing changes when every point is inside); later attempts
    draw the missing count divided by the acceptance rate so far. ``support=None``: one draw.
    """
    first = draw(n, 0)
    if support is None:
        return first, 0
    parts, drawn, rejected = [], 0, 0
    g, attempt = first, 0
    while True:
        keep = support.inside(g.x)
        drawn, rejected = drawn + len(keep), rejected + int((~keep).sum())
        parts.append(_take(g, keep))
        need = n - sum(len(p.x) for p in parts)
        if need <= 0:
            return _take(_concat(parts), np.arange(n)), rejected
        attempt += 1
        if attempt >= max_tries:
            raise RareflowError(
                f"only {n - need} of {n} generated points fell inside the training data's support ({support.source}) "
                f"after {drawn} draws; use a smaller --sigma (or --no-support to keep unphysical points)"
            )
        rate = max((drawn - rejected) / drawn, 1.0 / MAX_DRAW_FACTOR)
        g = draw(min(int(np.ceil(1.1 * need / rate)) + 8, MAX_DRAW_FACTOR * n), attempt)
