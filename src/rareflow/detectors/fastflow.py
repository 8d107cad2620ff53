r"""``fastflow``: FastFlow-style 2-D normalizing flow on CNN feature maps of camera images.

FastFlow (Yu et al. 2021, arXiv:2111.07677) models the feature map :math:`f(u)` of a frozen
backbone with a 2-D flow of affine couplings along the channel dimension whose subnets are
3x3 / 1x1 convolutions (alternating), and scores every spatial position by its likelihood:

.. math:: \log p(u)_{h,w} = \sum_c \log N(z_{c,h,w}; 0, 1) + \sum_k \sum_c s^{(k)}_{c,h,w},
          \qquad z = g(\tilde f(u)),

with :math:`\tilde f` the per-channel standardised features (training mean / std). The
anomaly map is :math:`-\log p(u)_{h,w}` (``map: nll``; ``map: latent`` gives FastFlow's own
:math:`\tfrac12\overline{z^2}` without the Jacobian) upsampled bilinearly to the input grid;
the image score is its ``mean`` or ``max`` over positions (``reduce``).

Localisation (issue #7, target >= 90 % of map maxima strictly on an injected artefact): NOT
reached — strictly on a hot-pixel cluster 0.665 / 0.435, on a muon arc over a gamma 0.338 / 0.325
(seeds 0 / 1, ``examples/image_localisation.py --n-train 2000``; docs/fastflow.md). Bright gamma
cores get the largest NLLs; use ``conv-autoencoder`` (``map: pull``) to localise.

Backbone. No pretrained weights exist for Cherenkov images, so (``backbone``):

* ``"conv"`` (default) — trained from scratch: a small convolutional autoencoder is fitted on the
  training class first (reconstruction, :func:`~rareflow.detectors.conv_autoencoder.fit_autoencoder_net`),
  then its encoder up to ``feature_stage`` is frozen and the flow fitted on its features. (Training
  extractor and flow jointly by likelihood is degenerate: shrinking the features raises the
  likelihood without bound.)
* ``"random"`` — the same encoder with seeded random weights, frozen.
* a ``torch.nn.Module`` mapping (n, 1, H, W) to (n, C, h, w) — frozen, used as is. Such a model
  is not saved: :func:`rareflow.persistence.save_model` refuses it (only the built-in backbones are
  saved, as weights; nothing is ever pickled).

Gaussian noise of ``feature_noise`` standard deviations is added to the standardised features
while training (positions whose features never vary — cells outside the camera — would
otherwise get an unbounded density).

``loss``: ``nll`` (one-class, mean over positions of :math:`-\log p`) or ``selfsup`` — the
self-supervised two-class loss :math:`L_B - L_R` (Chiu & Lai 2023; :func:`rareflow.flows.conv.selfsup_image_loss`)
on the image log-likelihood (mean over positions): it needs labels; B is the ``fit_on`` class;
:math:`c` (``selfsup_floor``) defaults to the lowest B image log-likelihood under the initial
(identity) flow, which bounds :math:`L_R` (without a floor the loss runs away to :math:`-\infty`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.iact.images import iterate_batches
from rareflow.detectors import register
from rareflow.detectors._image import ImageDetector, load_weights, state_arrays
from rareflow.detectors.base import FittedState, Kind
from rareflow.detectors.conv_autoencoder import fit_autoencoder_net, image_batch
from rareflow.errors import RareflowError
from rareflow.flows.conv import FlowSteps2d, selfsup_image_loss
from rareflow.nets.conv import ConvEncoder, pad_to_multiple
from rareflow.training import Batch, apply_policy, resolve_device, split_indices, train, weighted_mean
from rareflow.seeding import derive_seed

_PREFIX = "model/"
BACKBONES = ("conv", "random")
MAPS = ("nll", "latent")
LOSSES = ("nll", "selfsup")


class _Frozen(nn.Module):
    """Wraps a backbone (its parameters frozen) and keeps only the output of stage ``upto``."""

    def __init__(self, backbone: nn.Module, upto: int | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.upto = upto
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        if self.upto is None:
            return self.backbone(x)
        return self.backbone(x, upto=self.upto)


class FastFlowNet(nn.Module):
    """Frozen backbone -> per-channel standardisation -> :class:`FlowSteps2d`."""

    def __init__(self, backbone: _Frozen, channels: int, steps: int, hidden: int | None, kernels: Sequence[int],
                 clamp: float, activation: str, position: bool) -> None:  # fmt: skip
        super().__init__()
        self.features = backbone
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.flow = FlowSteps2d(channels, steps, hidden, kernels, clamp, activation, position)
        self.noise = 0.0
        self.reduce = "mean"

    def standardised(self, x: Tensor) -> Tensor:
        """:math:`(f(u) - \\mu_c)/\\sigma_c` (+ training noise in train mode)."""
        f = (self.features(x) - self.mean[:, None, None]) / self.std[:, None, None]
        if self.training and self.noise > 0:
            f = f + self.noise * torch.randn_like(f)
        return f

    def log_prob_map(self, x: Tensor) -> Tensor:
        """:math:`\\log p` per feature-map position (n, h, w)."""
        return self.flow.log_prob_map(self.standardised(x))

    def image_log_prob(self, x: Tensor) -> Tensor:
        """Image log-likelihood: mean over positions of :math:`\\log p` (``reduce: mean``) or its
        minimum (``reduce: max``, matching a score that is the largest NLL)."""
        lp = self.log_prob_map(x).flatten(1)
        return lp.min(1).values if self.reduce == "max" else lp.mean(1)


def _nll_loss(model: FastFlowNet, batch: Batch) -> Tensor:
    return weighted_mean(-model.image_log_prob(batch.x), batch.weight)


def _selfsup_loss(floor: float) -> Any:
    def loss_fn(model: FastFlowNet, batch: Batch) -> Tensor:
        """:math:`L_B - L_R` on image log-likelihoods (label 1 = the modelled class B)."""
        return selfsup_image_loss(model.image_log_prob(batch.x), batch.label > 0.5, batch.weight, floor)

    return loss_fn


def _selfsup_validation(floor: float) -> Any:
    def loss_fn(model: FastFlowNet, batch: Batch) -> Tensor:
        """Early-stopping criterion: mean B NLL minus mean R NLL capped at :math:`-c` (bounded below,
        unlike the batch-dependent :math:`L_B - L_R`, whose sum over R swings with the batch)."""
        lp = model.image_log_prob(batch.x)
        own = batch.label > 0.5
        nll_b = -lp[own].mean() if own.any() else lp.sum() * 0.0
        nll_r = torch.clamp(-lp[~own], max=-floor).mean() if (~own).any() else lp.sum() * 0.0
        return nll_b - nll_r

    return loss_fn


@register
class FastFlowDetector(ImageDetector):
    """FastFlow-style 2-D flow on frozen CNN features; map = per-position -log p, score = mean / max."""

    name: ClassVar[str] = "fastflow"
    kind: ClassVar[Kind] = "one-class"

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
        selfsup_floor: float | None = None,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        schedule: str = "cosine",
        clip_grad: float | None = 5.0,
        patience: int = 5,
        validation_fraction: float = 0.2,
        threshold: dict[str, Any] | None = None,
        random_state: int | None = 0,
        device: str = "cpu",
        n_threads: int | None = None,
        score_batch_size: int = 512,
        on_divergence: str = "raise",
        progress: bool = True,
    ) -> None:
        self.fit_on = fit_on
        self.backbone = backbone
        self.channels = channels
        self.latent = latent
        self.feature_stage = feature_stage
        self.backbone_epochs = backbone_epochs
        self.steps = steps
        self.hidden = hidden
        self.kernels = kernels
        self.clamp = clamp
        self.position = position
        self.feature_noise = feature_noise
        self.activation = activation
        self.map = map
        self.reduce = reduce
        self.loss = loss
        self.selfsup_floor = selfsup_floor
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.clip_grad = clip_grad
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.score_batch_size = score_batch_size
        self.on_divergence = on_divergence
        self.progress = progress

    # -- checks ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        self._check_reduce()
        if isinstance(self.backbone, str) and self.backbone not in BACKBONES:
            raise RareflowError(f"backbone must be 'conv', 'random' or a torch.nn.Module, got {self.backbone!r}")
        if not isinstance(self.backbone, (str, nn.Module)):
            raise RareflowError(f"backbone must be 'conv', 'random' or a torch.nn.Module, got {type(self.backbone).__name__}")
        if self.map not in MAPS:
            raise RareflowError(f"map must be one of {', '.join(MAPS)}, got {self.map!r}")
        if self.loss not in LOSSES:
            raise RareflowError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.on_divergence not in ("raise", "keep"):
            raise RareflowError(f"on_divergence must be 'raise' or 'keep', got {self.on_divergence!r}")
        if isinstance(self.backbone, str) and not 0 <= int(self.feature_stage) < len(self.channels):
            raise RareflowError(f"feature_stage must be in 0..{len(self.channels) - 1} (a stage of channels), got {self.feature_stage}")

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "FastFlowDetector":
        """As :meth:`Detector.fit`; with ``loss: selfsup`` the other class's images are kept aside
        for :math:`L_R` (labels required)."""
        self._other = None
        if self.loss == "selfsup":
            Xa = self._validate_X(X, reset=True)
            ya = self._validate_y(y, len(Xa))
            if ya is None or len(np.unique(ya)) < 2:
                raise RareflowError("fastflow with loss: selfsup needs labelled images of both classes (the rare scenario)")
            self._other = Xa[ya != (1 if self._fit_on() == "rare" else 0)]
        try:
            return super().fit(X, y, sample_weight)
        finally:
            del self._other

    def _build_backbone(self, X: np.ndarray, w: np.ndarray | None) -> tuple[_Frozen, dict[str, Any]]:
        if isinstance(self.backbone, nn.Module):
            return _Frozen(self.backbone, None), {}
        if self.backbone == "conv":
            net, hist = fit_autoencoder_net(self, X, w, self.channels, int(self.latent), int(self.backbone_epochs),
                                            "fastflow backbone (conv autoencoder)")  # fmt: skip
            return _Frozen(net.encoder, int(self.feature_stage)), hist
        seed = self.random_state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else derive_seed(seed, "fastflow-random-backbone"))
            enc = ConvEncoder(1, tuple(self.channels), self.activation)
        return _Frozen(enc, int(self.feature_stage)), {}

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        self._check_params()
        seed = self.random_state
        # the backbone is unsupervised: with loss selfsup it learns from both classes' images
        both = X if self._other is None else np.concatenate([X, self._other])
        w_both = sample_weight if self._other is None or sample_weight is None else None
        backbone, self.backbone_history_ = self._build_backbone(both, w_both)
        backbone.eval()
        with torch.no_grad():
            probe = backbone(torch.zeros(1, 1, *X.shape[1:]))
        if probe.ndim != 4:
            raise RareflowError(f"the backbone must return (n, C, h, w) feature maps, got shape {tuple(probe.shape)}")
        channels = int(probe.shape[1])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else derive_seed(seed, "fastflow-init"))
            model = FastFlowNet(backbone, channels, int(self.steps), self.hidden, tuple(self.kernels), float(self.clamp), self.activation,
                                bool(self.position))  # fmt: skip
        self._set_standardisation(model, X)
        model.noise = float(self.feature_noise)
        model.reduce = self.reduce
        self.model_ = model
        self.history_ = self._train_flow(model, X, sample_weight)
        model.noise = 0.0

    def _set_standardisation(self, model: FastFlowNet, X: np.ndarray) -> None:
        """Per-channel mean / std of the backbone features over training images and positions."""
        s1 = s2 = None
        n = 0
        with torch.no_grad():
            for start in range(0, len(X), int(self.score_batch_size)):
                f = model.features(torch.from_numpy(np.ascontiguousarray(X[start : start + int(self.score_batch_size)][:, None]))).double()
                s1 = f.sum((0, 2, 3)) if s1 is None else s1 + f.sum((0, 2, 3))
                s2 = (f * f).sum((0, 2, 3)) if s2 is None else s2 + (f * f).sum((0, 2, 3))
                n += f.shape[0] * f.shape[2] * f.shape[3]
        mean = s1 / n
        std = torch.sqrt(torch.clamp(s2 / n - mean * mean, min=0.0)).clamp_min(1e-3)
        model.mean.copy_(mean.float())
        model.std.copy_(std.float())

    def _initial_floor(self, model: FastFlowNet, X: np.ndarray) -> float:
        """Default :math:`c`: the lowest image log-likelihood of the own class under the initial
        (identity) flow — R likelihoods are lowered at most to where the worst B image started."""
        was = model.training
        model.eval()
        with torch.no_grad():
            lp = [model.image_log_prob(xb).min() for xb in iterate_batches(X, int(self.score_batch_size))]
        model.train(was)
        return float(torch.stack(lp).min())

    def _train_flow(self, model: FastFlowNet, X: np.ndarray, w: np.ndarray | None) -> dict[str, Any]:
        seed = self.random_state
        w32 = None if w is None else w.astype(np.float32)
        if self.loss == "selfsup":
            other = self._other
            Xall = np.concatenate([X, other])
            label = np.concatenate([np.ones(len(X)), np.zeros(len(other))]).astype(np.float32)
            wall = None if w32 is None else np.concatenate([w32, np.ones(len(other), np.float32)])
            floor = self._initial_floor(model, X) if self.selfsup_floor is None else float(self.selfsup_floor)
            self.selfsup_floor_ = floor
            loss_fn: Any = _selfsup_loss(floor)
            val_fn: Any = _selfsup_validation(floor)
        else:
            Xall, label, wall, loss_fn, val_fn = X, None, w32, _nll_loss, None
        tr, va = split_indices(len(Xall), float(self.validation_fraction), None if seed is None else derive_seed(seed, "flow-split"))
        return apply_policy(lambda: train(
                model, loss_fn, image_batch(Xall, tr, wall, label), image_batch(Xall, va, wall, label) if len(va) else None,
                val_loss_fn=val_fn,
                epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
                weight_decay=float(self.weight_decay), schedule=self.schedule, clip_grad=self.clip_grad,
                patience=int(self.patience), seed=None if seed is None else derive_seed(seed, "flow-train"),
                n_threads=self.n_threads, device=self.device, eval_batch_size=int(self.score_batch_size),
                progress=bool(self.progress), description="fastflow" + (" (selfsup)" if self.loss == "selfsup" else ""),
            ), self.on_divergence)  # fmt: skip

    # -- scoring ---------------------------------------------------------------------------------
    def _map_batch(self, x: Tensor) -> Tensor:
        model = self.model_
        if self.map == "latent":
            m = model.flow.latent_map(model.standardised(x))
        else:
            m = -model.log_prob_map(x)
        h, w = x.shape[-2:]
        if m.shape[-2:] == (h, w):
            return m
        mult = _input_multiple(model.features)
        hp, wp = pad_to_multiple(x, mult).shape[-2:] if mult > 1 else (h, w)
        up = F.interpolate(m[:, None], size=(hp, wp), mode="bilinear", align_corners=False)[:, 0]
        return up[..., :h, :w]

    # -- persistence -----------------------------------------------------------------------------
    def _export(self) -> FittedState:
        if not isinstance(self.backbone, str):
            raise RareflowError(
                "fastflow with a user-supplied backbone cannot be saved: only the built-in backbones "
                "('conv', 'random') are saved (as weights; nothing is pickled) — refit it after loading instead"
            )
        cfg = {"channels": [int(c) for c in self.channels], "feature_stage": int(self.feature_stage),
               "n_features": int(self.model_.mean.numel()), "image_shape": list(self.image_shape_)}  # fmt: skip
        return FittedState(json={"config": cfg}, arrays=state_arrays(self.model_, _PREFIX))

    def _import(self, state: FittedState) -> None:
        cfg = state.json["config"]
        enc = ConvEncoder(1, tuple(cfg["channels"]), self.activation)
        model = FastFlowNet(_Frozen(enc, cfg["feature_stage"]), cfg["n_features"], int(self.steps), self.hidden,
                            tuple(self.kernels), float(self.clamp), self.activation, bool(self.position))  # fmt: skip
        load_weights(model, state.arrays, _PREFIX, "fastflow")
        self.model_ = model.to(resolve_device(self.device)).eval()
        self.image_shape_ = tuple(int(v) for v in cfg["image_shape"])


def _input_multiple(features: _Frozen) -> int:
    """Padding multiple of a built-in encoder (inputs padded before the stride-2 stages), else 1."""
    bb = features.backbone
    return 2 ** int(features.upto) if isinstance(bb, ConvEncoder) and features.upto is not None else 1
