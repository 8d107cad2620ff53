"""Soft clip: a smooth, invertible compression of the tails of standardised columns.

For a standardised value :math:`u` and a bound :math:`c > 0` (per column),

.. math:: \\mathrm{sc}_c(u) = \\begin{cases} u & |u| \\le c \\\\
          \\operatorname{sign}(u)\\,\\bigl(c + \\operatorname{asinh}(|u| - c)\\bigr) & |u| > c \\end{cases}

It is the identity inside :math:`[-c, c]`, strictly increasing, and twice continuously
differentiable at :math:`|u| = c` (:math:`\\operatorname{asinh}` has slope 1 and curvature 0 at 0);
beyond the bound it grows like :math:`\\log 2|u|`, so a value :math:`10^{12}` robust standard
deviations out becomes :math:`c + 28`. Its log-derivative, added to the log-Jacobian of the
preprocessing, is

.. math:: \\log \\mathrm{sc}_c'(u) = -\\tfrac12 \\log\\bigl(1 + (|u| - c)_+^2\\bigr),

and its inverse is :math:`\\operatorname{sign}(y)\\,(c + \\sinh(|y| - c))` for :math:`|y| > c`.
A column with a Cauchy tail :math:`p(u) \\propto u^{-2}` gets an exponential tail
:math:`\\propto e^{-y}`, which a flow with a Gaussian base learns without exploding gradients.
A bound of ``inf`` leaves the column unchanged (models saved before the soft clip existed).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _beyond(u: Tensor, bound: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(mask beyond the bound, finite bound, excess |u| - c (0 inside))``."""
    finite = torch.isfinite(bound)
    b = torch.where(finite, bound, torch.zeros_like(bound))
    mask = finite & (u.abs() > b)
    excess = torch.where(mask, u.abs() - b, torch.zeros_like(u))
    return mask, b, excess


def soft_clip(u: Tensor, bound: Tensor) -> tuple[Tensor, Tensor]:
    """``(sc_c(u), log sc_c'(u) summed over the last axis)`` for rows ``u`` (n, d), bounds (d,)."""
    bound = bound.to(u.dtype)
    mask, b, excess = _beyond(u, bound)
    y = torch.where(mask, torch.sign(u) * (b + torch.asinh(excess)), u)
    ones = torch.ones_like(excess)
    ladj = -torch.log(torch.hypot(ones, excess)).sum(-1)  # hypot: no overflow of excess**2 in float32
    return y, ladj


def soft_clip_inverse(y: Tensor, bound: Tensor) -> Tensor:
    """The exact inverse of :func:`soft_clip`: ``sign(y) (c + sinh(|y| - c))`` beyond the bound."""
    bound = bound.to(y.dtype)
    mask, b, excess = _beyond(y, bound)
    return torch.where(mask, torch.sign(y) * (b + torch.sinh(excess)), y)
