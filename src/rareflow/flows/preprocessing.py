"""Preprocessing stored inside every torch model: dequantise -> log -> robust standardisation -> soft clip.

The map :math:`u = T(x)` is applied column by column, in this order:

1. **Dequantisation** of integer-valued columns (``n_pixels``, ``n_islands``): while training,
   :math:`v = x + \\epsilon` with :math:`\\epsilon \\sim U[0, 1)` (uniform dequantisation,
   Uria et al. 2013; Theis et al. 2016, "A note on the evaluation of generative models"), so a
   continuous density is fitted to the discrete values; in evaluation mode the cell centre
   :math:`v = x + 1/2` is used, which makes scoring deterministic. A density :math:`p(v)` then
   approximates the probability mass :math:`P(X = x) \\approx p(x + 1/2)` (cell width 1).
   **Atoms** of continuous columns (``leakage_*`` is exactly 0 for most images, ``hillas_width``
   for a few; a column whose most frequent value holds at least ``atom_fraction`` of the rows
   and that is not integer-valued) are dequantised the same way into a band of width
   :math:`\\delta` (10% of the column's standard deviation) beside the atom, on the side away from
   the other values: :math:`v = a - \\delta\\,\\epsilon` (training) or :math:`a - \\delta/2`
   (scoring). A point mass otherwise gives a continuous density an unbounded spike; with the
   band, :math:`p(v) \\approx P(X = a)/\\delta`, so a likelihood *ratio* of two class flows
   sharing the preprocessing tends to the ratio of the atom probabilities there.
2. **Log** of positive heavy-tailed columns (``hillas_intensity``, sizes):
   :math:`w = \\log \\max(v, v_{floor})`, with :math:`v_{floor}` a small positive floor below the
   training minimum so that scoring never produces ``-inf``. Chosen automatically when a column
   is strictly positive on the training data and its skewness exceeds ``skew_threshold``, or by
   name.
3. **Robust standardisation**: :math:`u = (w - \\mathrm{median}) / s` with
   :math:`s = \\mathrm{IQR} / 1.349` (equal to :math:`\\sigma` for a Gaussian), falling back to
   the central 90% and 98% ranges (scaled the same way), the standard deviation, then 1, for
   columns whose IQR vanishes.
4. **Soft clip of the tails** (:mod:`rareflow.flows.tails`): :math:`y = \\mathrm{sc}_c(u)` is
   the identity for :math:`|u| \\le c` and :math:`\\operatorname{sign}(u)(c +
   \\operatorname{asinh}(|u| - c))` beyond, with :math:`c` = ``tail_bound`` (default 10 robust
   standard deviations, about 7 IQR from the median). Well-behaved columns are untouched (a
   Gaussian column has :math:`10^{-23}` of its mass beyond 10 sigma); heavy-tailed ones (Cauchy,
   values :math:`10^4` IQR out, gross outliers) are brought within :math:`c + \\log 2|u|`, so the
   flow never sees inputs that overflow its couplings. Models saved before this step store no
   bound and keep the identity.

The log-Jacobian of the map is

.. math:: \\log |\\det J_T(x)| = \\sum_{j \\in \\text{log}} -\\log v_j \\; - \\sum_j \\log s_j
          \\; - \\sum_j \\tfrac12 \\log\\bigl(1 + (|u_j| - c)_+^2\\bigr),

(dequantisation is a shift and adds nothing), so a flow's :math:`\\log p_U(T(x))` plus this term
is the density in the **original** feature space. :meth:`Preprocessor.inverse` is the exact
inverse of :meth:`Preprocessor.forward` in evaluation mode (the cell centre is subtracted
again; round the result to get the integer values back). All fitted values are registered torch
buffers, so they travel with ``state_dict`` and are saved as plain arrays.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.flows.tails import soft_clip, soft_clip_inverse

IQR_TO_SIGMA = 1.3489795003921634  # IQR of N(0, 1)
DEFAULT_SKEW_THRESHOLD = 1.0
DEFAULT_ATOM_FRACTION = 0.02
DEFAULT_TAIL_BOUND = 10.0  # robust standard deviations; see rareflow.flows.tails


class Preprocessor(nn.Module):
    """Column-wise ``dequantise -> log -> robust standardise -> soft clip`` with its exact log-Jacobian.

    Build a fitted one with :meth:`fit`; an unfitted ``Preprocessor(n_features)`` is the
    identity (used to rebuild a model before ``load_state_dict``).
    """

    # files saved before atoms / the soft clip lack these buffers
    optional_state = ("atom_mask", "atom_value", "atom_width", "tail_bound")

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.register_buffer("log_mask", torch.zeros(n_features, dtype=torch.bool))
        self.register_buffer("dequant_mask", torch.zeros(n_features, dtype=torch.bool))
        self.register_buffer("atom_mask", torch.zeros(n_features, dtype=torch.bool))
        self.register_buffer("atom_value", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("atom_width", torch.zeros(n_features, dtype=torch.float64))  # signed: band side
        self.register_buffer("log_floor", torch.full((n_features,), 1e-30, dtype=torch.float64))
        self.register_buffer("center", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_features, dtype=torch.float64))
        self.register_buffer("tail_bound", torch.full((n_features,), math.inf, dtype=torch.float64))  # inf: no clip

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        feature_names: Sequence[str] | None = None,
        log_features: Sequence[str | int] | bool | None = None,
        dequantize: Sequence[str | int] | bool | None = None,
        standardize: bool = True,
        skew_threshold: float = DEFAULT_SKEW_THRESHOLD,
        atom_fraction: float = DEFAULT_ATOM_FRACTION,
        tail_bound: float | None = DEFAULT_TAIL_BOUND,
    ) -> "Preprocessor":
        """Fit on training rows ``X`` (n, d).

        ``log_features`` / ``dequantize``: ``None`` = automatic (positive and skewed /
        integer-valued columns), ``False`` = none, ``True`` = every eligible column (positive /
        integer-valued), or a list of column names or indices. Named log columns must be positive on the training data.
        Atoms (module doc) are dequantised unless ``dequantize=False``. ``tail_bound``: the soft
        clip's :math:`c` in robust standard deviations (``None``: no clip; needs ``standardize``).
        """
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        names = [str(c) for c in feature_names] if feature_names is not None else [str(j) for j in range(d)]
        pre = cls(d)
        integer = _integer_columns(X)
        deq = _select(dequantize, names, integer, integer, "dequantize")
        atom, value, width = _atoms(X, ~integer, atom_fraction) if dequantize is not False else _no_atoms(d)
        V = np.where(atom & (X == value), value - 0.5 * width, X + 0.5 * deq)
        positive = V.min(axis=0) > 0
        skewed = _skewed_positive_columns(V, skew_threshold) & ~atom
        logm = _select(log_features, names, skewed, positive, "log_features")
        if log_features not in (None, True, False):
            bad = [names[j] for j in np.flatnonzero(logm) if V[:, j].min() <= 0]
            if bad:
                raise RareflowError(
                    f"log_features {bad} have values <= 0 in the training data; log needs positive columns"
                )
        pre.dequant_mask.copy_(torch.as_tensor(deq))
        pre.atom_mask.copy_(torch.as_tensor(atom))
        pre.atom_value.copy_(torch.as_tensor(value))
        pre.atom_width.copy_(torch.as_tensor(width))
        pre.log_mask.copy_(torch.as_tensor(logm))
        floor = np.where(logm, np.maximum(V.min(axis=0), 0.0) * 1e-3, 1e-30)
        pre.log_floor.copy_(torch.as_tensor(np.where(floor > 0, floor, 1e-30)))
        if standardize:
            W = np.where(logm, np.log(np.maximum(V, pre.log_floor.numpy())), V)
            med = np.median(W, axis=0)
            pre.center.copy_(torch.as_tensor(med))
            pre.scale.copy_(torch.as_tensor(_robust_scale(W, med)))
            if tail_bound is not None:
                pre.tail_bound.fill_(_check_bound(tail_bound))
        return pre

    # -- maps ------------------------------------------------------------------------------------
    def _shift(self, x: Tensor) -> Tensor:
        v = x
        if bool(self.dequant_mask.any()):
            mask = self.dequant_mask.to(x.dtype)
            v = x + mask * (torch.rand_like(x) if self.training else 0.5)
        if bool(self.atom_mask.any()):
            value, width = self.atom_value.to(x.dtype), self.atom_width.to(x.dtype)
            at = self.atom_mask & (x == value)
            eps = torch.rand_like(x) if self.training else torch.full_like(x, 0.5)
            v = torch.where(at, value - width * eps, v)
        return v

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(u, log|det J|)`` for data rows ``x`` (n, d); ``u`` has the dtype of ``x``."""
        v = self._shift(x)
        dt = x.dtype
        ladj = x.new_zeros(x.shape[:-1])
        if bool(self.log_mask.any()):
            vc = torch.maximum(v, self.log_floor.to(dt))
            logv = torch.log(vc)
            w = torch.where(self.log_mask, logv, v)
            ladj = ladj - (logv * self.log_mask.to(dt)).sum(-1)
        else:
            w = v
        u = (w - self.center.to(dt)) / self.scale.to(dt)
        ladj = ladj - torch.log(self.scale.to(dt)).sum()
        if bool(torch.isfinite(self.tail_bound).any()):
            u, ladj_clip = soft_clip(u, self.tail_bound)
            ladj = ladj + ladj_clip
        return u, ladj

    def inverse(self, u: Tensor) -> Tensor:
        """Exact inverse of :meth:`forward` in evaluation mode (continuous values)."""
        dt = u.dtype
        if bool(torch.isfinite(self.tail_bound).any()):
            u = soft_clip_inverse(u, self.tail_bound)
        w = u * self.scale.to(dt) + self.center.to(dt)
        v = torch.where(self.log_mask, torch.exp(w), w)
        if bool(self.atom_mask.any()):  # the band beside an atom maps back to the atom
            value, width = self.atom_value.to(dt), self.atom_width.to(dt)
            lo, hi = torch.minimum(value - width, value), torch.maximum(value - width, value)
            v = torch.where(self.atom_mask & (v >= lo) & (v <= hi), value, v)
        return v - 0.5 * self.dequant_mask.to(dt)

    def round_discrete(self, x: Tensor) -> Tensor:
        """Round the dequantised (integer) columns of data-space values ``x``."""
        return torch.where(self.dequant_mask, torch.round(x), x)

    def describe(self, feature_names: Sequence[str] | None = None) -> dict[str, list[str]]:
        """Which columns are logged / dequantised (for reports and docs)."""
        names = list(feature_names) if feature_names is not None else [str(j) for j in range(self.n_features)]
        return {
            "log": [names[j] for j in self.log_mask.nonzero().flatten().tolist()],
            "dequantize": [names[j] for j in self.dequant_mask.nonzero().flatten().tolist()],
            "atoms": [names[j] for j in self.atom_mask.nonzero().flatten().tolist()],
        }

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # models saved before atoms / the soft clip existed: no atoms, no clip (identity)
        for name in ("atom_mask", "atom_value", "atom_width"):
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone().zero_())
        state_dict.setdefault(prefix + "tail_bound", torch.full_like(self.tail_bound, math.inf))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _robust_scale(W: np.ndarray, med: np.ndarray) -> np.ndarray:
    """Per-column spread in Gaussian-sigma units: IQR / 1.349, else the central 90% range / 3.290,
    else the central 98% range / 4.653, else the standard deviation, else 1 (columns whose robust
    ranges vanish: a point mass plus a few far values must not be scaled by those values first)."""
    tiny = 1e-12 * np.maximum(np.abs(med), 1.0)
    scale = np.zeros(W.shape[1])
    for lo, hi, width in ((25, 75, IQR_TO_SIGMA), (5, 95, 3.2897072539029435), (1, 99, 4.652695748081683)):
        q_lo, q_hi = np.percentile(W, [lo, hi], axis=0)
        scale = np.where(scale > tiny, scale, (q_hi - q_lo) / width)
    scale = np.where(scale > tiny, scale, W.std(axis=0))
    return np.where(scale > 0, scale, 1.0)


