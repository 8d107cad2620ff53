"""Two-class flow losses: the self-supervised loss of Chiu & Lai (2023) and the class-conditional NLL.

**Self-supervised flow** (Chiu & Lai, *Self-Supervised Normalizing Flows for Image Anomaly
Detection and Localization*, CVPR 2023 workshops, eqs. 3-5; the idea of Dohi et al., ICASSP 2021):
one flow maximises the likelihood of the bulk set :math:`B` and minimises that of the rare (or
synthetic) set :math:`R`,

.. math::

    L_{total} = L_B - L_R, \\qquad L_B = \\frac{1}{|B|}\\sum_{x_b \\in B} -\\log p(x_b),

    L_R = \\sum_{x_r \\in R} -\\log p(x_r)\\,
          \\mathbb{I}\\big[\\log p(x_r) > c \\;\\wedge\\; \\log p(x_r) > \\min_{x_b \\in \\text{batch}} \\log p(x_b)\\big].

Without the indicator, :math:`-L_R` is unbounded below (push any rare point to
:math:`\\log p \\to -\\infty`) and training runs away; with it, a rare point stops contributing
once its log-likelihood is below the floor :math:`c` or below every bulk point of the batch, so
:math:`L_{total} > L_B + |R|\\,\\max(c, \\min_b \\log p(x_b))` per batch is bounded below.

**Class-conditional NLL** (the ``flow-classifier``): each row is scored under its own class's
density, :math:`-\\log p(x \\mid y)`, optionally plus :math:`\\lambda` times the cross-entropy of
the likelihood-ratio logit (a hybrid generative/discriminative objective; Nalisnick et al.,
*Hybrid Models with Deep and Invertible Features*, ICML 2019).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.training.batch import Batch, weighted_mean


def rare_indicator(log_p_rare: Tensor, log_p_bulk: Tensor | None, c: float | None) -> Tensor:
    """:math:`\\mathbb{I}[\\log p(x_r) > c \\wedge \\log p(x_r) > \\min_b \\log p(x_b)]` per rare row.

    ``c=None`` drops the fixed floor; an empty or absent bulk set drops the batch-minimum condition.
    The mask carries no gradient.
    """
    lp = log_p_rare.detach()
    mask = torch.ones_like(lp, dtype=torch.bool)
    if c is not None:
        mask &= lp > float(c)
    if log_p_bulk is not None and log_p_bulk.numel() > 0:
        mask &= lp > log_p_bulk.detach().min()
    return mask


def selfsup_terms(
    log_p_bulk: Tensor,
    log_p_rare: Tensor,
    c: float | None,
    bulk_weight: Tensor | None = None,
    rare_weight: Tensor | None = None,
    rare_reduction: str = "sum",
) -> tuple[Tensor, Tensor, Tensor]:
    """``(L_B, L_R, mask)`` of one batch (see the module formula).

    ``rare_reduction="sum"`` is the paper's sum over :math:`R`; ``"mean"`` divides by the number
    of rare rows in the batch (a scale that does not grow with the batch size).
    """
    zero = log_p_rare.sum() * 0.0 if log_p_rare.numel() else log_p_bulk.sum() * 0.0
    l_b = weighted_mean(-log_p_bulk, bulk_weight) if log_p_bulk.numel() else zero
    if log_p_rare.numel() == 0:
        return l_b, zero, torch.zeros(0, dtype=torch.bool, device=log_p_bulk.device)
    mask = rare_indicator(log_p_rare, log_p_bulk, c)
    w = mask.to(log_p_rare.dtype) if rare_weight is None else rare_weight * mask
    l_r = (-log_p_rare * w).sum()
    if rare_reduction == "mean":
        l_r = l_r / max(len(log_p_rare), 1)
    return l_b, l_r, mask


def selfsup_loss(c: float | None, rare_reduction: str = "sum") -> Callable[[nn.Module, Batch], Tensor]:
    """Loss for :func:`rareflow.training.train`: :math:`L_B - L_R` with ``batch.label`` 0 = B, 1 = R."""

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        assert batch.label is not None, "selfsup_loss needs labels (0 = bulk B, 1 = rare R)"
        lp = model.log_prob(batch.x, batch.context)
        rare = batch.label > 0
        w = batch.weight
        l_b, l_r, _ = selfsup_terms(
            lp[~rare], lp[rare], c, None if w is None else w[~rare], None if w is None else w[rare], rare_reduction
        )
        return l_b - l_r

    return loss_fn


def selfsup_validation(trim: float = 0.01, tie_break: float = 1e-3) -> Callable[[nn.Module, Batch], Tensor]:
    """Model-selection criterion of the self-supervised flow (lower = better):

    .. math:: 1 - \\mathrm{AUC}\\big(-\\log p;\\ R \\text{ vs } B\\big) + \\epsilon\\,\\widetilde{L}_B ,

    how well :math:`-\\log p` ranks the validation R rows above the B rows, with the trimmed
    bulk NLL :math:`\\widetilde{L}_B` (weight :math:`\\epsilon` = ``tie_break``) separating
    epochs of equal ranking. :math:`L_B - L_R` itself cannot select epochs: it is lowest early,
    when many R rows still count in :math:`L_R`, and rises as training pushes them below the
    guard; and a criterion led by :math:`L_B` prefers the early epochs too, because pushing R
    down also spreads the B density.
    """
    from sklearn.metrics import roc_auc_score

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        assert batch.label is not None
        lp = model.log_prob(batch.x, batch.context)
        rare = batch.label > 0
        nll_b = -lp[~rare]
        if bool(torch.isnan(lp).any()) or nll_b.numel() == 0:
            return lp.mean() if nll_b.numel() else lp.mean() * float("nan")
        if trim > 0 and len(nll_b) > 1:
            nll_b = nll_b[nll_b <= torch.quantile(nll_b.float(), 1.0 - trim).to(nll_b.dtype)]
        out = tie_break * nll_b.mean()
        if bool(rare.any()):
            score = (-lp).clamp(-1e30, 1e30).double().cpu().numpy()
            out = out + (1.0 - float(roc_auc_score(rare.cpu().numpy(), score)))
        return out

    loss_fn.whole_set = True  # type: ignore[attr-defined]  # an AUC: not a sum over chunks
    return loss_fn


def class_nll_loss(
    discriminative: float = 0.0, log_prior_ratio: float = 0.0, trim: float = 0.0
) -> Callable[[nn.Module, Batch], Tensor]:
    """:math:`\\mathrm{mean}_i -\\log p(x_i \\mid y_i) + \\lambda\\,\\mathrm{BCE}(\\sigma(\\ell_i), y_i)`,
    :math:`\\ell = \\log p(x|1) - \\log p(x|0) + \\log\\frac{\\pi_1}{\\pi_0}`.

    ``model`` must have ``log_prob_pair(x) -> (log p(x|0), log p(x|1))`` (see
    :class:`rareflow.detectors.flow_classifier.ClassFlows`); ``batch.label`` is the class.
    ``trim`` > 0 drops the rows above the ``1 - trim`` NLL quantile (a validation criterion that
    a few far-off events cannot dominate, as :func:`rareflow.flows.losses.trimmed_nll_loss`).
    """

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        assert batch.label is not None, "class_nll_loss needs labels"
        lp0, lp1 = model.log_prob_pair(batch.x)  # type: ignore[operator]
        y = batch.label > 0
        per_row = -torch.where(y, lp1, lp0)
        w = batch.weight
        if trim > 0 and len(per_row) > 1 and not bool(torch.isnan(per_row).any()):
            keep = per_row <= torch.quantile(per_row.detach().float(), 1.0 - trim).to(per_row.dtype)
            w = keep.to(per_row.dtype) if w is None else w * keep
            per_row = per_row.masked_fill(~keep, 0.0)
        nll = weighted_mean(per_row, w)
        if discriminative <= 0:
            return nll
        logit = lp1 - lp0 + log_prior_ratio
        bce = F.binary_cross_entropy_with_logits(logit, y.to(logit.dtype), reduction="none")
        return nll + discriminative * weighted_mean(bce, w)

    return loss_fn


def log_odds(p: float) -> float:
    """:math:`\\log\\frac{p}{1-p}` for a class fraction ``0 < p < 1``."""
    return math.log(p) - math.log1p(-p)
