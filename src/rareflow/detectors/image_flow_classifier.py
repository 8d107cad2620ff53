r"""``image-flow-classifier``: class-conditional 2-D flows on CNN feature maps, scored by the likelihood ratio.

The image counterpart of ``flow-classifier``: one FastFlow-style flow per class
(:class:`~rareflow.flows.conv.FlowSteps2d`, affine couplings with 3x3 / 1x1 conv subnets and
positional conditioning) on the shared frozen, standardised feature map :math:`\tilde f(u)` of a
conv encoder (:class:`~rareflow.nets.backbone.StandardisedFeatures`; the encoder of a conv
autoencoder trained on the images of both classes, as ``fastflow``'s ``backbone: conv``). Each
flow gives the image log-likelihood :math:`\ell_y(u) = \frac{1}{hw}\sum_{h,w} \log p_y(\tilde f(u))_{h,w}`
(mean over positions: the exact log-density divided by the number of positions), and the score is

.. math:: s(u) = \ell_1(u) - \ell_0(u),

the log-likelihood ratio rare / bulk (higher = rarer). Training minimises each image's NLL under
its own class's flow (:func:`rareflow.flows.selfsup.class_nll_loss`), with each class weighted to
half of the total weight (``balance``), optionally plus :math:`\lambda` (``discriminative``) times the
cross-entropy of the ratio (Nalisnick et al. 2019's hybrid objective). Feature noise
(``feature_noise``) regularises positions whose features never vary (cells outside the camera).

When it wins: the classes differ in the *local texture* of the image (the flows model
:math:`p(\tilde f_{h,w} \mid h, w)` per position); when it fails: with few images of the rare
class, whose flow then over-fits (the ratio is then dominated by the bulk flow), and where the
difference lies in the global shape (use ``cnn-classifier``). See docs/image-flow-classifier.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors._image import ImageDetector, channel_list
from rareflow.detectors.base import Kind
from rareflow.detectors.params import Choice, Flag, Number, Sizes
from rareflow.errors import RareflowError
from rareflow.flows.conv import FlowSteps2d
from rareflow.flows.selfsup import class_nll_loss
from rareflow.nets.activations import ACTIVATIONS
from rareflow.nets.backbone import FrozenFeatures, StandardisedFeatures
from rareflow.nets.conv import ConvEncoder
from rareflow.training import class_balanced_weights


class ClassFlows2d(StandardisedFeatures):
    """Frozen standardised features -> one :class:`FlowSteps2d` per class (0 bulk, 1 rare)."""

    def __init__(self, backbone: FrozenFeatures, channels: int, steps: int, hidden: int | None, kernels: Sequence[int],
                 clamp: float, activation: str, position: bool) -> None:  # fmt: skip
        super().__init__(backbone, channels)
        self.flows = nn.ModuleList(FlowSteps2d(channels, steps, hidden, kernels, clamp, activation, position) for _ in range(2))

    def log_prob_pair(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(l_0, l_1)``: image log-likelihoods (mean over positions) under the bulk and the rare flow."""
        f = self(x)
        lp0, lp1 = (flow.log_prob_map(f).flatten(1).mean(1) for flow in self.flows)
        return lp0, lp1

    def log_ratio(self, x: Tensor) -> Tensor:
        """:math:`\\ell_1 - \\ell_0` per image."""
        lp0, lp1 = self.log_prob_pair(x)
        return lp1 - lp0


@register
class ImageFlowClassifier(ImageDetector):
    """Class-conditional 2-D flows on a frozen CNN feature map; score = log-likelihood ratio rare / bulk."""

    name: ClassVar[str] = "image-flow-classifier"
    kind: ClassVar[Kind] = "two-class"
    requires_labels: ClassVar[bool] = True
    training_defaults: ClassVar[dict[str, Any]] = {"epochs": 20, "batch_size": 64, "patience": 5, "score_batch_size": 512}
    param_specs: ClassVar[dict[str, Any]] = {
        "latent": Number(integer=True, low=1), "feature_stage": Number(integer=True, low=0),
        "backbone_epochs": Number(integer=True, low=1), "steps": Number(integer=True, low=1),
        "hidden": Number(integer=True, low=1, none_ok=True), "clamp": Number(low=0.0, low_open=True),
        "position": Flag(), "feature_noise": Number(low=0.0), "discriminative": Number(low=0.0),
        "balance": Flag(), "activation": Choice(tuple(ACTIVATIONS)),
        "channels": Sizes(min_len=1, high=4096), "kernels": Sizes(min_len=1, high=15),
    }  # fmt: skip

    def __init__(
        self,
        channels: Sequence[int] = (8, 16, 32),
        latent: int = 4,
        feature_stage: int = 1,
        backbone_epochs: int = 10,
        steps: int = 4,
        hidden: int | None = None,
        kernels: Sequence[int] = (3, 1),
        clamp: float = 2.0,
        position: bool = True,
        feature_noise: float = 0.1,
        discriminative: float = 0.0,
        balance: bool = True,
        activation: str = "relu",
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    def _check_params(self) -> None:
        channels = channel_list(self.channels, "channels", self.name)
        if not int(self.feature_stage) < len(channels):
            raise RareflowError(f"feature_stage must be in 0..{len(channels) - 1} (a stage of channels), got {self.feature_stage}")

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> ClassFlows2d:
        backbone, self.backbone_history_ = self._fit_backbone(
            X, None, self.channels, int(self.latent), int(self.backbone_epochs), self.activation, int(self.feature_stage))
        model = ClassFlows2d(backbone.eval(), int(self.channels[int(self.feature_stage)]), int(self.steps), self.hidden,
                             tuple(self.kernels), float(self.clamp), self.activation, bool(self.position))  # fmt: skip
        model.fit_scaling(X, self.training_config().score_batch_size)
        model.noise = float(self.feature_noise)
        return model

    def _training_rows(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Images (n, 1, H, W), labels as the class, each class half of the weight with ``balance``."""
        assert y is not None
        w = class_balanced_weights(y, w, bool(self.balance))
        return X[:, None], y, w

    def _loss(self) -> Any:
        return class_nll_loss(float(self.discriminative))

    def _after_fit(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> None:
        self.model_.noise = 0.0
        self.model_.eval()

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._predict(lambda x: self.model_.log_ratio(x[:, None]), X)

    def log_prob_pair(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Image log-likelihoods (mean over positions) under the bulk and the rare flow."""
        pair = self._predict(lambda x: torch.stack(self.model_.log_prob_pair(x[:, None]), dim=1), self._checked(X))
        return pair[:, 0], pair[:, 1]

    def _arch(self) -> dict[str, Any]:
        return {"channels": [int(c) for c in self.channels], "feature_stage": int(self.feature_stage),
                "n_features": int(self.model_.channels)}  # fmt: skip

    def _from_arch(self, cfg: dict[str, Any]) -> ClassFlows2d:
        enc = ConvEncoder(1, tuple(int(c) for c in cfg["channels"]), self.activation)
        return ClassFlows2d(FrozenFeatures(enc, int(cfg["feature_stage"])), int(cfg["n_features"]), int(self.steps), self.hidden,
                            tuple(self.kernels), float(self.clamp), self.activation, bool(self.position))  # fmt: skip
