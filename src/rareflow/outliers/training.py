"""Training with generated outliers: a discriminator and an outlier-exposure classifier (Bungert 2021).

Both are small MLPs on feature vectors (:class:`~rareflow.nets.mlp.MLP`), trained through the one
loop :func:`rareflow.training.fit_model` with their own ``loss_fn`` and a validated
:class:`~rareflow.training.TrainConfig` (its ``device`` included). The ``outlier-exposure``
detector builds the same rows, nets and losses through its ``TorchDetector`` template; the
functions here are the same training for arrays (examples, tests).

**Discriminator** (the seed's eq. 9, a GAN-style discriminator with fixed generator):
inliers :math:`x \\sim p_{in}` (label 0) against generated outliers :math:`\\tilde x \\sim p_{out}`
(label 1), class-balanced binary cross-entropy

.. math:: \\mathcal L = -\\tfrac12 E_{p_{in}} \\log(1 - D(x)) - \\tfrac12 E_{p_{out}} \\log D(\\tilde x),

score = the logit of :math:`D` (higher = more outlying).

**Outlier-exposure classifier** (Hendrycks, Mazeika & Dietterich 2019, "Deep anomaly detection
with outlier exposure"; the seed's eq. 10): a ``K``-class classifier of the inlier classes whose
predictions on outliers are pushed to uniform,

.. math:: \\mathcal L = E_{p_{in}}[-\\log p(y \\mid x)]
          + \\beta\\, E_{p_{out}} \\mathrm{KL}(\\mathcal U \\,\\Vert\\, p(\\cdot \\mid \\tilde x)),
          \\qquad \\mathrm{KL}(\\mathcal U \\Vert p) = -\\log K - \\tfrac1K \\textstyle\\sum_k \\log p_k .

With :math:`\\beta = 0` (or no outliers) it is the plain classifier ("none" in the seed's table).
Scores: ``msp`` = :math:`-\\max_k p(k \\mid x)` (maximum softmax probability, Hendrycks & Gimpel
2017) and ``kl`` = :math:`-\\mathrm{KL}(\\mathcal U \\Vert p(\\cdot\\mid x))`; both higher = rarer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.nets.mlp import MLP
from rareflow.training import (
    INIT, SPLIT, TRAIN, Batch, TrainConfig, child_seed, fit_model, load_module, make_batch, module_arrays,
    predict_batched, seeded, split_indices, train_config, weighted_mean,
)  # fmt: skip

OE_SCORES = ("msp", "kl")
Net = TypeVar("Net", bound=nn.Module)
#: training settings of :func:`train_discriminator` / :func:`train_oe_classifier` unless overridden
DEFAULTS: dict[str, Any] = {"epochs": 60, "batch_size": 256, "weight_decay": 1e-4, "patience": 8, "progress": False}


def mlp_state(net: MLP) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(json, arrays)`` of an :class:`~rareflow.nets.mlp.MLP` for persistence (no pickle)."""
    return net.config(), module_arrays(net)


def mlp_from_state(json: dict[str, Any], arrays: dict[str, np.ndarray], device: torch.device | str = "cpu") -> MLP:
    """Inverse of :func:`mlp_state` (shapes checked before the net is built)."""
    return load_module(lambda: MLP.from_config(json), arrays, "", "MLP", device)


