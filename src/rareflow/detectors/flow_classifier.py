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
from rareflow.detectors._flowbase import FLOW_SPECS, FlowBase
from rareflow.detectors.base import FittedState, Kind
from rareflow.detectors.params import Choice, Number
from rareflow.errors import RareflowError
from rareflow.flows.ensemble import class_context_nll_loss, train_ensemble
from rareflow.flows.losses import nll_loss, trimmed_nll_loss
from rareflow.flows.model import FlowModel
from rareflow.flows.selfsup import class_nll_loss, log_odds
from rareflow.training import (
    SPLIT,
    TRAIN,
    Batch,
    TrainConfig,
    apply_policy,
    fit_model,
    module_arrays,
    small_history,
    stratified_split,
)

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


@register
class FlowClassifier(FlowBase):
    """Likelihood ratio of class-conditional flows (two-class, needs labels).

    Defaults: an ensemble of 5 conditional RealNVPs (8 couplings of (64, 64), ELU, class as
    one-hot context) on a shared preprocessing, early stopping on the 1%-trimmed class NLL of a
    20% validation split of the training data (stratified by class).
    See ``docs/flow-classifier.md`` for how they were chosen and the MAGIC results.

    Training (:func:`rareflow.flows.ensemble.train_ensemble`): the members are independent deep-ensemble
    members (own initialisation, own data order under the seed key ``TRAIN`` + member index, own
    early stopping), trained as ONE stacked network in one loop. ``conditional``: the one-pass
    class NLL (each row under its own class); ``two-flows``: a bulk ensemble on the bulk rows and a
    rare ensemble on the rare rows; ``discriminative`` > 0 couples the two class densities, so each
    member is then the pair / the class view of its flow, still stacked. ``schedule: plateau``
    (one learning rate per member) trains the members one after another with the same seeds.
    """

    name: ClassVar[str] = "flow-classifier"
    kind: ClassVar[Kind] = "two-class"
    requires_labels: ClassVar[bool] = True
    param_specs: ClassVar[dict[str, Any]] = {
        **FLOW_SPECS, "mode": Choice(MODES), "ensemble": Number(integer=True, low=1, high=100),
        "discriminative": Number(low=0), "rare_fraction": Number(low=0, high=1, low_open=True, high_open=True, none_ok=True),
        "val_trim": Number(low=0, high=0.5, high_open=True),
    }  # fmt: skip

    def __init__(
        self,
        mode: str = "conditional",
        ensemble: int = 5,
        flow: str = "realnvp",
        transforms: int = 8,
        hidden: Sequence[int] = (64, 64),
        activation: str = "elu",
        bins: int = 8,
        discriminative: float = 0.0,
        rare_fraction: float | None = None,
        val_trim: float = 0.01,
        log_features: Sequence[str] | bool | None = None,
        dequantize: Sequence[str] | bool | None = None,
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    # -- fitting ---------------------------------------------------------------------------------
    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> ClassFlows:
        pre = self._preprocessor(X)
        conditional = self.mode == "conditional"
        per_member = [2] if conditional else [0, 0]
        models = [self._new_flow(pre, context=c) for _ in range(int(self.ensemble)) for c in per_member]
        for model in models[1:]:  # one preprocessing, each model its own copy
            model.pre.load_state_dict(models[0].pre.state_dict())
        assert y is not None
        self.train_log_prior_ = log_odds(_fraction(y, w))
        return ClassFlows(models, conditional)

    def _training_rows(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        return X, y, w

    def _split(self, X: np.ndarray, label: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        assert label is not None
        self._rows = stratified_split(label, self.training_config().validation_fraction, self._seed(SPLIT))
        return self._rows

    def _loss(self) -> Any:
        return class_nll_loss(float(self.discriminative), self.train_log_prior_)

    def _val_loss(self) -> Any:
        return class_nll_loss(float(self.discriminative), self.train_log_prior_, trim=float(self.val_trim))

    def _train(self, model: ClassFlows, loss: Any, train: Batch, valid: Batch | None, val_loss: Any,  # type: ignore[override]
               description: str, epochs: int | None = None, key: str = TRAIN) -> dict[str, Any]:  # fmt: skip
        """The members as deep-ensemble members, stacked (see the class docstring); one history each."""
        cfg = self.training_config()
        valid = valid if valid is not None and len(valid) else None
        if self.mode == "two-flows" and float(self.discriminative) <= 0:
            return {side: self._fit_members(list(model.models)[c::2], nll_loss, trimmed_nll_loss(float(self.val_trim)),
                                            None, _rows(train, c), _rows(valid, c), cfg, f"{description} {side}", (key, side))
                    for c, side in enumerate(("bulk", "rare"))}  # fmt: skip
        if self.mode == "two-flows":  # hybrid loss: the (bulk, rare) pair of a member trains together
            members: list[nn.Module] = [ClassFlows(model.models[2 * k : 2 * k + 2], False) for k in range(model.members)]
            return {"members": self._fit_members(members, loss, val_loss, None, train, valid, cfg, description, (key,))}
        if float(self.discriminative) > 0:
            wrap = lambda m: ClassFlows([m], conditional=True)  # noqa: E731
            return {"members": self._fit_members(list(model.models), loss, val_loss, wrap, train, valid, cfg, description, (key,))}
        trim = float(self.val_trim)
        return {"members": self._fit_members(list(model.models), class_context_nll_loss(), class_context_nll_loss(trim=trim),
                                             None, train, valid, cfg, description, (key,))}  # fmt: skip

    def _fit_members(self, members: list[nn.Module], loss: Any, val_loss: Any, wrap: Any, train: Batch | None,
                     valid: Batch | None, cfg: TrainConfig, description: str, key: tuple[str, ...]) -> list[dict[str, Any]]:  # fmt: skip
        """Train ``members`` stacked (or one after another for ``schedule: plateau``) under the divergence policy."""
        seeds = [self._member_seed(*key, k) for k in range(len(members))]
        if train is None or len(train) == 0:
            raise RareflowError(f"{description}: no training rows of this class; give rows of both classes")
        if cfg.schedule == "plateau":
            return [fit_model(wrap(m) if wrap else m, loss, train, valid, cfg, seed=s, val_loss_fn=val_loss,
                              description=description) for m, s in zip(members, seeds)]  # fmt: skip
        run = lambda: train_ensemble(  # noqa: E731
            members, loss, train, valid, val_loss_fn=val_loss, wrap=wrap, epochs=cfg.epochs, batch_size=cfg.batch_size,
            lr=cfg.lr, weight_decay=cfg.weight_decay, schedule=cfg.schedule, clip_grad=cfg.clip_grad,
            patience=cfg.patience, min_delta=cfg.min_delta, seeds=seeds, n_threads=cfg.n_threads, device=cfg.device,
            progress=cfg.progress, description=description,
        )  # fmt: skip
        return apply_policy(lambda: {"members": run()}, cfg.on_divergence)["members"]

    def _member_seed(self, *key: str | int) -> int:
        """Data-order seed of one member (``TRAIN``, [side,] member index); fresh entropy without ``random_state``."""
        seed = self._seed(*key)  # type: ignore[arg-type]
        return int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)

    def _description(self) -> str:
        return f"flow-classifier ({self.mode})"

    def _after_fit(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> None:
        """Platt scaling :math:`P(\\mathrm{rare}|x) = \\sigma(a\\,s + b)` of the bare ratio on held-out rows."""
        assert y is not None
        tr, va = self.__dict__.pop("_rows")
        rows = va if len(va) else tr
        Xc, yc = X[rows], y[rows]
        s = self._ratio(Xc) if len(np.unique(yc)) == 2 else None
        prior = log_odds(max(min(float(yc.mean()), 1 - 1e-6), 1e-6))
        if s is None or not np.isfinite(s).all():
            self.calibration_ = np.array([1.0, prior])
        else:
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.clip(s, -1e3, 1e3)[:, None], yc)
            self.calibration_ = np.array([float(lr.coef_[0, 0]), float(lr.intercept_[0])])
        self.calibration_prior_ = prior

    # -- scoring ---------------------------------------------------------------------------------
    def _pair(self, X: np.ndarray) -> np.ndarray:
        return self._predict(lambda x: torch.stack(self.model_.log_prob_pair(x), dim=1), X)

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

    # -- persistence: one flow per member (and class), as in files saved before TorchDetector ----------
    def _export(self) -> FittedState:
        state = FittedState(json={
            "models": [m.to_state()[0] for m in self.model_.models], "conditional": self.model_.conditional,
            "history": small_history(self.history_), "train_log_prior": self.train_log_prior_,
            "calibration_prior": self.calibration_prior_,
        })  # fmt: skip
        for k, model in enumerate(self.model_.models):
            state.arrays.update(module_arrays(model, f"model{k}/"))
        state.arrays["calibration"] = np.asarray(self.calibration_, dtype=float)
        return state

    def _import(self, state: FittedState) -> None:
        models = [self._load_flow(j, state.arrays, f"model{k}/") for k, j in enumerate(state.json["models"])]
        self.model_ = ClassFlows(models, bool(state.json["conditional"])).eval()
        self.history_ = state.json.get("history", {})
        self.train_log_prior_ = float(state.json["train_log_prior"])
        self.calibration_prior_ = float(state.json["calibration_prior"])
        self.calibration_ = np.asarray(state.arrays["calibration"], dtype=float)


def _rows(data: Batch | None, cls: int) -> Batch | None:
    """The rows of class ``cls`` (label 0 bulk / 1 rare); None when there are none."""
    if data is None or data.label is None:
        return None
    part = data.index((data.label > 0) == bool(cls))
    return part if len(part) else None


def _fraction(y: np.ndarray, w: np.ndarray | None) -> float:
    """(Weighted) rare fraction, kept inside (0, 1)."""
    f = float(np.average(y, weights=w)) if len(y) else 0.5
    return min(max(f, 1e-6), 1 - 1e-6)
