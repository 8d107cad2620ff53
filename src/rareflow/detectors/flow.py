"""``flow``: one-class normalizing flow (RealNVP / MAF / NSF on zuko) with three scores.

The flow learns the density of its training class (``fit_on``) in the original feature space,

.. math:: \\log p(x) = \\log N(z; 0, I_d) + \\log|\\det \\partial z / \\partial x|, \\qquad z = f(T(x)),

with the stored preprocessing :math:`T` (log of heavy-tailed positive columns, robust
standardisation, dequantisation of integer columns). Outlier scores (``score``):

* ``nll`` — :math:`-\\log p(x)` (default);
* ``latent_norm`` — :math:`\\lVert z \\rVert`, :math:`\\sim \\chi_d` for the training class;
* ``latent_mahalanobis`` — :math:`d_M(z)` with the training latent mean and covariance (the
  seed's :math:`d_M` in latent space), also :math:`\\approx \\chi_d`.

Thresholds: ``quantile`` (all scores) from the training scores, and the analytic ``k_sigma``
(:math:`r > E[\\chi_d] + k\\,\\mathrm{sd}[\\chi_d]`) and ``chi2`` (:math:`r^2 > \\chi^2_{d,1-\\alpha}`)
rules for the two latent radii. The NLL has no known law, so an analytic rule with
``score: nll`` is refused before training.

Papers: Dinh et al. 2017 (RealNVP), Papamakarios et al. 2017 (MAF), Durkan et al. 2019 (NSF),
Kirichenko et al. 2020 (why flows fail at OOD detection). See ``docs/flows.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from rareflow.detectors import register
from rareflow.detectors._flowbase import FLOW_SPECS, FlowBase
from rareflow.detectors.base import FittedState, Kind
from rareflow.detectors.mahalanobis import gaussian_cut
from rareflow.detectors.params import Choice, Number
from rareflow.errors import RareflowError
from rareflow.detectors.thresholds import ThresholdRule
from rareflow.flows.losses import nll_loss, trimmed_nll_loss
from rareflow.flows.scores import SCORES, LatentGaussian, all_scores, chi_tail, latent_norm
from rareflow.outliers.support import training_box
from rareflow.seeding import derive_seed
from rareflow.training import torch_threads


@register
class FlowDetector(FlowBase):
    """One-class normalizing flow; outlier score ``nll`` | ``latent_norm`` | ``latent_mahalanobis``.

    Defaults (RealNVP, 8 couplings of (128, 128) with ELU, 100 epochs of batch 256 with early
    stopping on the 1%-trimmed validation NLL) were chosen on MAGIC: fit on gammas, test AUC
    0.889-0.894 over seeds, ~10-30 s on 2 CPU cores; see ``docs/flows.md`` for what was tried.
    Training settings: ``training`` (:class:`rareflow.training.TrainConfig`, its defaults).
    """

    name: ClassVar[str] = "flow"
    kind: ClassVar[Kind] = "one-class"
    param_specs: ClassVar[dict[str, Any]] = {
        **FLOW_SPECS, "val_trim": Number(low=0, high=0.5, high_open=True), "score": Choice(SCORES),
    }  # fmt: skip

    def __init__(
        self,
        fit_on: str = "bulk",
        flow: str = "realnvp",
        transforms: int = 8,
        hidden: Sequence[int] = (128, 128),
        activation: str = "elu",
        bins: int = 8,
        val_trim: float = 0.01,
        score: str = "nll",
        log_features: Sequence[str] | bool | None = None,
        dequantize: Sequence[str] | bool | None = None,
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    def _check_params(self) -> None:
        rule = self._threshold_rule()
        if rule.rule != "quantile" and self.score == "nll":
            raise RareflowError(
                f"threshold rule '{rule.rule}' needs a score with a known law, but the flow's nll has none; "
                "use score: latent_norm or latent_mahalanobis (chi_d radius), or rule: quantile"
            )

    # -- the template's hooks ----------------------------------------------------------------------
    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> Any:
        return self._new_flow(self._preprocessor(X))

    def _loss(self) -> Any:
        return nll_loss

    def _val_loss(self) -> Any:
        return trimmed_nll_loss(float(self.val_trim))

    def _description(self) -> str:
        return f"flow ({self.flow})"

    def _after_fit(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> None:
        self.latent_ = LatentGaussian.fit(self._latent_and_log_prob(X)[1], w)
        self.support_ = training_box(X)  # where generated outliers may land (rareflow.outliers.support)

    def _score_batch(self, x: Tensor) -> Tensor:
        if self.score == "nll":
            return self._nll_batch(x)
        z = self.model_.transform(x)
        return z.norm(dim=-1) if self.score == "latent_norm" else z  # mahalanobis: numpy, below

    def _score(self, X: np.ndarray) -> np.ndarray:
        out = self._predict(self._score_batch, X)
        return self.latent_.mahalanobis(out) if self.score == "latent_mahalanobis" else out

    def _latent_and_log_prob(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._predict(lambda x: torch.cat([t.reshape(len(x), -1) for t in self.model_.transform_and_log_prob(x)[::-1]], 1), X)
        return out[:, 0], out[:, 1:]

    def _analytic_threshold(self, rule: ThresholdRule) -> float:
        if self.score == "nll":
            raise RareflowError(
                f"threshold rule '{rule.rule}' needs score latent_norm or latent_mahalanobis; nll has no known law"
            )
        return float(np.sqrt(gaussian_cut(rule, int(self.n_features_in_))))  # chi_d radius: sqrt of the chi2 cut

    # -- extra outputs ---------------------------------------------------------------------------
    def score_samples_all(self, X: Any) -> dict[str, np.ndarray]:
        """All three scores of ``X`` from one pass, each signed like :meth:`decision_function`
        (higher = rarer): ``{"nll", "latent_norm", "latent_mahalanobis"}``."""
        lp, z = self._latent_and_log_prob(self._checked(X))
        return {k: self._sign() * v for k, v in all_scores(lp, z, self.latent_).items()}

    def log_prob(self, X: Any) -> np.ndarray:
        """:math:`\\log p(x)` in the original feature space (nats), per row."""
        return self._log_prob(self._checked(X))

    def transform(self, X: Any) -> np.ndarray:
        """Latent points :math:`z = f(T(x))` (standard normal for the training class)."""
        return self._predict(self.model_.transform, self._checked(X))

    def tail_probability(self, X: Any) -> np.ndarray:
        """:math:`P(\\chi_d > \\lVert z \\rVert)`: tail probability of the latent radius."""
        return chi_tail(latent_norm(self.transform(X)), int(self.n_features_in_))

    def sample(self, n: int, random_state: int | None = None) -> np.ndarray:
        """``n`` draws from the learnt density in data space (integer columns rounded)."""
        model = self._fitted_model()
        gen = torch.Generator(device=self._device())
        gen.manual_seed(derive_seed(0 if random_state is None else random_state, "flow-sample"))
        with torch_threads(self.training_config().n_threads), torch.inference_mode():
            model.eval()
            return model.sample(int(n), generator=gen).double().cpu().numpy()

    # -- persistence -----------------------------------------------------------------------------
    def _export_extra(self, state: FittedState) -> None:
        state.arrays["latent_mean"] = self.latent_.mean
        state.arrays["latent_covariance"] = self.latent_.covariance
        state.arrays["support"] = self.support_

    def _import_extra(self, state: FittedState) -> None:
        self.latent_ = LatentGaussian(mean=state.arrays["latent_mean"], covariance=state.arrays["latent_covariance"])
        self.support_ = state.arrays.get("support")  # None in files saved before it