# -- losses and scores -------------------------------------------------------------------------
def discriminator_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Weighted BCE with logits; ``batch.label`` 1 = generated outlier, 0 = inlier."""
    assert batch.label is not None
    per_row = F.binary_cross_entropy_with_logits(model(batch.x).squeeze(-1), batch.label.float(), reduction="none")
    return weighted_mean(per_row, batch.weight)


def kl_uniform(logits: Tensor) -> Tensor:
    """:math:`\\mathrm{KL}(\\mathcal U \\Vert \\mathrm{softmax}(l)) = -\\log K - \\mathrm{mean}_k \\log p_k` per row."""
    return -math.log(logits.shape[-1]) - F.log_softmax(logits, dim=-1).mean(-1)


def oe_loss(beta: float) -> Callable[[nn.Module, Batch], Tensor]:
    """Cross-entropy on inliers (label >= 0) + ``beta`` * KL(U || p) on outliers (label -1)."""

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        assert batch.label is not None
        logits = model(batch.x)
        y = batch.label.long()
        inl = y >= 0
        loss = F.cross_entropy(logits[inl], y[inl]) if bool(inl.any()) else logits.sum() * 0.0
        if beta > 0 and bool((~inl).any()):
            loss = loss + beta * kl_uniform(logits[~inl]).mean()
        return loss

    return loss_fn


def logit_score(logits: Tensor, score: str) -> Tensor:
    """Outlier score of a net's logits, higher = rarer: ``logit`` (one output: the discriminator's),
    ``msp`` :math:`-\\max_k p_k`, ``kl`` :math:`-\\mathrm{KL}(\\mathcal U \\Vert p)`."""
    if score == "logit":
        return logits[:, 0]
    if score not in OE_SCORES:
        raise RareflowError(f"classifier score must be one of {', '.join(OE_SCORES)}, got {score!r}")
    return -torch.softmax(logits, -1).max(-1).values if score == "msp" else -kl_uniform(logits)


# -- training rows -----------------------------------------------------------------------------
def discriminator_rows(X_in: np.ndarray, X_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, label, weight)``: inliers 0, outliers 1, each class half of the total weight."""
    X_in, X_out = np.asarray(X_in, dtype=float), np.asarray(X_out, dtype=float)
    if len(X_in) == 0 or len(X_out) == 0:
        raise RareflowError("the discriminator needs both inliers and generated outliers")
    X = np.vstack([X_in, X_out])
    label = np.r_[np.zeros(len(X_in)), np.ones(len(X_out))]
    weight = np.r_[np.full(len(X_in), 0.5 / len(X_in)), np.full(len(X_out), 0.5 / len(X_out))] * len(X)
    return X, label, weight


