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
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors._flowfit import fit_preprocessor, make_batch, prefixed, run_training, seed_of, small_history
from rareflow.detectors.base import Detector, FittedState, Kind
from rareflow.errors import RareflowError
from rareflow.flows.preprocessing import Preprocessor
from rareflow.flows.train import Batch, resolve_device, split_indices, torch_threads, weighted_mean
from rareflow.outliers.training import MLP


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
class NNClassifier(Detector):
    """MLP rare-vs-bulk classifier; score = logit (higher = rarer).

    Defaults (3 layers of 256, dropout 0.1, batch 256, lr 1e-3, up to 100 epochs with early
    stopping) give it at least the parameter count and the training budget of ``flow-classifier``.
    """

    name: ClassVar[str] = "nn-classifier"
    kind: ClassVar[Kind] = "supervised"
    requires_labels: ClassVar[bool] = True

    def __init__(
        self,
        hidden: Sequence[int] = (256, 256, 256),
        dropout: float = 0.1,
        balance: bool = True,
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        schedule: str = "cosine",
        clip_grad: float | None = 5.0,
        patience: int = 10,
        validation_fraction: float = 0.2,
        log_features: Sequence[str] | bool | None = None,
        threshold: dict[str, Any] | None = None,
        random_state: int | None = 0,
        device: str = "cpu",
        n_threads: int | None = None,
        score_batch_size: int = 8192,
        on_divergence: str = "raise",
        progress: bool = True,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.balance = balance
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.clip_grad = clip_grad
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.log_features = log_features
        self.threshold = threshold
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.score_batch_size = score_batch_size
        self.on_divergence = on_divergence
        self.progress = progress

    dequantize = False  # the classifier needs no density, so no dequantisation noise

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        assert y is not None
        if self.on_divergence not in ("raise", "keep"):
            raise RareflowError(f"on_divergence must be 'raise' or 'keep', got {self.on_divergence!r}")
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if self.balance:
            for cls in (0, 1):
                w = np.where(y == cls, w / max(w[y == cls].sum(), 1e-300), w)
            w = w * len(X) / w.sum()
        seed = seed_of(self, "init")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else seed)
            net = ClassifierNet(fit_preprocessor(self, X), tuple(self.hidden), float(self.dropout))
        tr, va = split_indices(len(X), float(self.validation_fraction), seed_of(self, "split"))
        lab, w32 = y.astype(np.float32), w.astype(np.float32)
        self.model_ = net
        self.history_ = run_training(
            self, net, bce_loss, make_batch(X, tr, lab, w32), make_batch(X, va, lab, w32), None, "nn-classifier"
        )

    def _score(self, X: np.ndarray) -> np.ndarray:
        p = next(self.model_.parameters())
        out = np.empty(len(X))
        self.model_.eval()
        with torch_threads(self.n_threads), torch.inference_mode():
            for s in range(0, len(X), int(self.score_batch_size)):
                xb = torch.as_tensor(np.ascontiguousarray(X[s : s + int(self.score_batch_size)]), dtype=p.dtype, device=p.device)
                out[s : s + len(xb)] = self.model_(xb).double().cpu().numpy()
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (bulk, rare) for the training class mix (balanced when ``balance``)."""
        s = self.decision_function(X)
        p = 1.0 / (1.0 + np.exp(-np.clip(s, -500, 500)))
        return np.column_stack([1.0 - p, p])

    def _export(self) -> FittedState:
        arrays = {f"net/{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        return FittedState(
            json={"hidden": list(self.model_.mlp.hidden), "dropout": self.model_.mlp.dropout,
                  "features": self.model_.pre.n_features, "history": small_history(self.history_)},
            arrays=arrays,
        )  # fmt: skip

    def _import(self, state: FittedState) -> None:
        j = state.json
        net = ClassifierNet(Preprocessor(int(j["features"])), j["hidden"], float(j["dropout"]))
        net.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in prefixed(state.arrays, "net/").items()})
        self.model_ = net.to(resolve_device(self.device)).eval()
        self.history_ = j.get("history", {})
