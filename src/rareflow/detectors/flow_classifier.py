"""``flow-classifier``: class-conditional normalizing flows and their likelihood ratio.

Two densities are learnt, one per class, by maximum likelihood — two separate flows
(``mode="two-flows"``) or one flow with the class as a one-hot context (``mode="conditional"``,
the couplings share their weights) — and an event is scored by the log-likelihood ratio,

.. math:: s(x) = \\log p(x \\mid \\mathrm{rare}) - \\log p(x \\mid \\mathrm{bulk}) \\;\\big[+ \\log\\tfrac{\\pi}{1-\\pi}\\big],

which by the Neyman-Pearson lemma is the most powerful selection when the densities are exact.
With ``rare_fraction`` = :math:`\\pi` (the rare fraction expected at test time) the score is the
posterior log-odds; without it the constant is left out (the ranking is the same). Both flows
share one fitted preprocessing, so its Jacobian cancels in the ratio.

``discriminative`` = :math:`\\lambda > 0` adds :math:`\\lambda` times the cross-entropy of the
ratio logit to the class NLL (hybrid generative-discriminative training; Nalisnick et al., ICML
2019): the densities stay normalised, but training also rewards the ratio for ranking the
training events correctly. ``predict_proba`` is calibrated by Platt scaling of the score on the
internal validation rows (prior-shifted to ``rare_fraction`` when given).

Papers: Neyman & Pearson 1933; Dinh et al. 2017 (RealNVP); Nachman & Shih 2020 (likelihood-ratio
anomaly detection with conditional flows, "ANODE"). See ``docs/flow-classifier.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from sklearn.linear_model import LogisticRegression
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors._flowfit import (
    check_flow_params,
    fit_preprocessor,
    make_batch,
    make_flow,
    prefixed,
    run_training,
    seed_of,
    small_history,
)
from rareflow.detectors.base import Detector, FittedState, Kind
from rareflow.errors import RareflowError
from rareflow.flows.model import FlowModel, one_hot
from rareflow.flows.selfsup import class_nll_loss, log_odds
from rareflow.flows.train import resolve_device, split_indices, torch_threads

MODES = ("two-flows", "conditional")


class ClassFlows(nn.Module):
    """``log p(x | 0)`` and ``log p(x | 1)`` from an ensemble of class-density members.

    A member is one conditional flow with a one-hot class context (``conditional=True``) or a
    pair of flows (bulk, rare). With several members the class log-likelihood is their mean
    (a geometric mean of the member densities; Lakshminarayanan et al. 2017 for deep ensembles).
    """

    def __init__(self, models: Sequence[FlowModel], conditional: bool) -> None:
        super().__init__()
        per = 1 if conditional else 2
        if len(models) < per or len(models) % per:
            raise RareflowError("ClassFlows takes conditional flows, or (bulk, rare) pairs of flows")
        self.conditional = bool(conditional)
        self.models = nn.ModuleList(models)

    @property
    def members(self) -> int:
        return len(self.models) if self.conditional else len(self.models) // 2

    def _member_log_prob(self, k: int, x: Tensor, cls: int) -> Tensor:
        if self.conditional:
            ctx = x.new_zeros(len(x), 2)
            ctx[:, cls] = 1.0
            return self.models[k].log_prob(x, ctx)
        return self.models[2 * k + cls].log_prob(x)

    def class_log_prob(self, x: Tensor, cls: int) -> Tensor:
        """:math:`\\log p(x \\mid \\mathrm{class})` in the original feature space (member mean)."""
        return torch.stack([self._member_log_prob(k, x, cls) for k in range(self.members)]).mean(0)

    def log_prob_pair(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(log p(x|bulk), log p(x|rare))``."""
        return self.class_log_prob(x, 0), self.class_log_prob(x, 1)

    def evaluate_pair(self, X: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Both class log-likelihoods of numpy rows, batched, float64, member mean."""
        out = [np.zeros(len(X)), np.zeros(len(X))]
        for cls in (0, 1):
            for k in range(self.members):
                if self.conditional:
                    ctx = one_hot(np.full(len(X), cls), 2).numpy()
                    lp = self.models[k].evaluate(X, ctx, batch_size=batch_size, latent=False)["log_prob"]
                else:
                    lp = self.models[2 * k + cls].evaluate(X, batch_size=batch_size, latent=False)["log_prob"]
                out[cls] += lp / self.members
        return out[0], out[1]


@register
class FlowClassifier(Detector):
    """Likelihood ratio of class-conditional flows (two-class, needs labels).

    Defaults: an ensemble of 5 conditional RealNVPs (8 couplings of (128, 128), ELU, class as
    one-hot context) on a shared preprocessing, early stopping on the 1%-trimmed class NLL of a 20% validation split of the training data.
    See ``docs/flow-classifier.md`` for how they were chosen and the MAGIC results.
    """

    name: ClassVar[str] = "flow-classifier"
    kind: ClassVar[Kind] = "two-class"
    requires_labels: ClassVar[bool] = True

    def __init__(
        self,
        mode: str = "conditional",
        ensemble: int = 5,
        flow: str = "realnvp",
        transforms: int = 8,
        hidden: Sequence[int] = (128, 128),
        activation: str = "elu",
        bins: int = 8,
        discriminative: float = 0.0,
        rare_fraction: float | None = None,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        schedule: str = "cosine",
        clip_grad: float | None = 5.0,
        patience: int = 10,
        validation_fraction: float = 0.2,
        val_trim: float = 0.01,
        log_features: Sequence[str] | bool | None = None,
        dequantize: Sequence[str] | bool | None = None,
        threshold: dict[str, Any] | None = None,
        random_state: int | None = 0,
        device: str = "cpu",
        n_threads: int | None = None,
        score_batch_size: int = 2048,
        on_divergence: str = "raise",
        progress: bool = True,
    ) -> None:
        self.mode = mode
        self.ensemble = ensemble
        self.flow = flow
        self.transforms = transforms
        self.hidden = hidden
        self.activation = activation
        self.bins = bins
        self.discriminative = discriminative
        self.rare_fraction = rare_fraction
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.clip_grad = clip_grad
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.val_trim = val_trim
        self.log_features = log_features
        self.dequantize = dequantize
        self.threshold = threshold
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.score_batch_size = score_batch_size
        self.on_divergence = on_divergence
        self.progress = progress

    # -- fitting ---------------------------------------------------------------------------------
    def _check_params(self) -> None:
        check_flow_params(self)
        if self.mode not in MODES:
            raise RareflowError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.rare_fraction is not None and not 0.0 < float(self.rare_fraction) < 1.0:
            raise RareflowError(f"rare_fraction must be in (0, 1) or null, got {self.rare_fraction}")
        if int(self.ensemble) < 1:
            raise RareflowError(f"ensemble must be >= 1, got {self.ensemble}")
        if float(self.discriminative) < 0:
            raise RareflowError(f"discriminative must be >= 0, got {self.discriminative}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        self._check_params()
        assert y is not None
        pre = fit_preprocessor(self, X)
        conditional = self.mode == "conditional"
        models = []
        for m in range(int(self.ensemble)):
            if conditional:
                models.append(make_flow(self, pre, context=2, key=f"flow-init-{m}"))
            else:
                models += [make_flow(self, pre, key=f"flow-init-{m}-{k}") for k in (0, 1)]
        for model in models[1:]:  # one preprocessing, each model its own copy
            model.pre.load_state_dict(models[0].pre.state_dict())
        self.model_ = ClassFlows(models, conditional)
        tr, va = _stratified_split(y, float(self.validation_fraction), seed_of(self, "split"))
        w = None if sample_weight is None else sample_weight.astype(np.float32)
        prior = log_odds(_fraction(y[tr], None if w is None else w[tr]))
        lam = float(self.discriminative)
        self.history_ = run_training(
            self, self.model_, class_nll_loss(lam, prior),
            make_batch(X, tr, y.astype(np.float32), w), make_batch(X, va, y.astype(np.float32), w),
            class_nll_loss(lam, prior, trim=float(self.val_trim)), f"flow-classifier ({self.mode})",
        )  # fmt: skip
        self.train_log_prior_ = prior
        self._fit_calibration(X[va] if len(va) else X[tr], y[va] if len(va) else y[tr])

    def _fit_calibration(self, X: np.ndarray, y: np.ndarray) -> None:
        """Platt scaling :math:`P(\\mathrm{rare}|x) = \\sigma(a\\,s + b)` of the bare ratio on held-out rows."""
        s = self._ratio(X) if len(np.unique(y)) == 2 else None
        if s is None or not np.isfinite(s).all():
            self.calibration_ = np.array([1.0, log_odds(max(min(float(y.mean()), 1 - 1e-6), 1e-6))])
        else:
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.clip(s, -1e3, 1e3)[:, None], y)
            self.calibration_ = np.array([float(lr.coef_[0, 0]), float(lr.intercept_[0])])
        self.calibration_prior_ = log_odds(max(min(float(y.mean()), 1 - 1e-6), 1e-6))

    # -- scoring ---------------------------------------------------------------------------------
    def _pair(self, X: np.ndarray) -> np.ndarray:
        with torch_threads(self.n_threads):
            lp0, lp1 = self.model_.evaluate_pair(X, int(self.score_batch_size))
        return np.column_stack([lp0, lp1])

    def _ratio(self, X: np.ndarray) -> np.ndarray:
        lp = self._pair(X)
        return lp[:, 1] - lp[:, 0]

    def class_log_prob(self, X: Any) -> np.ndarray:
        """``(n, 2)``: :math:`\\log p(x \\mid \\mathrm{bulk})`, :math:`\\log p(x \\mid \\mathrm{rare})` per row."""
        return self._pair(self._checked(X))

    def log_likelihood_ratio(self, X: Any) -> np.ndarray:
        """:math:`\\log p(x|\\mathrm{rare}) - \\log p(x|\\mathrm{bulk})` without any prior term."""
        return self._ratio(self._checked(X))

    def _score(self, X: np.ndarray) -> np.ndarray:
        s = self._ratio(X)
        return s + log_odds(float(self.rare_fraction)) if self.rare_fraction is not None else s

    def predict_proba(self, X: Any, rare_fraction: float | None = None) -> np.ndarray:
        """Calibrated class probabilities, columns (bulk, rare), for rare fraction ``rare_fraction``
        (default: the detector's ``rare_fraction``, else the training mix)."""
        pi = rare_fraction if rare_fraction is not None else self.rare_fraction
        a, b = self.calibration_
        shift = 0.0 if pi is None else log_odds(float(pi)) - self.calibration_prior_
        s = np.clip(self.log_likelihood_ratio(X), -1e3, 1e3)
        p = 1.0 / (1.0 + np.exp(-(a * s + b + shift)))
        return np.column_stack([1.0 - p, p])

    def _checked(self, X: Any) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise RareflowError("the flow-classifier is not fitted; call fit first")
        return self._validate_X(X, reset=False)

    # -- persistence -----------------------------------------------------------------------------
    def _export(self) -> FittedState:
        state = FittedState(json={
            "models": [], "conditional": self.model_.conditional, "history": small_history(self.history_),
            "train_log_prior": self.train_log_prior_,
            "calibration_prior": self.calibration_prior_,
        })  # fmt: skip
        for k, model in enumerate(self.model_.models):
            json, arrays = model.to_state()
            state.json["models"].append(json)
            state.arrays.update({f"model{k}/{name}": v for name, v in arrays.items()})
        state.arrays["calibration"] = np.asarray(self.calibration_, dtype=float)
        return state

    def _import(self, state: FittedState) -> None:
        models = [FlowModel.from_state(j, prefixed(state.arrays, f"model{k}/")) for k, j in enumerate(state.json["models"])]
        self.model_ = ClassFlows(models, bool(state.json["conditional"])).to(resolve_device(self.device)).eval()
        self.history_ = state.json.get("history", {})
        self.train_log_prior_ = float(state.json["train_log_prior"])
        self.calibration_prior_ = float(state.json["calibration_prior"])
        self.calibration_ = np.asarray(state.arrays["calibration"], dtype=float)


def _fraction(y: np.ndarray, w: np.ndarray | None) -> float:
    """(Weighted) rare fraction, kept inside (0, 1)."""
    f = float(np.average(y, weights=w)) if len(y) else 0.5
    return min(max(f, 1e-6), 1 - 1e-6)


def _stratified_split(y: np.ndarray, fraction: float, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) indices with the class mix kept in both."""
    parts = []
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        tr, va = split_indices(len(idx), fraction, None if seed is None else seed + cls)
        parts.append((idx[tr], idx[va]))
    return np.sort(np.concatenate([p[0] for p in parts])), np.sort(np.concatenate([p[1] for p in parts]))
