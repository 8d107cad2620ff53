"""The detector contract shared by every method (scikit-learn estimator + PyOD detector).

* The constructor stores parameters only (scikit-learn convention); ``fit`` learns.
* ``fit(X, y=None, sample_weight=None)`` with ``y`` = 1 rare / 0 bulk.
* ``decision_function(X)`` returns the score, **higher = rarer**, for every method.
* ``decision_scores_`` (training scores), ``threshold_`` (cut chosen on training data),
  ``predict(X)`` -> 1 rare / 0 bulk (``score > threshold_``), ``feature_names_in_``.
* ``gammaness_`` (:class:`rareflow.calibration.GammanessCalibrator`): score -> gammaness in [0, 1],
  monotone in the score, fitted in ``fit`` on the labelled training scores (centred isotonic
  regression; a one-class fit uses its own class plus the labelled rows of the other class it left
  out) and refitted by ``set_threshold_from`` on held-out labelled calibration rows; without labels
  of both classes, the training-score ECDF (a rank, not a probability; ``gammaness_.method``).
  ``gammaness(X)`` applies it.
* Class attributes say what a method needs: ``kind`` (``one-class`` | ``two-class`` |
  ``supervised``) and ``requires_labels``.

One-class detectors learn the density of one class, named by their ``fit_on`` parameter. Their
internal *outlier score* grows away from that class; the public score is that outlier score when
``fit_on="bulk"`` (far from the bulk = rare) and its negative when ``fit_on="rare"`` (close to the
rare class = rare). When ``fit`` gets labels, a one-class detector keeps the rows of its class;
without labels it takes every row as that class (anomaly scenario, possibly contaminated).

A subclass implements ``_fit``, ``_score`` (outlier score for one-class, rare score otherwise) and
``_export`` / ``_import`` for persistence (JSON-able settings, numpy arrays, opaque byte blobs —
never pickle). ``_analytic_threshold`` is optional (``chi2`` / ``k_sigma`` rules).

Thresholds are owned by the detector: ``fit`` sets ``threshold_`` by the rule of its ``threshold``
parameter, or by the class's ``default_threshold`` when that is None (``power-mahalanobis``: chi2);
``threshold_rule_`` says which rule it was. Parameters are checked by :meth:`Detector.check_params`
(``fit_on``, ``threshold``, ``random_state`` and the class's ``param_specs``, see
:mod:`rareflow.detectors.params`) when built by ``get_detector`` and at the start of ``fit``.
``deterministic = True`` declares a method whose model does not depend on its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from rareflow.detectors.params import check, short
from rareflow.detectors.thresholds import ThresholdRule, parse_rule, quantile_threshold
from rareflow.errors import RareflowError, short_repr
from rareflow.seeding import check_seed

Kind = Literal["one-class", "two-class", "supervised"]


@dataclass
class FittedState:
    """What a detector saves beyond its constructor parameters."""

    json: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


class Detector(BaseEstimator):
    """Base class of every rareflow detector. Subclasses register with :func:`register`."""

    name: ClassVar[str] = ""
    kind: ClassVar[Kind] = "one-class"
    requires_labels: ClassVar[bool] = False
    #: the rule used when the ``threshold`` parameter is None (ThresholdRule's defaults if empty)
    default_threshold: ClassVar[dict[str, Any]] = {}
    #: checked constructor parameters (see :mod:`rareflow.detectors.params`)
    param_specs: ClassVar[dict[str, Any]] = {}
    #: True when the fitted model does not depend on ``random_state`` (or there is none)
    deterministic: ClassVar[bool] = False
    #: Fewest training rows (of the class fitted on) a fit accepts.
    min_train_rows: ClassVar[int] = 3

    # -- public API -------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "Detector":
        """Learn from ``X`` (rows = events); ``y``: 1 rare / 0 bulk; optional event weights."""
        self.check_params()
        Xa = self._validate_X(X, reset=True)
        ya = self._validate_y(y, len(Xa))
        wa = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if self.requires_labels and ya is None:
            raise RareflowError(
                f"method '{self.name}' needs labels: give the table a 'label' column with rare and bulk events"
            )
        other = None  # one-class fits: the other class's rows, for the working point only
        if self.kind == "one-class" and ya is not None:
            keep = ya == (1 if self._fit_on() == "rare" else 0)
            if not keep.any():
                raise RareflowError(
                    f"method '{self.name}' fits on the {self._fit_on()} class but the training data has none of it"
                )
            other = (Xa[~keep], ya[~keep], None if wa is None else wa[~keep])
            Xa, wa, ya = Xa[keep], (None if wa is None else wa[keep]), None
        elif ya is not None and self.kind != "one-class" and len(np.unique(ya)) < 2:
            raise RareflowError(
                f"method '{self.name}' needs both rare and bulk events in training; found only one class"
            )
        self._check_fit_inputs(Xa, wa)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is caught by _check_fit_result
            self._fit(Xa, ya, wa)
            self.decision_scores_ = self._public_score(Xa)
            self.threshold_ = self._threshold_from(self.decision_scores_, ya, wa)
        self._check_fit_result(Xa, wa)
        self._record_working_point(self.decision_scores_, ya, wa, other)
        self._fit_gammaness(self.decision_scores_, ya, wa, other)
        return self

    def gammaness(self, X: Any) -> np.ndarray:
        """Calibrated gammaness in [0, 1] of each row of ``X`` (``gammaness_`` applied to the score)."""
        cal = getattr(self, "gammaness_", None)
        if cal is None:
            raise RareflowError(f"the '{self.name}' model has no gammaness calibration (saved by an older rareflow); retrain it")
        return cal(self.decision_function(X))

    def _fit_gammaness(self, scores: np.ndarray, y: np.ndarray | None, w: np.ndarray | None, other: tuple | None = None) -> None:
        """``gammaness_`` from labelled scores of both classes, else the training-score ECDF (see module doc)."""
        from rareflow.calibration import fit_ecdf_gammaness, fit_gammaness

        own_scores = scores
        if y is None and other is not None and len(other[1]):
            own = np.full(len(scores), 1 if self._fit_on() == "rare" else 0)
            scores = np.concatenate([scores, self._public_score(other[0])])
            y = np.concatenate([own, other[1]])
            w = None if w is None or other[2] is None else np.concatenate([w, other[2]])
        ok = np.isfinite(scores)
        if y is not None and np.unique(np.asarray(y)[ok]).size == 2:
            self.gammaness_ = fit_gammaness(scores, y, w)
        else:
            self.gammaness_ = fit_ecdf_gammaness(own_scores)
    def _store(self, arguments: dict[str, Any]) -> None:
        """Keep every constructor argument as an attribute of the same name, unchanged (scikit-learn's
        rule; validation happens in :meth:`check_params`). Call as ``self._store(locals())``."""
        for name in self._get_param_names():
            setattr(self, name, arguments[name])

    def check_params(self) -> "Detector":
        """Validate the constructor parameters; a one-line :class:`RareflowError` names the first bad one."""
        params = self.get_params(deep=False)
        if self.kind == "one-class" and "fit_on" in params:
            self._fit_on()
        if "threshold" in params:
            self._threshold_rule()
        if params.get("random_state") is not None:
            check_seed(params["random_state"], f"method '{self.name}': parameter random_state")
        for pname, spec in self.param_specs.items():
            if pname in params:
                check(self.name, pname, params[pname], spec)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Score of each row of ``X``: higher = rarer."""
        check_is_fitted(self, "threshold_")
        return self._public_score(self._validate_X(X, reset=False))

    def predict(self, X: Any) -> np.ndarray:
        """1 = rare/anomalous (score above ``threshold_``, the cut placed on the training data by the
        ``threshold`` rule: see ``threshold_rule_``, ``working_point_`` and ``repr``), 0 = bulk."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def set_threshold_from(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Re-choose ``threshold_`` by this detector's rule from the scores of (training) data ``X``."""
        scores = self.decision_function(X)
        ya = self._validate_y(y, len(scores))
        wa = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.threshold_ = self._threshold_from(scores, ya, wa)
        self._record_working_point(scores, ya, wa)
        if ya is not None and np.unique(ya).size == 2:  # held-out labelled rows: a better calibration
            self._fit_gammaness(scores, ya, wa)
        return self.threshold_

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """scikit-learn's repr (changed parameters only) + the working point once fitted."""
        text = super().__repr__(N_CHAR_MAX)
        if not hasattr(self, "threshold_"):
            return text
        from rareflow.detectors.working_point import describe_working_point

        return f"{text}  # {describe_working_point(self)}"

    # -- fit guards: refuse what would make a silently useless model ------------------------------
    def _check_fit_inputs(self, X: np.ndarray, w: np.ndarray | None) -> None:
        """Enough rows, usable weights (finite, not all zero)."""
        if len(X) < self.min_train_rows:
            raise RareflowError(
                f"method '{self.name}' got {len(X)} training row(s); it needs at least {self.min_train_rows}: "
                "give it a larger table"
            )
        if w is not None:
            if not np.isfinite(w).all() or (w < 0).any():
                raise RareflowError(f"method '{self.name}': event weights must be finite and >= 0")
            with np.errstate(over="ignore"):
                total = float(w.sum())
            if not np.isfinite(total) or total <= 0:
                raise RareflowError(
                    f"method '{self.name}': the training event weights sum to {total:.3g}; "
                    "give positive weights of a sensible scale (or drop the weight column)"
                )

    def _check_fit_result(self, X: np.ndarray, w: np.ndarray | None) -> None:
        """Training scores and threshold must be finite: a NaN model would score every event NaN."""
        scores = np.asarray(self.decision_scores_, dtype=float)
        if np.isfinite(scores).all() and np.isfinite(self.threshold_):
            return
        n_bad = int((~np.isfinite(scores)).sum())
        raise RareflowError(
            f"method '{self.name}' produced {n_bad} non-finite training score(s) and threshold {self.threshold_:.3g}; "
            f"likely cause: {self._likely_culprit(X, w)}; rescale that column (or the weights) and retrain"
        )

    def _likely_culprit(self, X: np.ndarray, w: np.ndarray | None) -> str:
        """The column (or the weights) whose magnitude overflows float64 arithmetic."""
        if w is not None and float(np.max(w)) > 1e150:
            return f"event weights up to {float(np.max(w)):.3g}"
        with np.errstate(all="ignore"):
            mag = np.nanmax(np.abs(X), axis=0) if len(X) else np.zeros(X.shape[1])
        j = int(np.argmax(mag))
        names = getattr(self, "feature_names_in_", None)
        col = str(names[j]) if names is not None and len(names) == X.shape[1] else f"feature {j}"
        return f"column {short_repr(col)} with values up to {float(mag[j]):.3g}"

    # -- hooks for subclasses ------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _export(self) -> FittedState:
        raise NotImplementedError

    def _import(self, state: FittedState) -> None:
        raise NotImplementedError

    def _analytic_threshold(self, rule: ThresholdRule) -> float:
        """Cut on the *outlier* score for an analytic rule; methods with a known law override."""
        raise RareflowError(
            f"method '{self.name}' does not support threshold rule '{rule.rule}'; use rule: quantile"
        )

    # -- shared machinery ----------------------------------------------------------------------
    def _fit_on(self) -> Literal["bulk", "rare"]:
        fit_on = getattr(self, "fit_on", "bulk")
        if fit_on not in ("bulk", "rare"):
            raise RareflowError(
                f"method '{self.name}': fit_on={short(fit_on)} is invalid; a one-class method fits on bulk or rare (--fit-on bulk | rare)"
            )
        return fit_on

    def _sign(self) -> float:
        return -1.0 if self.kind == "one-class" and self._fit_on() == "rare" else 1.0

    def _public_score(self, X: np.ndarray) -> np.ndarray:
        return self._sign() * np.asarray(self._score(X), dtype=float)

    def _record_working_point(
        self, scores: np.ndarray, y: np.ndarray | None, w: np.ndarray | None, other: tuple | None = None
    ) -> None:
        """``threshold_rule_`` (which rule placed the cut) and ``working_point_`` (its efficiencies here).

        ``other``: (X, y, w) of the labelled rows a one-class fit left out, scored here so the
        working point also says what the cut does to the other class.
        """
        from rareflow.detectors.working_point import rule_text, working_point

        single = self._fit_on() if self.kind == "one-class" else None
        is_rare = np.full(len(scores), single == "rare") if y is None else np.asarray(y).astype(bool)
        self.threshold_rule_ = rule_text(self._threshold_rule(), bool((~is_rare).any()), bool(is_rare.any()))
        if other is not None and len(other[1]):
            own = np.full(len(scores), 1 if single == "rare" else 0)
            scores = np.concatenate([scores, self._public_score(other[0])])
            y = np.concatenate([own, other[1]])
            w = None if w is None else np.concatenate([w, other[2]])
        self.working_point_ = working_point(scores, y, w, self.threshold_, single)

    def _threshold_rule(self) -> ThresholdRule:
        spec = getattr(self, "threshold", None)
        return parse_rule(spec if spec is not None else self.default_threshold)

    def _threshold_from(self, scores: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> float:
        rule = self._threshold_rule()
        if rule.rule != "quantile":
            if self.kind != "one-class":
                raise RareflowError(f"threshold rule '{rule.rule}' applies to one-class methods only; use quantile")
            return self._sign() * self._analytic_threshold(rule)
        single = self._fit_on() if self.kind == "one-class" else None
        return quantile_threshold(scores, y, rule, w, single_class=single)

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            names = [str(c) for c in X.columns]
            if reset:
                self.feature_names_in_ = np.asarray(names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                expected = [str(c) for c in self.feature_names_in_]
                missing = [c for c in expected if c not in names]
                if missing:
                    raise RareflowError(
                        f"the data lacks feature column(s) {missing} that the '{self.name}' model was trained on; "
                        "score a table with the same features"
                    )
                X = X[expected]
            arr = X.to_numpy(dtype=float)
        else:
            arr = np.asarray(X, dtype=float)
            if reset and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        if arr.ndim != 2:
            raise RareflowError(f"expected a 2-D table of features, got shape {arr.shape}")
        if reset:
            if arr.shape[0] == 0:
                raise RareflowError(f"method '{self.name}' got an empty training table")
            self.n_features_in_ = arr.shape[1]
        elif arr.shape[1] != self.n_features_in_:
            raise RareflowError(
                f"the '{self.name}' model expects {self.n_features_in_} features, the data has {arr.shape[1]}"
            )
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise RareflowError(
                f"non-finite value at row {int(bad[0])}, feature {int(bad[1])}; drop or fix NaN/inf rows first"
            )
        return arr

    @staticmethod
    def _validate_y(y: Any, n: int) -> np.ndarray | None:
        if y is None:
            return None
        ya = np.asarray(y).astype(np.int64).ravel()
        if len(ya) != n:
            raise RareflowError(f"labels have {len(ya)} rows but the features have {n}")
        if not np.isin(ya, (0, 1)).all():
            raise RareflowError("labels must be 1 (rare) or 0 (bulk)")
        return ya
