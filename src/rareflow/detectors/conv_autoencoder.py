r"""``conv-autoencoder``: one-class convolutional autoencoder on camera images; map = pixel pull.

The image version of the seed slides' "min MSE" recipe: train :math:`g \circ e` (a small CNN
encoder with stride-2 stages, a bottleneck and a mirror decoder,
:class:`rareflow.flows.conv.ConvAutoencoderNet`) to reconstruct grid images :math:`u` of the
training class (``fit_on``), :math:`u` the log1p-normalised charges on the axial grid
(:mod:`rareflow.iact.images`), and read the anomaly map off the residual.

Defaults (chosen for localising added light, examples/IMAGES.md section 2):

* ``bottleneck: dense`` — one global code of ``latent`` (16) units per image between two
  ``hidden`` (256) layers, instead of a 1x1 convolution to ``latent`` (4) channels per position
  (``conv``);
* ``denoise: 0.5`` — DRAEM's reconstructive objective (Zavrtanik et al. 2021, arXiv:2108.07610):
  half of each training batch gets smooth random blobs of extra light
  (:func:`rareflow.outliers.blobs.add_light_blobs`) and the target stays the clean image, so light
  that does not belong to a training-class image is *not* reconstructed and does not pull the code
  away from the image under it; ``0`` trains a plain autoencoder;
* ``loss: poisson`` — the per-cell charge pull against counting noise,
  :math:`z = (q - \hat q)/\sqrt{2^2 + \max(\hat q, 0)}` with
  :math:`q = \operatorname{sign}(u)(e^{|u|}-1)` (p.e.), through a Huber function (quadratic up to
  :math:`|z| = 3`); ``log`` is the plain MSE :math:`(u - \hat u)^2`, under which a 100 p.e. core
  reconstructed at 30 p.e. costs about as much as one noise pixel;
* ``map: pull`` with ``scale: poisson`` —

.. math:: A(u)_{h,w} = \max\!\Big(0,\ \frac{q_{h,w} - \hat q_{h,w}}{\sqrt{s_0^2 + \max(\hat q_{h,w}, 0)}}\Big)
          + \text{neighbours} \sum_{8\ \text{cells around}} (\ldots),

  one-sided (artefacts add light), :math:`s_0` the robust spread (1.4826 x MAD) of the charge
  residual on held-out training cells the network reconstructs dark (:math:`\hat q < 1` p.e.,
  the night-sky noise), the Poisson term for the shower light; grid cells that are constant
  over the training images (outside the camera) get 0; ``neighbours`` (default 0.2) adds that
  weight times the pulls of the 8 surrounding cells (artefacts are extended, noise peaks single
  cells). The score is the ``mean`` or ``max`` of the map (``reduce``).

``scale: learned`` is the earlier scale: :math:`\sigma(\hat u)`, the robust spread of the
residual :math:`q - \hat q` of held-out training images in quantile bins of :math:`\hat u`,
interpolated linearly and read at :math:`\min(\hat q, \text{pull\_cap})` (``pull_cap`` p.e.,
default 3; ``None``: no cap); ``pull_context`` (experimental) makes it 2-D,
:math:`\sigma(\hat u, c)`, with :math:`c` the brightness of the 3x3 neighbourhood (``rec_max`` /
``rec_sum``: max / sum of :math:`\hat q`; ``obs_sum``: observed charge of the 8 neighbours).
``map: error`` is the squared log error :math:`(u - \hat u)^2`; ``smooth`` averages the map over a
(2k+1)^2 window (default: 1 for ``error``, 0 for ``pull``).
The anomaly map :math:`A` goes back to the camera pixels with ``GridMapping.to_pixels``.
Convolutional autoencoders for anomaly localisation: Masci et al. 2011; Bergmann et al. 2019
(MVTec AD, pixel-wise reconstruction error). Training goes through :func:`rareflow.training.train`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.iact.images import expm1_charge
from rareflow.detectors import register
from rareflow.detectors._image import ImageDetector, load_weights, state_arrays
from rareflow.detectors.base import FittedState, Kind
from rareflow.errors import RareflowError
from rareflow.nets.conv import ConvAutoencoderNet
from rareflow.outliers.blobs import add_light_blobs
from rareflow.training import Batch, apply_policy, predict_batched, resolve_device, split_indices, to_tensor, train, weighted_mean
from rareflow.seeding import derive_seed

_PREFIX = "model/"
MAPS = ("pull", "error")
SCALES = ("poisson", "learned")
LOSSES = ("poisson", "log")
BOTTLENECK_LATENT = {"dense": 16, "conv": 4}  # default latent size per bottleneck (units / channels)
_LOSS_NOISE_PE = 2.0  # noise floor (p.e.) of the poisson loss's variance
_LOSS_HUBER = 3.0  # pulls beyond this count linearly in the poisson loss (showers of 10^5 p.e. do not dominate)
_U_MAX = 12.0
CONTEXTS = ("rec_max", "rec_sum", "obs_sum")
_CONTEXT_LEVELS = 8  # quantile bins of the neighbourhood context for pull_context
_PULL_LEVELS = 40  # quantile bins of the reconstruction for the pull scale
_PULL_MIN_COUNT = 30


def _charge(u: Tensor) -> Tensor:
    r"""Charge :math:`\operatorname{sign}(u)(e^{|u|}-1)` of log1p images (|u| clamped at 12 against overflow)."""
    return torch.sign(u) * torch.expm1(u.abs().clamp(max=_U_MAX))


def reconstruction_loss(loss: str = "log", denoise: float = 0.0, cells: Tensor | None = None) -> Callable[[nn.Module, Batch], Tensor]:
    r"""Weighted mean over images of the mean per-cell reconstruction error.

    ``loss="log"``: :math:`(u - \hat u)^2` on the log1p images. ``loss="poisson"``: the squared
    charge residual over a counting-noise variance, :math:`(q - \hat q)^2 / (2^2 + \max(\hat q, 0))`
    (p.e.; the variance is not differentiated): in log units a 100 p.e. shower core reconstructed at
    30 p.e. costs about as much as one noise pixel, so a log loss never learns bright cores.
    ``denoise > 0``: in training mode a share ``denoise`` of the batch gets synthetic blobs of light
    (:func:`rareflow.outliers.blobs.add_light_blobs`, on the ``cells``) and the target stays the clean
    image (DRAEM's reconstructive objective); a batch whose ``context`` holds images is a fixed,
    already corrupted validation set with ``context`` its clean targets.
    """
    if loss not in LOSSES:
        raise RareflowError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        target = batch.x if batch.context is None else batch.context
        inputs = batch.x
        if batch.context is None and denoise > 0 and model.training and cells is not None:
            inputs = add_light_blobs(batch.x, cells, denoise)  # torch's global RNG, seeded by train()
        rec = model(inputs)
        if loss == "log":
            err = (target - rec) ** 2
        else:
            qh = _charge(rec)
            z = (_charge(target) - qh) / torch.sqrt(_LOSS_NOISE_PE**2 + qh.detach().clamp_min(0.0))
            err = 2.0 * F.huber_loss(z, torch.zeros_like(z), reduction="none", delta=_LOSS_HUBER)
        return weighted_mean(err.flatten(1).mean(1), batch.weight)

    return loss_fn


def image_batch(X: np.ndarray, idx: np.ndarray, w: np.ndarray | None = None, label: np.ndarray | None = None) -> Batch:
    """Rows ``idx`` of grid images (n, H, W) as a Batch of (n, 1, H, W) float32 tensors."""
    return Batch(
        x=to_tensor(X[idx][:, None]),
        weight=None if w is None else to_tensor(w[idx]),
        label=None if label is None else to_tensor(label[idx]),
    )


def _corrupted_validation(batch: Batch, cells: Tensor, denoise: float, seed: int) -> Batch:
    """The validation images with synthetic blobs, drawn once (fixed seed), clean images as ``context``."""
    gen = torch.Generator().manual_seed(seed)
    noisy = torch.cat([add_light_blobs(batch.x[i : i + 64], cells, denoise, gen) for i in range(0, len(batch), 64)])
    return Batch(x=noisy, context=batch.x, weight=batch.weight)


def fit_autoencoder_net(det: Any, X: np.ndarray, w: np.ndarray | None, channels: Sequence[int], latent: int,
                        epochs: int, description: str, coords: bool = False, bottleneck: str = "conv",
                        loss: str = "log", denoise: float = 0.0, hidden: int = 256) -> tuple[ConvAutoencoderNet, dict[str, Any]]:  # fmt: skip
    """Build (seeded) and train a :class:`ConvAutoencoderNet` on grid images with ``det``'s training
    settings; returns the net (best weights) and the history. Shared with ``fastflow``'s backbone."""
    seed = det.random_state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0 if seed is None else derive_seed(seed, "conv-ae-init"))
        net = ConvAutoencoderNet(tuple(channels), int(latent), det.activation, coords=coords, bottleneck=bottleneck,
                                 grid=X.shape[1:], hidden=int(hidden))  # fmt: skip
    tr, va = split_indices(len(X), float(det.validation_fraction), None if seed is None else derive_seed(seed, "split"))
    w32 = None if w is None else w.astype(np.float32)
    cells = torch.from_numpy((X.std(axis=0) > 0).astype(np.float32))
    valid = image_batch(X, va, w32) if len(va) else None
    if valid is not None and denoise > 0:
        valid = _corrupted_validation(valid, cells, float(denoise), 0 if seed is None else derive_seed(seed, "denoise-valid"))
    history = apply_policy(lambda: train(
            net, reconstruction_loss(loss, float(denoise), cells), image_batch(X, tr, w32), valid,
            epochs=int(epochs), batch_size=int(det.batch_size), lr=float(det.lr), weight_decay=float(det.weight_decay),
            schedule=det.schedule, clip_grad=det.clip_grad, patience=int(det.patience),
            seed=None if seed is None else derive_seed(seed, "train"), n_threads=det.n_threads, device=det.device,
            eval_batch_size=int(det.score_batch_size), progress=bool(det.progress), description=description,
        ), det.on_divergence)  # fmt: skip
    return net, history


