"""Activation functions by name (the names a model file stores)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from rareflow.errors import RareflowError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module ``name``; RareflowError listing the known names otherwise."""
    if name not in ACTIVATIONS:
        raise RareflowError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
