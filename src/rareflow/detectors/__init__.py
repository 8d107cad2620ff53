"""Detectors: one file per method, each registering itself under its SPEC name.

Adding a method = adding one module to this package that decorates its class with
:func:`register`; :func:`get_detector` imports every module of the package on first use.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any

from rareflow.detectors.base import Detector, FittedState
from rareflow.errors import RareflowError

_REGISTRY: dict[str, type[Detector]] = {}
_LOADED = False
_NOT_METHODS = ("base", "params", "thresholds", "torch_base", "describe", "working_point")  # modules without a method


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
        if mod.name not in _NOT_METHODS and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    _LOADED = True


def available() -> list[str]:
    """Names of all registered methods."""
    _load_all()
    return sorted(_REGISTRY)


def _load_one(name: str) -> None:
    """Import only the module of method ``name`` (``power-mahalanobis`` -> ``power_mahalanobis``).

    Keeps ``train gbdt`` free of torch; any other name falls back to importing every module.
    """
    module = name.replace("-", "_")
    modules = {m.name for m in pkgutil.iter_modules(__path__)}
    if module.isidentifier() and not module.startswith("_") and module in modules:
        importlib.import_module(f"{__name__}.{module}")


def detector_class(name: str) -> type[Detector]:
    """The class registered under ``name``, or a RareflowError listing the known names."""
    if name not in _REGISTRY:
        _load_one(name)
    if name not in _REGISTRY:
        _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, sorted(_REGISTRY), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        known = ", ".join(sorted(_REGISTRY))
        raise RareflowError(f"unknown method '{name}'; {hint}known methods: {known} (see `rareflow methods`)")
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
    unknown = [k for k in params if k not in cls._get_param_names()]
    if unknown:
        from rareflow.detectors.describe import unknown_param_message

        raise RareflowError(unknown_param_message(cls, unknown))
    try:
        det = cls(**params)
    except TypeError as exc:
        raise RareflowError(f"bad parameters for method '{name}': {exc}") from None
    return det.check_params()


__all__ = ["Detector", "FittedState", "available", "detector_class", "get_detector", "register"]
