"""Describe methods and their parameters for people: ``rareflow methods`` and ``train METHOD --help``.

Everything is derived from the detector classes, so help cannot drift from the code:

* a method's one line = the first line of its class docstring; kind and needs = its ``kind`` and
  ``requires_labels`` class attributes (image methods need the camera images);
* its parameters and defaults = the constructor signature;
* a parameter's description, first found of: the ``Parameters`` section of the class docstring
  (numpydoc ``name : type`` then indented text), a ``param_help`` class dict, the glossary of
  parameter names shared by several methods below;
* allowed values: ``Literal[...]`` annotations, ``bool`` (true | false), or the module constant
  named after the parameter in upper case and plural (``score`` -> ``SCORES``, ``mode`` ->
  ``MODES``), the tuple the method checks its value against.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import typing
from dataclasses import dataclass
from typing import Any

from rareflow.detectors.base import Detector

#: Parameter names shared by several methods (a method's docstring or ``param_help`` wins).
GLOSSARY: dict[str, str] = {
    "fit_on": "class the one-class model learns: bulk (score = outlier score) or rare (score negated)",
    "threshold": "working point rule, e.g. {rule: quantile, bulk_acceptance: 0.01} (default), "
    "{rule: quantile, rare_efficiency: 0.9}, {rule: chi2, alpha: 0.01}, {rule: k_sigma, k: 3}",
    "random_state": "seed of the method's own randomness (train sets it from --seed)",
    "validation_fraction": "fraction of training rows held out for early stopping",
    "hidden": "hidden layer widths, e.g. [128, 128]",
    "epochs": "maximum training epochs",
    "batch_size": "rows per optimisation step",
    "lr": "Adam learning rate",
    "weight_decay": "AdamW weight decay",
    "schedule": "learning-rate schedule: cosine | plateau | none",
    "clip_grad": "gradient-norm clipping (null = none)",
    "patience": "early stopping: epochs without validation improvement",
    "n_threads": "torch threads for this method (null = the --threads policy)",
    "progress": "show a progress bar",
    "device": "torch device: cpu | cuda | auto",
    "score_batch_size": "rows per scoring batch (memory only; scores do not change)",
    "on_divergence": "NaN loss: raise | keep (keep the best weights and warn)",
    "activation": "hidden-layer activation, e.g. elu | relu",
    "log_features": "columns to log-transform (true = automatic for heavy-tailed positive columns)",
    "dequantize": "integer columns to dequantise (true = automatic)",
    "flow": "flow family: realnvp | maf | nsf",
    "transforms": "number of flow transforms (couplings / autoregressive layers)",
    "bins": "spline bins (nsf only)",
    "val_trim": "fraction of the worst validation NLLs ignored by early stopping",
    "ridge": "ridge added to the covariance diagonal",
    "training": "training settings as one mapping, e.g. {epochs: 50, lr: 0.001}",
}


@dataclass(frozen=True)
class ParamDoc:
    """One constructor parameter as shown in help."""

    name: str
    default: Any
    allowed: str
    help: str


def summary_line(cls: type[Detector]) -> str:
    """First line of the class docstring, without reST markup."""
    doc = inspect.getdoc(cls) or ""
    line = doc.strip().splitlines()[0] if doc.strip() else ""
    return re.sub(r"``?|:class:|:func:", "", line)


def needs(cls: type[Detector]) -> str:
    """What the method needs from the data, in words."""
    if cls.requires_labels:
        parts = ["labels (rare + bulk)"]
    elif cls.kind == "two-class":
        parts = ["labels, or generated rare events"]
    else:
        parts = ["one class (labels optional)"]
    if cls.__module__.rsplit(".", 1)[-1] in ("conv_autoencoder", "fastflow"):
        parts.append("camera images")
    return ", ".join(parts)


def method_rows() -> list[tuple[str, str, str, str]]:
    """(name, kind, needs, one line) of every registered method, sorted by name."""
    from rareflow.detectors import available, detector_class

    return [(n, detector_class(n).kind, needs(detector_class(n)), summary_line(detector_class(n))) for n in available()]


def _docstring_params(cls: type[Detector]) -> dict[str, str]:
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:\n\n[A-Z][a-z]+\n-+\n|\Z)", doc, re.S | re.M)
    out: dict[str, str] = {}
    if match:
        for name, text in re.findall(r"^(\w+)\s*:[^\n]*\n((?:[ \t]+[^\n]*\n?)*)", match.group(1), re.M):
            out[name] = " ".join(text.split())
    return out


def _allowed(cls: type[Detector], param: inspect.Parameter, hints: dict[str, Any]) -> str:
    hint = hints.get(param.name)
    if typing.get_origin(hint) is typing.Literal:
        return " | ".join(str(a) for a in typing.get_args(hint))
    if hint is bool or isinstance(param.default, bool):
        return "true | false"
    choices = getattr(sys.modules.get(cls.__module__), f"{param.name.upper()}S", None)
    if isinstance(choices, (tuple, list, dict)) and all(isinstance(c, str) for c in choices):
        return " | ".join(choices)
    return ""


def param_docs(cls: type[Detector]) -> list[ParamDoc]:
    """Every constructor parameter of ``cls`` with its default, allowed values and description."""
    sig = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # annotations naming optional modules: fall back to no hints
        hints = {}
    own = {**GLOSSARY, **getattr(cls, "param_help", {}), **_docstring_params(cls)}
    return [
        ParamDoc(p.name, p.default, _allowed(cls, p, hints), own.get(p.name, ""))
        for p in list(sig.parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def unknown_param_message(cls: type[Detector], bad: list[str]) -> str:
    """``unknown parameter 'scor' for flow; did you mean 'score'? parameters: ...`` (difflib)."""
    names = [p.name for p in param_docs(cls)]
    close = {b: difflib.get_close_matches(b, names, n=1, cutoff=0.6) for b in bad}
    listed = ", ".join(f"'{b}'" for b in bad)
    guesses = ", ".join(f"'{c[0]}'" for c in close.values() if c)
    hint = f"; did you mean {guesses}?" if guesses else ";"
    word = "parameter" if len(bad) == 1 else "parameters"
    return f"unknown {word} {listed} for {cls.name}{hint} parameters: {', '.join(names)}"