def oe_rows(
    X_in: np.ndarray, y_in: np.ndarray, X_out: np.ndarray | None, beta: float, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """``(rows, label, K, use_outliers)``: inliers labelled 0..K-1, outliers -1 (only when ``beta > 0``)."""
    X_in = np.asarray(X_in, dtype=float)
    y_in = np.asarray(y_in).astype(np.int64)
    K = int(n_classes or (y_in.max() + 1))
    if K < 2 or y_in.min() < 0 or y_in.max() >= K:
        raise RareflowError(f"outlier exposure needs >= 2 inlier classes labelled 0..K-1; got labels {np.unique(y_in)}")
    use_out = X_out is not None and len(X_out) > 0 and beta > 0
    X = np.vstack([X_in, np.asarray(X_out, dtype=float)]) if use_out else X_in
    return X, np.r_[y_in, -np.ones(len(X) - len(X_in), dtype=np.int64)], K, use_out


def new_net(d_in: int, d_out: int, hidden: Sequence[int], X_in: np.ndarray, dropout: float = 0.0) -> MLP:
    """An :class:`MLP` standardising its inputs with the inliers' mean / std (seed torch's RNG first)."""
    net = MLP(d_in, d_out, hidden, dropout)
    net.fit_scaling(np.asarray(X_in, dtype=float))
    return net


# -- training (arrays in, net out) ---------------------------------------------------------------
def _fit(make_net: Callable[[], Net], loss_fn: Callable[[nn.Module, Batch], Tensor], X: np.ndarray,
         label: np.ndarray, weight: np.ndarray | None, seed: int | None, settings: dict[str, Any],
         description: str) -> tuple[Net, dict[str, Any]]:  # fmt: skip
    """A new net ``make_net()`` trained by :func:`fit_model` under the seed keys of :mod:`rareflow.training.seeds`."""
    config: TrainConfig = train_config(settings, DEFAULTS)
    with seeded(child_seed(seed, INIT)):
        net = make_net()
    label = np.asarray(label, dtype=np.float32)
    tr, va = split_indices(len(X), config.validation_fraction, child_seed(seed, SPLIT))
    history = fit_model(net, loss_fn, make_batch(X, tr, label, weight), make_batch(X, va, label, weight), config,
                        seed=child_seed(seed, TRAIN), description=description)  # fmt: skip
    return net, history


def train_discriminator(
    X_in: np.ndarray, X_out: np.ndarray, *, hidden: Sequence[int] = (128, 128), dropout: float = 0.0,
    seed: int | None = 0, **training: Any,
) -> tuple[MLP, dict[str, Any]]:  # fmt: skip
    """Discriminator inliers (0) vs generated outliers (1), class-balanced BCE; ``(net, history)``.

    ``training``: :class:`~rareflow.training.TrainConfig` fields (``epochs``, ``lr``, ``device``,
    ...) over :data:`DEFAULTS`.
    """
    X, label, weight = discriminator_rows(X_in, X_out)
    return _fit(lambda: new_net(X.shape[1], 1, hidden, X_in, dropout), discriminator_loss, X, label,
                weight.astype(np.float32), seed, training, "discriminator")  # fmt: skip


def train_oe_classifier(
    X_in: np.ndarray, y_in: np.ndarray, X_out: np.ndarray | None = None, *, beta: float = 0.5,
    n_classes: int | None = None, hidden: Sequence[int] = (128, 128), dropout: float = 0.0, seed: int | None = 0,
    **training: Any,
) -> tuple[MLP, dict[str, Any]]:  # fmt: skip
    """``K``-class classifier of inlier classes ``y_in`` (0..K-1) with outlier exposure on ``X_out``.

    ``X_out=None`` or ``beta=0``: the plain classifier (baseline). ``training``: as
    :func:`train_discriminator`. Returns ``(net, history)``.
    """
    X_in = np.asarray(X_in, dtype=float)
    return train_oe_net(lambda K: new_net(X_in.shape[1], K, hidden, X_in, dropout), X_in, y_in, X_out, beta=beta,
                        n_classes=n_classes, seed=seed, **training)  # fmt: skip


def train_oe_net(
    make_net: Callable[[int], Net], X_in: np.ndarray, y_in: np.ndarray, X_out: np.ndarray | None = None, *,
    beta: float = 0.5, n_classes: int | None = None, seed: int | None = 0, **training: Any,
) -> tuple[Net, dict[str, Any]]:  # fmt: skip
    """:func:`train_oe_classifier` for any net: ``make_net(K)`` maps rows of ``X_in`` to ``K`` logits.

    Same rows, loss (cross-entropy + ``beta`` KL(U || p) on ``X_out``, Hendrycks et al. 2019),
    seed keys and loop; for nets that read the rows as something else than feature vectors (e.g.
    a CNN on flattened images, ``examples/digits_vs_letters.py --classifier cnn``).
    ``make_net`` is called under the ``INIT`` seed. Returns ``(net, history)``.
    """
    X, label, K, use_out = oe_rows(X_in, y_in, X_out, beta, n_classes)
    return _fit(lambda: make_net(K), oe_loss(beta if use_out else 0.0), X, label, None, seed, training,
                "OE classifier" if use_out else "classifier")  # fmt: skip


# -- scores of a trained net -------------------------------------------------------------------
def _logits(net: nn.Module, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    net.eval()
    p = next(net.parameters())
    return predict_batched(net, np.asarray(X, dtype=float), batch_size, p.device)


def discriminator_score(net: nn.Module, X: np.ndarray) -> np.ndarray:
    """Logit of :math:`D(x)` (higher = more like the generated outliers)."""
    return _logits(net, X)[:, 0]


def classifier_score(net: nn.Module, X: np.ndarray, score: str = "msp") -> np.ndarray:
    """``msp``: :math:`-\\max_k p_k`; ``kl``: :math:`-\\mathrm{KL}(\\mathcal U \\Vert p)`; higher = rarer."""
    if score not in OE_SCORES:
        raise RareflowError(f"classifier score must be one of {', '.join(OE_SCORES)}, got {score!r}")
    return logit_score(torch.as_tensor(_logits(net, X)), score).double().numpy()


def predict_classes(net: nn.Module, X: np.ndarray) -> np.ndarray:
    """Arg-max class of a classifier."""
    return _logits(net, X).argmax(axis=1)
