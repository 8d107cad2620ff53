"""Preprocessing stored inside every torch model: dequantise -> log -> robust standardisation.

The map :math:`u = T(x)` is applied column by column, in this order:

1. **Dequantisation** of integer-valued columns (``n_pixels``, ``n_islands``): while training,
   :math:`v = x + \\epsilon` with :math:`\\epsilon \\sim U[0, 1)` (uniform dequantisation,
   Uria et al. 2013; Theis et al. 2016, "A note on the evaluation of generative models"), so a
   continuous density is fitted to the discrete values; in evaluation mode the cell centre
   :math:`v = x + 1/2` is used, which makes scoring deterministic. A density :math:`p(v)` then
   approximates the probability mass :math:`P(X = x) \\approx p(x + 1/2)` (cell width 1).
2. **Log** of positive heavy-tailed columns (``hillas_intensity``, sizes):
   :math:`w = \\log \\max(v, v_{floor})`, with :math:`v_{floor}` a small positive floor below the
   training minimum so that scoring never produces ``-inf``. Chosen automatically when a column
   is strictly positive on the training data and its skewness exceeds ``skew_threshold``, or by
   name.
3. **Robust standardisation**: :math:`u = (w - \\mathrm{median}) / s` with
   :math:`s = \\mathrm{IQR} / 1.349` (equal to :math:`\\sigma` for a Gaussian), falling back to
   the standard deviation, then 1, for columns whose IQR vanishes.

The log-Jacobian of the map is

.. math:: \\log |\\det J_T(x)| = \\sum_{j \\in \\text{log}} -\\log v_j \\; - \\sum_j \\log s_j ,

(dequantisation is a shift and adds nothing), so a flow's :math:`\\log p_U(T(x))` plus this term
is the density in the **original** feature space. :meth:`Preprocessor.inverse` is the exact
inverse of :meth:`Preprocessor.forward` in evaluation mode (the cell centre is subtracted
again; round the result to get the integer values back). All fitted values are registered torch
buffers, so they travel with ``state_dict`` and are saved as plain arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from rareflow.errors import RareflowError

IQR_TO_SIGMA = 1.3489795003921634  # IQR of N(0, 1)
DEFAULT_SKEW_THRESHOLD = 1.0


class Preprocessor(nn.Module):
    """Column-wise ``dequantise -> log -> robust standardise`` with its exact log-Jacobian.

    Build a fitted one with :meth:`fit`; an unfitted ``Preprocessor(n_features)`` is the
    identity (used to rebuild a model before ``load_state_dict``).
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.register_buffer("log_mask", torch.zeros(n_features, dtype=torch.bool))
        self.register_buffer("dequant_mask", torch.zeros(n_features, dtype=torch.bool))
        self.register_buffer("log_floor", torch.full((n_features,), 1e-30, dtype=torch.float64))
        self.register_buffer("center", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_features, dtype=torch.float64))

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
    ) -> "Preprocessor":
        """Fit on training rows ``X`` (n, d).

        ``log_features`` / ``dequantize``: ``None`` = automatic (positive and skewed /
        integer-valued columns), ``False`` = none, ``True`` = every eligible column (positive /
        integer-valued), or a list of column names or indices. Named log columns must be positive on the training data.
        """
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        names = [str(c) for c in feature_names] if feature_names is not None else [str(j) for j in range(d)]
        pre = cls(d)
        integer = _integer_columns(X)
        deq = _select(dequantize, names, integer, integer, "dequantize")
        V = X + 0.5 * deq
        positive = V.min(axis=0) > 0
        skewed = _skewed_positive_columns(V, skew_threshold)
        logm = _select(log_features, names, skewed, positive, "log_features")
        if log_features not in (None, True, False):
            bad = [names[j] for j in np.flatnonzero(logm) if V[:, j].min() <= 0]
            if bad:
                raise RareflowError(
                    f"log_features {bad} have values <= 0 in the training data; log needs positive columns"
                )
        pre.dequant_mask.copy_(torch.as_tensor(deq))
        pre.log_mask.copy_(torch.as_tensor(logm))
        floor = np.where(logm, np.maximum(V.min(axis=0), 0.0) * 1e-3, 1e-30)
        pre.log_floor.copy_(torch.as_tensor(np.where(floor > 0, floor, 1e-30)))
        if standardize:
            W = np.where(logm, np.log(np.maximum(V, pre.log_floor.numpy())), V)
            med = np.median(W, axis=0)
            q75, q25 = np.percentile(W, [75, 25], axis=0)
            scale = (q75 - q25) / IQR_TO_SIGMA
            std = W.std(axis=0)
            scale = np.where(scale > 1e-12 * np.maximum(np.abs(med), 1.0), scale, std)
            scale = np.where(scale > 0, scale, 1.0)
            pre.center.copy_(torch.as_tensor(med))
            pre.scale.copy_(torch.as_tensor(scale))
        return pre

    # -- maps ------------------------------------------------------------------------------------
    def _shift(self, x: Tensor) -> Tensor:
        if not bool(self.dequant_mask.any()):
            return x
        mask = self.dequant_mask.to(x.dtype)
        if self.training:
            return x + mask * torch.rand_like(x)
        return x + 0.5 * mask

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
        return u, ladj - torch.log(self.scale.to(dt)).sum()

    def inverse(self, u: Tensor) -> Tensor:
        """Exact inverse of :meth:`forward` in evaluation mode (continuous values)."""
        dt = u.dtype
        w = u * self.scale.to(dt) + self.center.to(dt)
        v = torch.where(self.log_mask, torch.exp(w), w)
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
        }


def _integer_columns(X: np.ndarray) -> np.ndarray:
    """Columns whose training values are all integers and not constant."""
    is_int = np.all(X == np.round(X), axis=0)
    varies = X.max(axis=0) > X.min(axis=0)
    return is_int & varies


def _skewed_positive_columns(V: np.ndarray, threshold: float) -> np.ndarray:
    """Strictly positive columns with sample skewness above ``threshold``."""
    positive = V.min(axis=0) > 0
    with np.errstate(all="ignore"):
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
