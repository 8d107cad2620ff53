"""``selfsup-flow``: one flow that maximises the likelihood of B and minimises that of R.

Chiu & Lai (CVPR 2023 workshops) train a single normalizing flow with

.. math:: L_{total} = L_B - L_R

(:mod:`rareflow.flows.selfsup`: :math:`L_B` the mean NLL of the B rows, :math:`L_R` the sum of
the NLLs of the R rows whose :math:`\\log p` is still above ``c`` and above the lowest B
log-likelihood of the batch — the indicator that keeps the loss from running to
:math:`-\\infty`). The score is the NLL under that flow, :math:`-\\log p(x)` (higher = further
from B).

* **B** is the class the flow models, ``fit_on`` (bulk by default, hadrons); ``fit_on="rare"``
  models the rare class instead and scores :math:`+\\log p(x)` so that higher still means rarer.
  (Files saved when the parameter was called ``b_class`` still load.)
* A warm-up of ``warmup_epochs`` epochs on :math:`L_B` alone comes first: at initialisation the
  lowest bulk log-likelihood of a batch can be -1000 (heavy-tailed columns), so the guard would
  let every R row push the density down without bound and the gradients overflow.
* **R** is the other labelled class, or a synthetic set made from the B rows by a generator
  (``synthetic: {name: scaled | box | flow-outliers, size: 1.0, ...}``; ``flow-outliers`` —
  outliers of a flow fitted on B, from the outlier-generation module — is registered by
  ``detectors/outlier_exposure.py``). With a synthetic R the labelled rare rows are not used,
  and the detector can train on one class only.

Papers: Chiu & Lai 2023; Dohi et al., ICASSP 2021 (the flow-based self-supervised density
estimation it builds on); Kirichenko et al. 2020 (why the guard is needed). See
``docs/selfsup-flow.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from rareflow.detectors import available, register
from rareflow.detectors._flowbase import FLOW_SPECS, FlowBase
from rareflow.detectors.base import FittedState, Kind
from rareflow.detectors.params import Choice, Number, Settings
from rareflow.errors import RareflowError
from rareflow.flows.losses import nll_loss, trimmed_nll_loss
from rareflow.flows.selfsup import selfsup_loss, selfsup_validation
from rareflow.seeding import rng
from rareflow.training import INIT, SPLIT, SYNTHETIC, make_batch, seeded, split_indices

SyntheticFn = Callable[..., np.ndarray]  # (X_B, n, gen, **params) -> (n, d) rows
_SYNTHETIC: dict[str, SyntheticFn] = {}


def register_synthetic(name: str) -> Callable[[SyntheticFn], SyntheticFn]:
    """Decorator: offer ``fn(X_B, n, gen, **params) -> rows`` as the synthetic R generator ``name``."""

    def deco(fn: SyntheticFn) -> SyntheticFn:
        _SYNTHETIC[name] = fn
        return fn

    return deco


@register_synthetic("scaled")
def scaled_rows(X_B: np.ndarray, n: int, gen: np.random.Generator, factor: float = 1.5) -> np.ndarray:
    """B rows pushed away from the B median: :math:`m + f\\,(x - m)` (a crude "larger than usual" set)."""
    med = np.median(X_B, axis=0)
    rows = X_B[gen.integers(0, len(X_B), int(n))]
    return med + float(factor) * (rows - med)


@register_synthetic("box")
def box_rows(X_B: np.ndarray, n: int, gen: np.random.Generator, margin: float = 0.1) -> np.ndarray:
    """Uniform points in the B bounding box widened by ``margin`` of its width on each side."""
    lo, hi = X_B.min(axis=0), X_B.max(axis=0)
    pad = float(margin) * (hi - lo)
    return gen.uniform(lo - pad, hi + pad, size=(int(n), X_B.shape[1]))


def synthetic_generators() -> list[str]:
    """Names of the registered synthetic R generators (loads every detector module first)."""
    available()
    return sorted(_SYNTHETIC)


def make_synthetic(spec: dict[str, Any], X_B: np.ndarray, seed: int | None) -> np.ndarray:
    """Synthetic R rows from ``spec = {name, size (fraction of len(X_B)), **generator params}``."""
    available()  # load every detector module, so generators registered by them (flow-outliers) exist
    params = dict(spec)
    name = params.pop("name", None)
    size = float(params.pop("size", 1.0))
    if name not in _SYNTHETIC:
        raise RareflowError(
            f"unknown synthetic generator {name!r}; use synthetic: {{name: {' | '.join(sorted(_SYNTHETIC))}, size: 1.0}}"
        )
    n = max(int(round(size * len(X_B))), 1)
    try:
        out = np.asarray(_SYNTHETIC[name](X_B, n, rng(seed), **params), dtype=float)
    except TypeError as exc:
        raise RareflowError(f"bad parameters for synthetic generator '{name}': {exc}") from None
    if out.ndim != 2 or out.shape[1] != X_B.shape[1] or not np.isfinite(out).all():
        raise RareflowError(f"synthetic generator '{name}' returned {out.shape} rows with non-finite values or wrong width")
    return out


@register
class SelfSupFlow(FlowBase):
    """Self-supervised flow (Chiu & Lai 2023): L_B - L_R with the indicator guard; score -log p(x).

    Defaults: the ``flow`` detector's architecture and training (RealNVP 8 x (128, 128), ELU),
    10 warm-up epochs on :math:`L_B`, ``c = "auto"`` (the 0.1% quantile of the B training
    log-likelihoods after the warm-up), the paper's sum over R, epochs selected by
    :func:`~rareflow.flows.selfsup.selfsup_validation`.
    """

    name: ClassVar[str] = "selfsup-flow"
    kind: ClassVar[Kind] = "two-class"
    requires_labels: ClassVar[bool] = False
    renamed_params: ClassVar[dict[str, str]] = {"b_class": "fit_on"}
    param_specs: ClassVar[dict[str, Any]] = {
        **FLOW_SPECS, "fit_on": Choice(("bulk", "rare")), "c": Number(none_ok=True, words=("auto",)), "c_quantile": Number(low=0, high=1),
        "rare_reduction": Choice(("sum", "mean")), "synthetic": Settings("{name: scaled, size: 1.0}"),
        "warmup_epochs": Number(integer=True, low=0),
    }  # fmt: skip

    def __init__(
        self,
        fit_on: str = "bulk",
        c: float | str | None = "auto",
        c_quantile: float = 0.001,
        rare_reduction: str = "sum",
        synthetic: dict[str, Any] | None = None,
        warmup_epochs: int = 10,
        flow: str = "realnvp",
        transforms: int = 8,
        hidden: Sequence[int] = (128, 128),
        activation: str = "elu",
        bins: int = 8,
        log_features: Sequence[str] | bool | None = None,
        dequantize: Sequence[str] | bool | None = None,
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    # -- fitting ---------------------------------------------------------------------------------
    def _b_and_r(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """B rows, R rows and their weights (R from the other class or from the generator)."""
        if y is None:
            if self.synthetic is None:
                raise RareflowError(
                    "selfsup-flow needs labels (rare and bulk events) or a synthetic R set: "
                    "give the table a 'label' column or set synthetic: {name: scaled}"
                )
            b = np.ones(len(X), dtype=bool)
        else:
            b = y == (0 if self.fit_on == "bulk" else 1)
        if not b.any():
            raise RareflowError(f"selfsup-flow: the training data has no rows of its B class (fit_on: {self.fit_on})")
        X_B, w_B = X[b], None if w is None else w[b]
        if self.synthetic is not None:
            X_R = make_synthetic(self.synthetic, X_B, self._seed(SYNTHETIC))
            w_R = None if w is None else np.full(len(X_R), float(np.mean(w_B)))
        else:
            X_R, w_R = X[~b], None if w is None else w[~b]
            if len(X_R) == 0:
                raise RareflowError("selfsup-flow: the training data has no R rows (the class other than B)")
        return X_B, X_R, w_B, w_R

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        # two runs of the loop (warm-up on L_B, then L_B - L_R), so the template's single run is unrolled here
        vf = self.training_config().validation_fraction
        self._check_params()
        X_B, X_R, w_B, w_R = self._b_and_r(X, y, sample_weight)
        Xall = np.concatenate([X_B, X_R])
        lab = np.concatenate([np.zeros(len(X_B)), np.ones(len(X_R))]).astype(np.float32)
        w = None if w_B is None else np.concatenate([w_B, w_R]).astype(np.float32)
        with seeded(self._seed(INIT)):
            self.model_ = model = self._new_flow(self._preprocessor(X))  # the training table, not synthetic rows
        tr_b, va_b = split_indices(len(X_B), vf, self._seed(SPLIT, "b"))
        tr_r, va_r = split_indices(len(X_R), vf, self._seed(SPLIT, "r"))
        tr, va = np.concatenate([tr_b, len(X_B) + tr_r]), np.concatenate([va_b, len(X_B) + va_r])
        self.n_b_set_, self.n_rare_set_ = len(X_B), len(X_R)
        warm: dict[str, Any] = {}
        if int(self.warmup_epochs) > 0:  # L_B alone first, so the batch minimum of log p(x_b) is meaningful
            warm = self._train(
                model, nll_loss, make_batch(Xall, tr_b, lab, w), make_batch(Xall, va_b, lab, w), trimmed_nll_loss(0.01),
                "selfsup-flow warm-up (L_B)", epochs=int(self.warmup_epochs), key="warmup",
            )  # fmt: skip
        self.c_ = self._floor(Xall[tr_b])
        self.history_ = self._train(
            model, selfsup_loss(self.c_, self.rare_reduction), make_batch(Xall, tr, lab, w), make_batch(Xall, va, lab, w),
            selfsup_validation(), "selfsup-flow",
        )  # fmt: skip
        self.history_["warmup"] = {k: warm[k] for k in ("train_loss", "val_loss", "best_epoch") if k in warm}

    def _floor(self, X_B: np.ndarray) -> float | None:
        """The floor ``c``: a number, None, or ``"auto"`` = the ``c_quantile`` quantile of
        :math:`\\log p` of the B training rows after the warm-up."""
        if self.c is None:
            return None
        if self.c != "auto":
            try:
                return float(self.c)
            except (TypeError, ValueError):
                raise RareflowError(f"c must be a number, 'auto' or null, got {self.c!r}") from None
        lp = self._log_prob(X_B)
        return float(np.quantile(lp[np.isfinite(lp)], float(self.c_quantile)))

    # -- scoring ---------------------------------------------------------------------------------
    def log_prob(self, X: Any) -> np.ndarray:
        """:math:`\\log p(x)` under the trained flow (nats)."""
        return self._log_prob(self._checked(X))

    def _score(self, X: np.ndarray) -> np.ndarray:
        lp = self._log_prob(X)
        return -lp if self.fit_on == "bulk" else lp

    # -- persistence -----------------------------------------------------------------------------
    def _export_extra(self, state: FittedState) -> None:
        state.json.update(n_b=self.n_b_set_, n_r=self.n_rare_set_, c=self.c_)

    def _import_extra(self, state: FittedState) -> None:
        self.n_b_set_, self.n_rare_set_ = int(state.json.get("n_b", 0)), int(state.json.get("n_r", 0))
        self.c_ = state.json.get("c")
