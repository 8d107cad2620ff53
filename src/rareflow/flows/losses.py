"""Likelihood losses of the density models (for :func:`rareflow.training.train`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from rareflow.training.batch import Batch, weighted_mean


def nll_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Weighted mean negative log-likelihood :math:`-\\frac{1}{\\sum w}\\sum_i w_i \\log p(x_i|c_i)`."""
    return weighted_mean(-model.log_prob(batch.x, batch.context), batch.weight)


def _stacked_nll(model: nn.Module, params: Mapping[str, Tensor], batch: Batch) -> Tensor:
    """``(M,)``: :func:`nll_loss` of ``M`` stacked members, each on its own rows (``batch`` fields ``(M, B, ...)``)."""
    return weighted_mean(-model.stacked_log_prob(params, batch.x, batch.context), batch.weight, dim=-1)


nll_loss.stacked = _stacked_nll  # type: ignore[attr-defined]  # the form train_ensemble runs without vmap


def trimmed_nll_loss(trim: float = 0.01) -> Callable[[nn.Module, Batch], Tensor]:
    """Validation criterion: weighted mean NLL of the rows below the ``1 - trim`` NLL quantile.

    A few validation events outside the training range can get NLLs of 1e3..1e5 (the flow's
    extrapolated tails), which makes the plain mean jump by orders of magnitude between epochs
    and stops training at random. Trimming the top ``trim`` fraction keeps early stopping on the
    bulk of the validation density.
    """

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        per_row = -model.log_prob(batch.x, batch.context)
        if bool(torch.isnan(per_row).any()):
            return per_row.mean()  # NaN must reach the divergence guard
        if trim > 0 and len(per_row) > 1:
            keep = per_row <= torch.quantile(per_row.detach().float(), 1.0 - trim).to(per_row.dtype)
            w = keep.to(per_row.dtype) if batch.weight is None else batch.weight * keep
            return weighted_mean(per_row.masked_fill(~keep, 0.0), w)
        return weighted_mean(per_row, batch.weight)

    return loss_fn
