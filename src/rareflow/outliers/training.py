"""Training with generated outliers: a discriminator and an outlier-exposure classifier (Bungert 2021).

Both are small MLPs on feature vectors, trained through the one loop
:func:`rareflow.training.train` with their own ``loss_fn``.

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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.nets.mlp import MLP
from rareflow.training import Batch, load_module, predict_batched, module_arrays, resolve_device, split_indices, to_tensor, train, weighted_mean
from rareflow.seeding import derive_seed

OE_SCORES = ("msp", "kl")


def mlp_state(net: MLP) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(json, arrays)`` of an :class:`~rareflow.nets.mlp.MLP` for persistence (no pickle)."""
    return net.config(), module_arrays(net)


def mlp_from_state(json: dict[str, Any], arrays: dict[str, np.ndarray], device: torch.device | str = "cpu") -> MLP:
    """Inverse of :func:`mlp_state` (shapes checked before the net is built)."""
    return load_module(lambda: MLP.from_config(json), arrays, "", "MLP", device)


# -- losses ------------------------------------------------------------------------------------
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


# -- training ----------------------------------------------------------------------------------
def _fit(
    net: MLP,
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    X: np.ndarray,
    label: np.ndarray,
    weight: np.ndarray | None,
    seed: int,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    validation_fraction: float,
    n_threads: int | None,
    progress: bool,
    description: str,
    label_dtype: torch.dtype,
    device: str = "cpu",
) -> dict[str, Any]:
    tr, va = split_indices(len(X), validation_fraction, derive_seed(seed, "split"))

    def batch(idx: np.ndarray) -> Batch:
        return Batch(x=to_tensor(X[idx]), label=to_tensor(label[idx], label_dtype),
                     weight=None if weight is None else to_tensor(weight[idx]))  # fmt: skip

    return train(
        net, loss_fn, batch(tr), batch(va) if len(va) else None, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, patience=patience, seed=derive_seed(seed, "train"), n_threads=n_threads,
        device=device, progress=progress, description=description,
    )  # fmt: skip


def _init_net(d_in: int, d_out: int, hidden: Sequence[int], dropout: float, seed: int, X_in: np.ndarray) -> MLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init"))
        net = MLP(d_in, d_out, hidden, dropout)
    net.fit_scaling(X_in)
    return net


def train_discriminator(
    X_in: np.ndarray,
    X_out: np.ndarray,
    *,
    hidden: Sequence[int] = (128, 128),
    dropout: float = 0.0,
    epochs: int = 60,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    patience: int = 8,
    validation_fraction: float = 0.2,
    seed: int = 0,
    n_threads: int | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[MLP, dict[str, Any]]:
    """Discriminator inliers (0) vs generated outliers (1), class-balanced BCE; ``(net, history)``."""
    X_in, X_out = np.asarray(X_in, dtype=float), np.asarray(X_out, dtype=float)
    if len(X_in) == 0 or len(X_out) == 0:
        raise RareflowError("the discriminator needs both inliers and generated outliers")
    X = np.vstack([X_in, X_out])
    label = np.r_[np.zeros(len(X_in)), np.ones(len(X_out))]
    weight = np.r_[np.full(len(X_in), 0.5 / len(X_in)), np.full(len(X_out), 0.5 / len(X_out))] * len(X)
    net = _init_net(X.shape[1], 1, hidden, dropout, seed, X_in)
    hist = _fit(net, discriminator_loss, X, label, weight, seed, epochs=epochs, batch_size=batch_size, lr=lr,
                weight_decay=weight_decay, patience=patience, validation_fraction=validation_fraction,
                n_threads=n_threads, progress=progress, description="discriminator", label_dtype=torch.float32,
                device=device)  # fmt: skip
    return net, hist


def train_oe_classifier(
    X_in: np.ndarray,
    y_in: np.ndarray,
    X_out: np.ndarray | None = None,
    *,
    beta: float = 0.5,
    n_classes: int | None = None,
    hidden: Sequence[int] = (128, 128),
    dropout: float = 0.0,
    epochs: int = 60,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    patience: int = 8,
    validation_fraction: float = 0.2,
    seed: int = 0,
    n_threads: int | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[MLP, dict[str, Any]]:
    """``K``-class classifier of inlier classes ``y_in`` (0..K-1) with outlier exposure on ``X_out``.

    ``X_out=None`` or ``beta=0``: the plain classifier (baseline). Returns ``(net, history)``.
    """
    X_in = np.asarray(X_in, dtype=float)
    y_in = np.asarray(y_in).astype(np.int64)
    K = int(n_classes or (y_in.max() + 1))
    if K < 2 or y_in.min() < 0 or y_in.max() >= K:
        raise RareflowError(f"outlier exposure needs >= 2 inlier classes labelled 0..K-1; got labels {np.unique(y_in)}")
    use_out = X_out is not None and len(X_out) > 0 and beta > 0
    X = np.vstack([X_in, np.asarray(X_out, dtype=float)]) if use_out else X_in
    label = np.r_[y_in, -np.ones(len(X) - len(X_in), dtype=np.int64)]
    net = _init_net(X.shape[1], K, hidden, dropout, seed, X_in)
    hist = _fit(net, oe_loss(beta if use_out else 0.0), X, label, None, seed, epochs=epochs, batch_size=batch_size,
                lr=lr, weight_decay=weight_decay, patience=patience, validation_fraction=validation_fraction,
                n_threads=n_threads, progress=progress, description="OE classifier" if use_out else "classifier",
                label_dtype=torch.int64, device=device)  # fmt: skip
    return net, hist


# -- scores ------------------------------------------------------------------------------------
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
    logits = torch.as_tensor(_logits(net, X))
    if score == "msp":
        return -torch.softmax(logits, -1).max(-1).values.numpy()
    return -kl_uniform(logits).numpy()


def predict_classes(net: nn.Module, X: np.ndarray) -> np.ndarray:
    """Arg-max class of a classifier."""
    return _logits(net, X).argmax(axis=1)