@register
class ConvAutoencoderDetector(ImageDetector):
    """One-class convolutional autoencoder; outlier map = per-pixel charge pull (default) or squared error."""

    name: ClassVar[str] = "conv-autoencoder"
    kind: ClassVar[Kind] = "one-class"

    def __init__(
        self,
        fit_on: str = "bulk",
        channels: Sequence[int] = (16, 32, 64),
        bottleneck: str = "dense",
        latent: int | None = None,
        hidden: int = 256,
        coords: bool = False,
        loss: str = "poisson",
        denoise: float = 0.5,
        map: str = "pull",
        scale: str = "poisson",
        pull_cap: float | None = 3.0,
        neighbours: float = 0.2,
        pull_context: str | None = None,
        smooth: int | None = None,
        activation: str = "relu",
        reduce: str = "mean",
        epochs: int = 40,
        batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 1e-5,
        schedule: str = "cosine",
        clip_grad: float | None = 5.0,
        patience: int = 20,
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
        self.channels = channels
        self.bottleneck = bottleneck
        self.latent = latent
        self.hidden = hidden
        self.coords = coords
        self.loss = loss
        self.denoise = denoise
        self.map = map
        self.scale = scale
        self.pull_cap = pull_cap
        self.neighbours = neighbours
        self.pull_context = pull_context
        self.smooth = smooth
        self.activation = activation
        self.reduce = reduce
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

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        self._check_reduce()
        if self.map not in MAPS:
            raise RareflowError(f"map must be one of {', '.join(MAPS)}, got {self.map!r}")
        if self.scale not in SCALES:
            raise RareflowError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.bottleneck not in BOTTLENECK_LATENT:
            raise RareflowError(f"bottleneck must be one of {', '.join(BOTTLENECK_LATENT)}, got {self.bottleneck!r}")
        if self.loss not in LOSSES:
            raise RareflowError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not 0.0 <= float(self.denoise) <= 1.0:
            raise RareflowError(f"denoise must be a share of the training images in [0, 1], got {self.denoise!r}")
        if self.pull_context is not None and self.scale != "learned":
            raise RareflowError("pull_context needs scale: learned (the poisson scale has no context)")
        if self.pull_cap is not None and not float(self.pull_cap) > 0:
            raise RareflowError(f"pull_cap must be > 0 (p.e.) or null, got {self.pull_cap!r}")
        if not float(self.neighbours) >= 0:
            raise RareflowError(f"neighbours must be >= 0, got {self.neighbours!r}")
        if self.pull_context is not None and self.pull_context not in CONTEXTS:
            raise RareflowError(f"pull_context must be one of {', '.join(CONTEXTS)} or null, got {self.pull_context!r}")
        if self.on_divergence not in ("raise", "keep"):
            raise RareflowError(f"on_divergence must be 'raise' or 'keep', got {self.on_divergence!r}")
        latent = BOTTLENECK_LATENT[self.bottleneck] if self.latent is None else int(self.latent)
        net, self.history_ = fit_autoencoder_net(
            self, X, sample_weight, self.channels, latent, int(self.epochs), "conv-autoencoder", bool(self.coords),
            bottleneck=self.bottleneck, loss=self.loss, denoise=float(self.denoise), hidden=int(self.hidden),
        )  # fmt: skip
        self.model_ = net
        if self.map == "pull":
            self._fit_pull_scale(X)

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        p = next(self.model_.parameters())
        self.model_.eval()
        return predict_batched(lambda x: self.model_(x[:, None])[:, 0].float(), X, self.score_batch_size, p.device,
                               dtype=p.dtype, out_dtype=np.float32, n_threads=self.n_threads)  # fmt: skip

    def _fit_pull_scale(self, X: np.ndarray) -> None:
        """Robust spread of the charge residual vs the reconstruction, on held-out training images."""
        seed = self.random_state
        _, va = split_indices(len(X), float(self.validation_fraction), None if seed is None else derive_seed(seed, "split"))
        Xv = X[va] if len(va) >= 10 else X
        varying = X.std(axis=0) > 0
        if not varying.any():
            raise RareflowError("conv-autoencoder map: pull needs training images that vary")
        rec_full = self._reconstruct(Xv)
        ctx = None
        if self.pull_context is not None:
            with torch.inference_mode():
                ctx = _context(torch.from_numpy(np.ascontiguousarray(Xv)), torch.from_numpy(rec_full),
                               torch.from_numpy(varying.astype(np.float32)), self.pull_context).numpy()[:, varying].ravel().astype(np.float64)  # fmt: skip
        Xv = Xv[:, varying]
        rec = rec_full[:, varying]
        xh = rec.ravel().astype(np.float64)
        res = (expm1_charge(Xv) - expm1_charge(rec)).ravel()
        self.pull_cells_ = varying.astype(np.float32)
        if self.scale == "poisson":
            dim = expm1_charge(xh) < 1.0  # noise floor from cells the network expects dark
            r = res[dim] if dim.sum() >= _PULL_MIN_COUNT else res
            self.pull_s0_ = max(float(1.4826 * np.median(np.abs(r - np.median(r)))), 1e-6)
            return
        levels = np.r_[0.0, 1.0 - np.geomspace(1.0, 1e-4, _PULL_LEVELS)[1:], 1.0]
        edges = np.unique(np.quantile(xh, levels))
        idx = np.clip(np.searchsorted(edges, xh, side="right") - 1, 0, max(len(edges) - 2, 0))
        centres, scales = [], []
        for b in range(max(len(edges) - 1, 1)):
            sel = idx == b
            if sel.sum() < _PULL_MIN_COUNT:
                continue
            r = res[sel]
            centres.append(xh[sel].mean())
            scales.append(1.4826 * np.median(np.abs(r - np.median(r))))
        if not centres:
            centres, scales = [float(xh.mean())], [1.4826 * float(np.median(np.abs(res - np.median(res))))]
        scales = np.asarray(scales)
        floor = max(1e-6, 1e-3 * float(np.max(scales)))
        self.pull_centres_ = np.asarray(centres, dtype=np.float64)
        self.pull_scales_ = np.maximum(scales, floor).astype(np.float64)
        if ctx is not None:
            self._fit_context_scale(xh, ctx, res, edges, idx, floor)

    def _fit_context_scale(self, xh: np.ndarray, ctx: np.ndarray, res: np.ndarray, edges: np.ndarray, idx: np.ndarray,
                           floor: float) -> None:  # fmt: skip
        """2-D robust scale sigma(u_hat, context): the u_hat bins of the 1-D scale x quantile bins of the context."""
        clevels = np.r_[0.0, 1.0 - np.geomspace(0.5, 1e-3, _CONTEXT_LEVELS - 1), 1.0]
        cedges = np.unique(np.quantile(ctx, clevels))
        cidx = np.clip(np.searchsorted(cedges, ctx, side="right") - 1, 0, max(len(cedges) - 2, 0))
        nq = max(len(edges) - 1, 1)
        qcent = np.array([xh[idx == b].mean() if (idx == b).any() else np.nan for b in range(nq)])
        ok = ~np.isnan(qcent)
        qcent = qcent[ok]
        qbins = np.flatnonzero(ok)
        base = np.interp(qcent, self.pull_centres_, self.pull_scales_)
        ccent, rows = [], []
        for k in range(max(len(cedges) - 1, 1)):
            selk = cidx == k
            if selk.sum() < _PULL_MIN_COUNT:
                continue
            ccent.append(float(np.mean(ctx[selk])))
            row = base.copy()
            for j, b in enumerate(qbins):
                sel = selk & (idx == b)
                if sel.sum() >= _PULL_MIN_COUNT:
                    r = res[sel]
                    row[j] = 1.4826 * np.median(np.abs(r - np.median(r)))
            rows.append(row)
        self.pull_qcentres_ = qcent.astype(np.float64)
        self.pull_ccentres_ = np.asarray(ccent, dtype=np.float64)
        self.pull_scales2d_ = np.maximum(np.asarray(rows), floor).astype(np.float64)

    def _smooth_cells(self) -> int:
        return (1 if self.map == "error" else 0) if self.smooth is None else int(self.smooth)

    def _map_batch(self, x: Tensor) -> Tensor:
        if self.map == "pull":
            rec = self.model_(x)[:, 0]
            u = x[:, 0]
            q = torch.sign(u) * torch.expm1(u.abs())
            qh = torch.sign(rec) * torch.expm1(rec.abs())
            cells = getattr(self, "pull_cells_", None)
            if self.scale == "poisson":  # counting noise: sigma^2 = s0^2 + max(q_hat, 0)
                sigma = torch.sqrt(float(self.pull_s0_) ** 2 + qh.clamp_min(0.0))
            elif self.pull_context is None:
                at = rec if self.pull_cap is None else rec.clamp(max=float(np.log1p(float(self.pull_cap))))
                c = torch.as_tensor(self.pull_centres_, dtype=rec.dtype, device=rec.device)
                s = torch.as_tensor(self.pull_scales_, dtype=rec.dtype, device=rec.device)
                sigma = _interp(at, c, s)
            else:
                at = rec if self.pull_cap is None else rec.clamp(max=float(np.log1p(float(self.pull_cap))))
                cm = torch.ones_like(u[0]) if cells is None else torch.as_tensor(cells, dtype=u.dtype, device=u.device)
                ctx = _context(u, rec, cm, self.pull_context)
                sigma = _interp2(at, ctx, *(torch.as_tensor(a, dtype=rec.dtype, device=rec.device)
                                            for a in (self.pull_qcentres_, self.pull_ccentres_, self.pull_scales2d_)))  # fmt: skip
            err = torch.clamp((q - qh) / sigma, min=0.0)
            if cells is not None:
                err = err * torch.as_tensor(cells, dtype=err.dtype, device=err.device)
            a = float(self.neighbours)
            if a > 0:  # + a x (sum of the pull over the 8 surrounding cells): artefacts are extended
                ring = F.conv2d(err[:, None], torch.ones(1, 1, 3, 3, dtype=err.dtype, device=err.device), padding=1)[:, 0] - err
                err = err + a * ring
                if cells is not None:
                    err = err * torch.as_tensor(cells, dtype=err.dtype, device=err.device)
        else:
            err = self.model_.error_map(x)
        k = self._smooth_cells()
        if k <= 0:
            return err
        return F.avg_pool2d(err[:, None], 2 * k + 1, stride=1, padding=k, count_include_pad=False)[:, 0]

    def _export(self) -> FittedState:
        arrays = state_arrays(self.model_, _PREFIX)
        if self.map == "pull" and self.scale == "poisson":
            arrays["pull/s0"] = np.array([self.pull_s0_])
            arrays["pull/cells"] = self.pull_cells_
        elif self.map == "pull":
            arrays["pull/centres"] = self.pull_centres_
            arrays["pull/scales"] = self.pull_scales_
            arrays["pull/cells"] = self.pull_cells_
            if self.pull_context is not None:
                arrays["pull/context_qcentres"] = self.pull_qcentres_
                arrays["pull/context_ccentres"] = self.pull_ccentres_
                arrays["pull/context_scales"] = self.pull_scales2d_
        return FittedState(json={"config": self.model_.config, "image_shape": list(self.image_shape_)}, arrays=arrays)

    def _import(self, state: FittedState) -> None:
        cfg = state.json["config"]
        model = ConvAutoencoderNet(tuple(cfg["channels"]), cfg["latent"], cfg["activation"], cfg["in_channels"], cfg["coords"],
                                   cfg.get("bottleneck", "conv"), cfg.get("grid"), cfg.get("hidden", 256))  # fmt: skip
        load_weights(model, state.arrays, _PREFIX, "conv-autoencoder")
        self.bottleneck = cfg.get("bottleneck", "conv")  # files saved before the dense bottleneck: conv
        if self.map == "pull" and "pull/s0" not in state.arrays and "pull/centres" in state.arrays:
            self.scale = "learned"  # saved before scale existed: its learned scale is what it was fitted with
        if self.map == "pull" and self.scale == "poisson":
            if "pull/s0" not in state.arrays:
                raise RareflowError("the saved conv-autoencoder has no poisson pull scale (saved with scale: learned?); retrain")
            self.pull_s0_ = float(np.asarray(state.arrays["pull/s0"]).ravel()[0])
            self.pull_cells_ = np.asarray(state.arrays["pull/cells"], dtype=np.float32)
        elif self.map == "pull":
            if "pull/centres" not in state.arrays:
                raise RareflowError("the saved conv-autoencoder has no pull scale (saved with map: error?); retrain")
            self.pull_centres_ = np.asarray(state.arrays["pull/centres"], dtype=np.float64)
            self.pull_scales_ = np.asarray(state.arrays["pull/scales"], dtype=np.float64)
            if "pull/cells" in state.arrays:  # files saved before the camera-cell mask: no mask
                self.pull_cells_ = np.asarray(state.arrays["pull/cells"], dtype=np.float32)
            if self.pull_context is not None:
                if "pull/context_scales" not in state.arrays:
                    raise RareflowError("the saved conv-autoencoder has no context pull scale (saved without pull_context?); retrain")
                self.pull_qcentres_ = np.asarray(state.arrays["pull/context_qcentres"], dtype=np.float64)
                self.pull_ccentres_ = np.asarray(state.arrays["pull/context_ccentres"], dtype=np.float64)
                self.pull_scales2d_ = np.asarray(state.arrays["pull/context_scales"], dtype=np.float64)
        self.model_ = model.to(resolve_device(self.device)).eval()
        self.image_shape_ = tuple(int(v) for v in state.json["image_shape"])


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """``np.interp`` for tensors: piecewise-linear in ``xp`` (increasing), constant beyond its ends."""
    if xp.numel() == 1:
        return fp.expand_as(x)
    xc = x.clamp(xp[0], xp[-1])
    i = torch.searchsorted(xp, xc.contiguous(), right=True).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    t = (xc - x0) / (x1 - x0).clamp_min(1e-12)
    return f0 + t * (f1 - f0)


def _context(u: Tensor, rec: Tensor, cells: Tensor, how: str) -> Tensor:
    """Neighbourhood brightness (p.e.) per cell of log1p images ``u`` / reconstructions ``rec`` (n, H, W):
    ``rec_max`` max of q_hat over the 3x3 cells, ``rec_sum`` sum of q_hat over them, ``obs_sum`` sum of
    the observed q over the 8 surrounding cells (the cell itself left out); camera cells only."""
    src = u if how == "obs_sum" else rec
    q = (torch.sign(src) * torch.expm1(src.abs())).clamp_min(0.0) * cells
    if how == "rec_max":
        return F.max_pool2d(q[:, None], 3, stride=1, padding=1)[:, 0]
    ring = F.conv2d(q[:, None], torch.ones(1, 1, 3, 3, dtype=q.dtype, device=q.device), padding=1)[:, 0]
    return ring - q if how == "obs_sum" else ring


def _interp2(x: Tensor, y: Tensor, xp: Tensor, yp: Tensor, fp: Tensor) -> Tensor:
    """Bilinear interpolation of ``fp`` (len(yp), len(xp)) at (x, y); constant beyond the ends."""
    rows = torch.stack([_interp(x, xp, fp[k]) for k in range(fp.shape[0])], dim=-1)  # (..., K)
    if yp.numel() == 1:
        return rows[..., 0]
    yc = y.clamp(yp[0], yp[-1])
    i = torch.searchsorted(yp, yc.contiguous(), right=True).clamp(1, yp.numel() - 1)
    y0, y1 = yp[i - 1], yp[i]
    t = (yc - y0) / (y1 - y0).clamp_min(1e-12)
    f0 = torch.gather(rows, -1, (i - 1)[..., None])[..., 0]
    f1 = torch.gather(rows, -1, i[..., None])[..., 0]
    return f0 + t * (f1 - f0)
