"""Shared fitting steps of the flow detectors (``flow``, ``flow-classifier``, ``selfsup-flow``).

Each detector stores the same flow and training parameters (``flow``, ``transforms``, ``hidden``,
``activation``, ``bins``, ``log_features``, ``dequantize``, ``epochs``, ``batch_size``, ``lr``,
``weight_decay``, ``schedule``, ``clip_grad``, ``patience``, ``random_state``, ``device``,
``n_threads``, ``progress``, ``on_divergence``); these helpers turn them into a model and a run
of the one training loop, so the three detectors differ only in their loss and score.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.flows.build import FLOW_KINDS, FlowConfig
from rareflow.flows.model import FlowModel
from rareflow.flows.preprocessing import Preprocessor
from rareflow.flows.train import Batch, TrainingDiverged, to_tensor, train
from rareflow.seeding import derive_seed


def check_flow_params(det: Any) -> None:
    """One-line errors for the shared parameters."""
    if det.flow not in FLOW_KINDS:
        raise RareflowError(f"flow must be one of {', '.join(FLOW_KINDS)}, got {det.flow!r}")
    if det.on_divergence not in ("raise", "keep"):
        raise RareflowError(f"on_divergence must be 'raise' or 'keep', got {det.on_divergence!r}")


def seed_of(det: Any, key: str) -> int | None:
    """Seed derived from the detector's ``random_state`` for one purpose (None stays None)."""
    return None if det.random_state is None else derive_seed(det.random_state, key)


def fit_preprocessor(det: Any, X: np.ndarray) -> Preprocessor:
    """The stored preprocessing (log / robust scaling / dequantisation) fitted on ``X``."""
    names = getattr(det, "feature_names_in_", None)
    names = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(X.shape[1])]
    return Preprocessor.fit(X, feature_names=names, log_features=det.log_features, dequantize=det.dequantize)


def make_flow(det: Any, pre: Preprocessor, context: int = 0, key: str = "flow-init") -> FlowModel:
    """A fresh ``FlowModel`` of the detector's architecture around ``pre``."""
    config = FlowConfig(
        kind=det.flow, features=pre.n_features, context=int(context), transforms=int(det.transforms),
        hidden=tuple(det.hidden), activation=det.activation, bins=int(det.bins),
    )  # fmt: skip
    return FlowModel(config, pre, seed=seed_of(det, key))


def make_batch(
    X: np.ndarray, idx: np.ndarray, label: np.ndarray | None = None, weight: np.ndarray | None = None
) -> Batch:
    """Rows ``idx`` as a float32 :class:`Batch` (labels as float, weights optional)."""
    return Batch(
        x=to_tensor(X[idx]),
        label=None if label is None else to_tensor(label[idx]),
        weight=None if weight is None else to_tensor(weight[idx]),
    )


def run_training(
    det: Any,
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Batch], Tensor],
    train_data: Batch,
    valid_data: Batch | None,
    val_loss_fn: Callable[[nn.Module, Batch], Tensor] | None,
    description: str,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Run :func:`rareflow.flows.train.train` with the detector's settings (``epochs`` overrides).

    Divergence keeps the best weights; it raises unless ``on_divergence='keep'`` (then warns).
    """
    try:
        return train(
            model, loss_fn, train_data, valid_data if valid_data is not None and len(valid_data) else None,
            val_loss_fn=val_loss_fn, epochs=int(det.epochs if epochs is None else epochs), batch_size=int(det.batch_size), lr=float(det.lr),
            weight_decay=float(det.weight_decay), schedule=det.schedule, clip_grad=det.clip_grad,
            patience=int(det.patience), seed=seed_of(det, "train"), n_threads=det.n_threads, device=det.device,
            progress=bool(det.progress), description=description,
        )  # fmt: skip
    except TrainingDiverged as exc:
        if det.on_divergence == "raise":
            raise
        warnings.warn(f"{exc}; continuing with those weights (on_divergence='keep')", stacklevel=3)
        return exc.history


def small_history(history: dict[str, Any]) -> dict[str, Any]:
    """History as JSON (NaN/inf losses become None)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not np.isfinite(v):
            return None
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return {k: clean(v) for k, v in history.items()}


def prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` whose key starts with ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
