"""The fully connected networks: :func:`mlp` and :class:`MLP` (with stored input standardisation).

Layer indices are part of saved model files (``net.0.weight``, ``encoder.2.bias``, ...), so the
layout is fixed: ``Linear, activation, [Dropout]`` per hidden layer, then a final ``Linear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.nets.activations import activation as make_activation


def mlp(sizes: Sequence[int], activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """``sizes[0] -> ... -> sizes[-1]``: Linear + activation (+ Dropout) between, a bare Linear last."""
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise RareflowError(f"layer sizes must be >= 1, got {sizes}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """Standardise (stored mean/std) -> ``hidden`` ReLU layers (optional dropout) -> ``d_out`` outputs."""

    def __init__(self, d_in: int, d_out: int, hidden: Sequence[int] = (128, 128), dropout: float = 0.0) -> None:
        super().__init__()
        self.d_in, self.d_out, self.hidden, self.dropout = int(d_in), int(d_out), tuple(int(h) for h in hidden), float(dropout)
        self.register_buffer("mean", torch.zeros(self.d_in))
        self.register_buffer("std", torch.ones(self.d_in))
        self.net = mlp([self.d_in, *self.hidden, self.d_out], "relu", self.dropout)

    def fit_scaling(self, X: np.ndarray) -> None:
        """Store the mean and standard deviation of ``X`` (inliers) for input standardisation."""
        sd = X.std(axis=0)
        with torch.no_grad():
            self.mean.copy_(torch.as_tensor(X.mean(axis=0), dtype=torch.float32))
            self.std.copy_(torch.as_tensor(np.where(sd > 1e-12, sd, 1.0), dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return self.net((x - self.mean) / self.std)

    def config(self) -> dict[str, Any]:
        """JSON architecture (the arguments of the constructor)."""
        return {"d_in": self.d_in, "d_out": self.d_out, "hidden": list(self.hidden), "dropout": self.dropout}

    @classmethod
    def from_config(cls, json: dict[str, Any]) -> "MLP":
        """A fresh net of the architecture :meth:`config` describes."""
        return cls(int(json["d_in"]), int(json["d_out"]), [int(h) for h in json["hidden"]], float(json.get("dropout", 0.0)))
