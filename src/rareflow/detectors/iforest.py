"""``iforest``: Isolation Forest (Liu, Ting & Zhou 2008), scikit-learn's implementation.

Outlier score = :math:`-\\,\\mathrm{score\\_samples}(x)`, i.e. :math:`2^{-E[h(x)]/c(n)}`: points
isolated by few random splits are anomalous. One-class; no distributional assumption, but it
sees "far from the training class" only, like every one-class method.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import IsolationForest

from rareflow.detectors import register
from rareflow.detectors._sklearn import dump_sklearn, load_sklearn
from rareflow.detectors.base import Detector, FittedState, Kind
from rareflow.detectors.params import Number

_TRUSTED = frozenset({"sklearn.tree._tree.Tree"})


@register
class IsolationForestDetector(Detector):
    """One-class isolation forest; ``n_estimators``/``max_samples`` as in scikit-learn."""

    name: ClassVar[str] = "iforest"
    kind: ClassVar[Kind] = "one-class"
    param_specs: ClassVar[dict[str, Any]] = {
        "n_estimators": Number(integer=True, low=1),
        "max_samples": Number(low=0, low_open=True, words=("auto",)),
        "n_jobs": Number(integer=True, none_ok=True),
    }

    def __init__(
        self,
        fit_on: str = "bulk",
        n_estimators: int = 200,
        max_samples: int | float | str = "auto",
        random_state: int = 0,
        n_jobs: int | None = None,
        threshold: dict[str, Any] | None = None,
    ) -> None:
        self._store(locals())

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(X, sample_weight=sample_weight)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(X)

    def _export(self) -> FittedState:
        return FittedState(blobs={"model.skops": dump_sklearn(self.model_)})

    def _import(self, state: FittedState) -> None:
        self.model_ = load_sklearn(state.blobs["model.skops"], _TRUSTED)
