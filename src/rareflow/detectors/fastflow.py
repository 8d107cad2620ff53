r"""``fastflow``: FastFlow-style 2-D normalizing flow on CNN feature maps of camera images.

FastFlow (Yu et al. 2021, arXiv:2111.07677) models the feature map :math:`f(u)` of a frozen
backbone with a 2-D flow of affine couplings along the channel dimension whose subnets are
3x3 / 1x1 convolutions (alternating), and scores every spatial position by its likelihood:

.. math:: \log p(u)_{h,w} = \sum_c \log N(z_{c,h,w}; 0, 1) + \sum_k \sum_c s^{(k)}_{c,h,w},
          \qquad z = g(\tilde f(u)),

with :math:`\tilde f` the per-channel standardised features (training mean / std,
:class:`~rareflow.nets.backbone.StandardisedFeatures`). The anomaly map is
:math:`-\log p(u)_{h,w}` (``map: nll``; ``map: latent`` gives FastFlow's own
:math:`\tfrac12\overline{z^2}` without the Jacobian) upsampled bilinearly to the input grid;
the image score is its ``mean`` or ``max`` over positions (``reduce``). ``map: nll-light`` points
the map at the light that made a region unlikely: the upsampled NLL is max-pooled over the 3 x 3
grid cells, its image median subtracted (negative parts set to 0) and multiplied by the cell's
log1p charge, :math:`\max(0, \mathrm{maxpool}_{3\times3}(\mathrm{NLL}) - \mathrm{med}) \cdot \max(0, u)`.

Localisation (issue #7, target >= 90 % of map maxima strictly on an injected artefact; seeds 0 / 1,
``examples/image_localisation.py --n-train 2000``; examples/IMAGES.md section 2): ``map: nll``
peaks beside the artefact (strictly on: hot-pixel cluster 0.665 / 0.435, muon arc 0.338 / 0.325),
``map: nll-light`` on it (figures in IMAGES.md); ``conv-autoencoder`` (``map: pull``) localises best.

Backbone (composed from :mod:`rareflow.nets`; no pretrained weights exist for Cherenkov images):

* ``"conv"`` (default) — trained from scratch: a small convolutional autoencoder
  (:class:`~rareflow.nets.conv.ConvAutoencoderNet`, squared error on the log1p images,
  ``backbone_epochs``) is fitted on the training images first, then its encoder up to
  ``feature_stage`` is frozen and the flow fitted on its features. (Training extractor and flow
  jointly by likelihood is degenerate: shrinking the features raises the likelihood without bound.)
* ``"random"`` — the same encoder with seeded random weights, frozen.
* a ``torch.nn.Module`` mapping (n, 1, H, W) to (n, C, h, w) — frozen, used as is. Such a model
  is not saved: :func:`rareflow.persistence.save_model` refuses it.

Gaussian noise of ``feature_noise`` standard deviations is added to the standardised features
while training (positions whose features never vary would otherwise get an unbounded density).

``loss``: ``nll`` (one-class, mean over positions of :math:`-\log p`) or ``selfsup`` — the
self-supervised two-class loss :math:`L_B - L_R` of Chiu & Lai (2023) with the indicator guard and
the warm-up of the table version (:mod:`rareflow.flows.selfsup`, ``selfsup-flow``) on the image
log-likelihood (mean over positions). B is the ``fit_on`` class; R (``rare``) is

* ``labelled`` (default) — the labelled images of the other class (needs labels);
* ``blobs`` — the B images with smooth blobs of extra light
  (:func:`rareflow.outliers.blobs.add_light_blobs`; DRAEM-style synthetic anomalies; no labels).

``warmup_epochs`` epochs on :math:`L_B` alone come first; the floor ``c`` is then ``"auto"`` (the
``c_quantile`` quantile of the B training image log-likelihoods), a number, or null (no floor);
epochs are selected by :func:`~rareflow.flows.selfsup.selfsup_validation` (1 - AUC of R vs B).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors._image import IMAGE_SPECS, MapDetector, channel_list, varying_cells
from rareflow.detectors.base import FittedState, Kind
from rareflow.detectors.params import Choice, Flag, Number, Sizes
from rareflow.errors import RareflowError
from rareflow.flows.conv import FlowSteps2d
from rareflow.flows.losses import nll_loss, trimmed_nll_loss
from rareflow.flows.selfsup import selfsup_loss, selfsup_validation
from rareflow.nets.activations import ACTIVATIONS
from rareflow.nets.backbone import FrozenFeatures, StandardisedFeatures
from rareflow.nets.conv import ConvEncoder
from rareflow.outliers.blobs import add_light_blobs
from rareflow.training import INIT, SPLIT, SYNTHETIC, make_batch, seeded, split_indices

BACKBONES = ("conv", "random")
MAPS = ("nll", "latent", "nll-light")
LOSSES = ("nll", "selfsup")
RARE_SETS = ("labelled", "blobs")


def light_gated(m: Tensor, u: Tensor) -> Tensor:
    """``map: nll-light``: max(0, 3 x 3 max-pool of ``m`` - its image median) x max(0, ``u``), (n, H, W)."""
    dil = torch.nn.functional.max_pool2d(m[:, None], 3, stride=1, padding=1)[:, 0]
    med = m.flatten(1).median(1).values[:, None, None]
    return (dil - med).clamp_min(0.0) * u.clamp_min(0.0)


class FastFlowNet(StandardisedFeatures):
    """Frozen backbone -> per-channel standardisation -> :class:`FlowSteps2d`."""

    def __init__(self, backbone: FrozenFeatures, channels: int, steps: int, hidden: int | None, kernels: Sequence[int],
                 clamp: float, activation: str, position: bool) -> None:  # fmt: skip
        super().__init__(backbone, channels)
        self.flow = FlowSteps2d(channels, steps, hidden, kernels, clamp, activation, position)
        self.reduce = "mean"

    def standardised(self, x: Tensor) -> Tensor:
        r""":math:`(f(u) - \mu_c)/\sigma_c` (+ training noise in train mode)."""
        return StandardisedFeatures.forward(self, x)

    def log_prob_map(self, x: Tensor) -> Tensor:
        """:math:`\\log p` per feature-map position (n, h, w)."""
        return self.flow.log_prob_map(self.standardised(x))

    def image_log_prob(self, x: Tensor) -> Tensor:
        """Image log-likelihood: mean over positions of :math:`\\log p` (``reduce: mean``) or its
        minimum (``reduce: max``, matching a score that is the largest NLL)."""
        lp = self.log_prob_map(x).flatten(1)
        return lp.min(1).values if self.reduce == "max" else lp.mean(1)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """:meth:`image_log_prob` under the name the flow losses call (``context`` unused)."""
        return self.image_log_prob(x)


@register
class FastFlowDetector(MapDetector):
    """FastFlow-style 2-D flow on frozen CNN features; map = per-position -log p, score = mean / max."""

    name: ClassVar[str] = "fastflow"
    kind: ClassVar[Kind] = "one-class"
    training_defaults: ClassVar[dict[str, Any]] = {"epochs": 20, "batch_size": 64, "patience": 5, "score_batch_size": 512}
    renamed_params: ClassVar[dict[str, str]] = {"selfsup_floor": "c"}
    legacy_seed_keys: ClassVar[dict[tuple[str, ...], str]] = {
        ("init", "backbone"): "conv-ae-init", ("split", "backbone"): "split", ("backbone-train",): "train",
        ("init", "random-backbone"): "fastflow-random-backbone", ("init",): "fastflow-init", ("split",): "flow-split",
        ("train",): "flow-train",
    }  # fmt: skip
    param_specs: ClassVar[dict[str, Any]] = {
        **IMAGE_SPECS, "latent": Number(integer=True, low=1), "feature_stage": Number(integer=True, low=0),
        "backbone_epochs": Number(integer=True, low=1), "steps": Number(integer=True, low=1),
        "hidden": Number(integer=True, low=1, none_ok=True), "clamp": Number(low=0.0, low_open=True),
        "position": Flag(), "feature_noise": Number(low=0.0), "activation": Choice(tuple(ACTIVATIONS)),
        "map": Choice(MAPS), "loss": Choice(LOSSES), "rare": Choice(RARE_SETS),
        "warmup_epochs": Number(integer=True, low=0), "c": Number(none_ok=True, words=("auto",)),
        "c_quantile": Number(low=0.0, high=1.0), "rare_reduction": Choice(("sum", "mean")),
        "backbone": Choice(BACKBONES, module_ok=True), "kernels": Sizes(min_len=1, high=15),
    }  # fmt: skip

    def __init__(
        self,
        fit_on: str = "bulk",
        backbone: str | nn.Module = "conv",
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
        activation: str = "relu",
        map: str = "nll",
        reduce: str = "mean",
        loss: str = "nll",
        rare: str = "labelled",
        warmup_epochs: int = 2,
        c: float | str | None = "auto",
        c_quantile: float = 0.001,
        rare_reduction: str = "sum",
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    # -- checks ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if isinstance(self.backbone, str) and self.backbone not in BACKBONES:
            raise RareflowError(f"backbone must be 'conv', 'random' or a torch.nn.Module, got {self.backbone!r}")
        if not isinstance(self.backbone, (str, nn.Module)):
            raise RareflowError(f"backbone must be 'conv', 'random' or a torch.nn.Module, got {type(self.backbone).__name__}")
        channels = channel_list(self.channels, "channels", self.name)
        if isinstance(self.backbone, str) and not 0 <= int(self.feature_stage) < len(channels):
            raise RareflowError(f"feature_stage must be in 0..{len(channels) - 1} (a stage of channels), got {self.feature_stage}")

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "FastFlowDetector":
        """As :meth:`Detector.fit`; with ``loss: selfsup, rare: labelled`` the other class's images
        are kept aside as R (labels required)."""
        self._other = None
        self.check_params()
        if self.loss == "selfsup" and self.rare == "labelled":
            Xa = self._validate_X(X, reset=True)
            ya = self._validate_y(y, len(Xa))
            if ya is None or len(np.unique(ya)) < 2:
                raise RareflowError(
                    "fastflow with loss: selfsup, rare: labelled needs labelled images of both classes "
                    "(the rare scenario); or use rare: blobs (synthetic R)"
                )
            self._other = Xa[ya != (1 if self._fit_on() == "rare" else 0)]
        try:
            return super().fit(X, y, sample_weight)
        finally:
            del self._other

    def _features(self, X: np.ndarray, w: np.ndarray | None) -> FrozenFeatures:
        if isinstance(self.backbone, nn.Module):
            return FrozenFeatures(self.backbone, None)
        if self.backbone == "conv":
            feats, self.backbone_history_ = self._fit_backbone(
                X, w, self.channels, int(self.latent), int(self.backbone_epochs), self.activation, int(self.feature_stage))
            return feats
        with seeded(self._seed(INIT, "random-backbone")):
            enc = ConvEncoder(1, tuple(self.channels), self.activation)
        return FrozenFeatures(enc, int(self.feature_stage))

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> FastFlowNet:
        # the backbone is unsupervised: with rare: labelled it learns from both classes' images
        both = X if self._other is None else np.concatenate([X, self._other])
        w_both = w if self._other is None else None
        backbone = self._features(both, w_both).eval()
        with torch.no_grad():
            probe = backbone(torch.zeros(1, 1, *X.shape[1:]))
        if probe.ndim != 4:
            raise RareflowError(f"the backbone must return (n, C, h, w) feature maps, got shape {tuple(probe.shape)}")
        with seeded(self._seed(INIT)):
            model = FastFlowNet(backbone, int(probe.shape[1]), int(self.steps), self.hidden, tuple(self.kernels),
                                float(self.clamp), self.activation, bool(self.position))  # fmt: skip
        model.fit_scaling(X, self.training_config().score_batch_size)
        model.noise, model.reduce = float(self.feature_noise), self.reduce
        return model

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        if self.loss == "nll":
            super()._fit(X, y, sample_weight)
        else:  # two runs of the loop (warm-up on L_B, then L_B - L_R): the template's single run unrolled
            self._check_params()
            self.model_ = self._build_model(X, y, sample_weight)
            self._fit_selfsup(self.model_, X, sample_weight)
        self.model_.noise = 0.0
        self.model_.eval()

    def _loss(self) -> Any:
        return nll_loss

    def _rare_set(self, X_B: np.ndarray) -> np.ndarray:
        """R: the other class's images, or the B images with blobs of extra light (seed key ``synthetic``)."""
        if self.rare == "labelled":
            return self._other
        cells = torch.from_numpy(varying_cells(X_B).astype(np.float32))
        seed = self._seed(SYNTHETIC)
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        u = torch.from_numpy(np.ascontiguousarray(X_B[:, None]))
        return torch.cat([add_light_blobs(u[i : i + 256], cells, 1.0, gen) for i in range(0, len(u), 256)])[:, 0].numpy()

    def _fit_selfsup(self, model: FastFlowNet, X_B: np.ndarray, w_B: np.ndarray | None) -> None:
        X_R = self._rare_set(X_B)
        vf = self.training_config().validation_fraction
        rows = np.concatenate([X_B, X_R])[:, None]
        lab = np.r_[np.zeros(len(X_B)), np.ones(len(X_R))].astype(np.float32)
        w = None if w_B is None else np.r_[w_B, np.full(len(X_R), float(np.mean(w_B)))].astype(np.float32)
        tr_b, va_b = split_indices(len(X_B), vf, self._seed(SPLIT, "b"))
        tr_r, va_r = split_indices(len(X_R), vf, self._seed(SPLIT, "r"))
        tr, va = np.r_[tr_b, len(X_B) + tr_r], np.r_[va_b, len(X_B) + va_r]
        self.n_rare_set_ = len(X_R)
        warm: dict[str, Any] = {}
        if int(self.warmup_epochs) > 0:  # L_B alone first, so the batch minimum of log p(x_b) is meaningful
            warm = self._train(model, nll_loss, make_batch(rows, tr_b, lab, w), make_batch(rows, va_b, lab, w),
                               trimmed_nll_loss(0.01), "fastflow warm-up (L_B)", epochs=int(self.warmup_epochs), key="warmup")  # fmt: skip
        self.c_ = self._floor(X_B[tr_b])
        self.history_ = self._train(model, selfsup_loss(self.c_, self.rare_reduction), make_batch(rows, tr, lab, w),
                                    make_batch(rows, va, lab, w), selfsup_validation(), f"fastflow (selfsup, R = {self.rare})")  # fmt: skip
        self.history_["warmup"] = {k: warm[k] for k in ("train_loss", "val_loss", "best_epoch") if k in warm}

    def _floor(self, X_B: np.ndarray) -> float | None:
        """``c``: a number, None, or ``"auto"`` = the ``c_quantile`` quantile of the B image log-likelihoods."""
        if self.c is None or self.c != "auto":
            return None if self.c is None else float(self.c)
        lp = self._predict(lambda x: self.model_.image_log_prob(x[:, None]), X_B)
        return float(np.quantile(lp[np.isfinite(lp)], float(self.c_quantile)))

    # -- scoring ---------------------------------------------------------------------------------
    def _map_batch(self, x: Tensor) -> Tensor:
        model = self.model_
        m = model.flow.latent_map(model.standardised(x)) if self.map == "latent" else -model.log_prob_map(x)
        m = model.upsample(m, x)
        return light_gated(m, x[:, 0]) if self.map == "nll-light" else m

    # -- persistence -----------------------------------------------------------------------------
    def _arch(self) -> dict[str, Any]:
        if not isinstance(self.backbone, str):
            raise RareflowError(
                "fastflow with a user-supplied backbone cannot be saved: only the built-in backbones "
                "('conv', 'random') are saved (as weights; nothing is pickled) — refit it after loading instead"
            )
        return {"channels": [int(c) for c in self.channels], "feature_stage": int(self.feature_stage),
                "n_features": int(self.model_.channels), "image_shape": list(self.image_shape_)}  # fmt: skip

    def _from_arch(self, cfg: dict[str, Any]) -> FastFlowNet:
        enc = ConvEncoder(1, tuple(int(c) for c in cfg["channels"]), self.activation)
        model = FastFlowNet(FrozenFeatures(enc, int(cfg["feature_stage"])), int(cfg["n_features"]), int(self.steps), self.hidden,
                            tuple(self.kernels), float(self.clamp), self.activation, bool(self.position))  # fmt: skip
        model.reduce = self.reduce
        return model

    def _export_extra(self, state: FittedState) -> None:
        if self.loss == "selfsup":
            state.json.update(c=self.c_, n_r=self.n_rare_set_)

    def _import_extra(self, state: FittedState) -> None:
        if self.loss == "selfsup":
            self.c_, self.n_rare_set_ = state.json.get("c"), int(state.json.get("n_r", 0))
