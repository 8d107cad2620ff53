"""Detectors: one file per method, each registering itself under its SPEC name.

Adding a method = adding one module to this package that decorates its class with
:func:`register`; :func:`get_detector` imports every module of the package on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from rareflow.detectors.base import Detector, FittedState
from rareflow.errors import RareflowError

_REGISTRY: dict[str, type[Detector]] = {}
_LOADED = False


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("base", "params", "thresholds", "torch_base") and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    _LOADED = True


def available() -> list[str]:
    """Names of all registered methods."""
    _load_all()
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    """The class registered under ``name``, or a RareflowError listing the known names."""
    _load_all()
    if name not in _REGISTRY:
        raise RareflowError(f"unknown method '{name}'; known methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def get_detector(name: str, **params: Any) -> Detector:
    """A new detector ``name`` with constructor ``params`` (unknown parameters are an error).

    Torch methods take their training settings as one ``training`` mapping; for convenience (and
    for model files saved before it existed) settings given at the top level, e.g.
    ``get_detector("flow", epochs=5)`` or ``--param epochs=5``, are moved into ``training``
    (:meth:`rareflow.detectors.torch_base.TorchDetector.upgrade_params`; a top-level value wins
    over the same key in ``training``), and renamed parameters (selfsup-flow's ``b_class``, now
    ``fit_on``) get their new name.
    """
    cls = detector_class(name)
    upgrade = getattr(cls, "upgrade_params", None)
    if upgrade is not None:
        params = upgrade(params)
    try:
        det = cls(**params)
    except TypeError as exc:
        raise RareflowError(f"bad parameters for method '{name}': {exc}") from None
    return det.check_params()


__all__ = ["Detector", "FittedState", "available", "detector_class", "get_detector", "register"]
