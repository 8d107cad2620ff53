"""``nn-classifier``: a multilayer perceptron trained on rare vs bulk, the discriminative reference.

The flows' preprocessing (log of heavy-tailed positive columns, robust standardisation; fitted on
the training rows and stored with the model) feeds an MLP with ReLU layers and dropout, trained
through the same loop as the flows (AdamW, cosine schedule, early stopping on the validation
loss, NaN guard) on the class-balanced binary cross-entropy

.. math:: L = -\\sum_i w_i \\big[y_i \\log \\sigma(f(x_i)) + (1-y_i) \\log(1-\\sigma(f(x_i)))\\big] \\big/ \\sum_i w_i,

with :math:`w_i` the event weight times :math:`1/(2 n_{y_i})`. The score is the logit
:math:`f(x)`, an estimate of :math:`\\log p(x|\\mathrm{rare}) - \\log p(x|\\mathrm{bulk})` — the
quantity ``flow-classifier`` computes generatively — so the two are directly comparable at the
same training budget (epochs, early stopping, validation split).

Reference: Bishop 2006, ch. 4-5 (logistic outputs estimate posterior log-odds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors.base import Kind
from rareflow.detectors.params import Flag, Names, Number, Sizes
from rareflow.detectors.torch_base import TorchDetector
from rareflow.flows.preprocessing import Preprocessor
from rareflow.nets.mlp import MLP
from rareflow.training import Batch, class_balanced_weights, weighted_mean


class ClassifierNet(nn.Module):
    """Stored preprocessing :math:`T` then an MLP: logit :math:`f(T(x))`."""

    def __init__(self, pre: Preprocessor, hidden: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.pre = pre
        self.mlp = MLP(pre.n_features, 1, hidden, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.pre(x)[0].to(x.dtype)).squeeze(-1)


def bce_loss(model: nn.Module, batch: Batch) -> Tensor:
    """Weighted binary cross-entropy with logits (``batch.label`` 1 = rare)."""
    assert batch.label is not None
    per_row = F.binary_cross_entropy_with_logits(model(batch.x), batch.label, reduction="none")
    return weighted_mean(per_row, batch.weight)


@register
class NNClassifier(TorchDetector):
    """MLP rare-vs-bulk classifier; score = logit (higher = rarer).

    Defaults (3 layers of 256, dropout 0.1, batch 256, lr 1e-3, up to 100 epochs with early
    stopping) give it at least the parameter count and the training budget of ``flow-classifier``.
    """

    name: ClassVar[str] = "nn-classifier"
    kind: ClassVar[Kind] = "supervised"
    requires_labels: ClassVar[bool] = True
    training_defaults: ClassVar[dict[str, Any]] = {"weight_decay": 1e-4, "score_batch_size": 8192}
    weights_prefix: ClassVar[str] = "net/"
    param_specs: ClassVar[dict[str, Any]] = {
        "hidden": Sizes(), "dropout": Number(low=0, high=1, high_open=True), "balance": Flag(), "log_features": Names(),
    }  # fmt: skip

    def __init__(
        self,
        hidden: Sequence[int] = (256, 256, 256),
        dropout: float = 0.1,
        balance: bool = True,
        log_features: Sequence[str] | bool | None = None,
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> ClassifierNet:
        names = getattr(self, "feature_names_in_", None)
        pre = Preprocessor.fit(X, feature_names=None if names is None else [str(c) for c in names],
                               log_features=self.log_features, dequantize=False)  # fmt: skip
        return ClassifierNet(pre, tuple(self.hidden), float(self.dropout))

    def _training_rows(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Labels as the target; with ``balance`` each class gets half of the total weight."""
        assert y is not None
        w = class_balanced_weights(y, w, bool(self.balance))
        return X, y, w

    def _loss(self) -> Any:
        return bce_loss

    def _score_batch(self, x: Tensor) -> Tensor:
        return self.model_(x)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (bulk, rare) for the training class mix (balanced when ``balance``)."""
        s = self.decision_function(X)
        p = 1.0 / (1.0 + np.exp(-np.clip(s, -500, 500)))
        return np.column_stack([1.0 - p, p])

    def _arch(self) -> dict[str, Any]:
        m = self.model_.mlp
        return {"hidden": list(m.hidden), "dropout": m.dropout, "features": self.model_.pre.n_features}

    def _arch_from(self, json: dict[str, Any]) -> dict[str, Any]:
        return json.get("config", json)  # files saved before TorchDetector: the architecture at the top level

    def _from_arch(self, arch: dict[str, Any]) -> ClassifierNet:
        return ClassifierNet(Preprocessor(int(arch["features"])), [int(h) for h in arch["hidden"]], float(arch["dropout"]))