def _check_bound(bound: float) -> float:
    if not (isinstance(bound, (int, float)) and not isinstance(bound, bool) and math.isfinite(bound) and bound > 0):
        raise RareflowError(f"tail_bound must be a positive number of robust standard deviations (or None), got {bound!r:.40}")
    return float(bound)


def _no_atoms(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(d, dtype=bool), np.zeros(d), np.zeros(d)


def _atoms(X: np.ndarray, eligible: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mask, value, signed width)`` of the columns whose most frequent value holds >= ``fraction``
    of the rows; the band of width ``0.1 * std`` lies on the side with fewer other values
    (``width > 0``: below the atom, :math:`v = a - \\delta\\epsilon`)."""
    n, d = X.shape
    mask, value, width = _no_atoms(d)
    for j in np.flatnonzero(eligible):
        vals, counts = np.unique(X[:, j], return_counts=True)
        k = int(np.argmax(counts))
        if counts[k] < fraction * n or counts[k] == n:
            continue
        a = float(vals[k])
        std = float(X[:, j].std())
        below, above = int(counts[:k].sum()), int(counts[k + 1 :].sum())
        mask[j], value[j] = True, a
        width[j] = (0.1 * std) if below <= above else -(0.1 * std)
    return mask, value, width


def _integer_columns(X: np.ndarray) -> np.ndarray:
    """Columns whose training values are all integers and not constant."""
    is_int = np.all(X == np.round(X), axis=0)
    varies = X.max(axis=0) > X.min(axis=0)
    return is_int & varies


def _skewed_positive_columns(V: np.ndarray, threshold: float) -> np.ndarray:
    """Strictly positive columns with sample skewness above ``threshold``."""
    positive = V.min(axis=0) > 0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant columns: "precision loss" in scipy
        skew = np.nan_to_num(stats.skew(V, axis=0), nan=0.0)
    return positive & (skew > threshold)


def _select(
    spec: Sequence[str | int] | bool | None, names: list[str], auto: np.ndarray, eligible: np.ndarray, what: str
) -> np.ndarray:
    """Boolean column mask: ``None`` = ``auto``, ``True`` = every ``eligible`` column, ``False`` =
    none, or a list of names / indices."""
    d = len(names)
    if isinstance(spec, (str, int, np.integer)) and not isinstance(spec, bool):
        spec = [spec]
    if spec is None:
        return auto.copy()
    if spec is True:
        return eligible.copy()
    if spec is False:
        return np.zeros(d, dtype=bool)
    mask = np.zeros(d, dtype=bool)
    for item in spec:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= int(item) < d:
                raise RareflowError(f"{what}: column index {item} out of range for {d} features")
            mask[int(item)] = True
        elif str(item) in names:
            mask[names.index(str(item))] = True
        else:
            raise RareflowError(f"{what}: unknown feature column {item!r}; known: {', '.join(names)}")
    return mask
