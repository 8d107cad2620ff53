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

from rareflow.detectors import register
from rareflow.detectors._image import IMAGE_SPECS, MapDetector, channel_list, varying_cells
from rareflow.detectors.base import FittedState, Kind
from rareflow.detectors.params import Choice, Flag, Number
from rareflow.errors import RareflowError
from rareflow.iact.images import expm1_charge
from rareflow.nets.activations import ACTIVATIONS
from rareflow.nets.conv import ConvAutoencoderNet
from rareflow.outliers.blobs import add_light_blobs
from rareflow.training import SPLIT, TRAIN, Batch, StreamedRows, split_indices, weighted_mean

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
_PULL_MAX_IMAGES = 5000  # held-out images the pull scale is fitted on (a seeded subset beyond): bounded memory
_VALID_KEY = "denoise-valid"  # seed key of the corrupted validation images


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
            inputs = add_light_blobs(batch.x, cells.to(batch.x.device), denoise)  # torch's global RNG, seeded by train()
        rec = model(inputs)
        if loss == "log":
            err = (target - rec) ** 2
        else:
            qh = _charge(rec)
            z = (_charge(target) - qh) / torch.sqrt(_LOSS_NOISE_PE**2 + qh.detach().clamp_min(0.0))
            err = 2.0 * F.huber_loss(z, torch.zeros_like(z), reduction="none", delta=_LOSS_HUBER)
        return weighted_mean(err.flatten(1).mean(1), batch.weight)

    return loss_fn


def _corrupted_validation(batch: Batch, cells: Tensor, denoise: float, seed: int) -> Batch:
    """The validation images with synthetic blobs, drawn once (fixed seed), clean images as ``context``."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(batch, StreamedRows):  # rows of a memory-mapped file: the validation share is read once
        batch = batch.load()
    noisy = torch.cat([add_light_blobs(batch.x[i : i + 64], cells, denoise, gen) for i in range(0, len(batch), 64)])
    return Batch(x=noisy, context=batch.x, weight=batch.weight)


@register
class ConvAutoencoderDetector(MapDetector):
    """One-class convolutional autoencoder; outlier map = per-pixel charge pull (default) or squared error."""

    name: ClassVar[str] = "conv-autoencoder"
    kind: ClassVar[Kind] = "one-class"
    training_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 40, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-5, "patience": 20, "score_batch_size": 512,
    }  # fmt: skip
    legacy_seed_keys: ClassVar[dict[tuple[str, ...], str]] = {("init",): "conv-ae-init"}
    param_specs: ClassVar[dict[str, Any]] = {
        **IMAGE_SPECS, "bottleneck": Choice(tuple(BOTTLENECK_LATENT)), "latent": Number(integer=True, low=1, none_ok=True),
        "hidden": Number(integer=True, low=1), "coords": Flag(), "loss": Choice(LOSSES),
        "denoise": Number(low=0.0, high=1.0), "map": Choice(MAPS), "scale": Choice(SCALES),
        "pull_cap": Number(low=0.0, low_open=True, none_ok=True), "neighbours": Number(low=0.0),
        "smooth": Number(integer=True, low=0, none_ok=True), "activation": Choice(tuple(ACTIVATIONS)),
        "pull_context": Choice(tuple(CONTEXTS), none_ok=True),
    }  # fmt: skip

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
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    # -- the template's hooks --------------------------------------------------------------------
    def _check_params(self) -> None:
        channel_list(self.channels, "channels", self.name)
        if self.pull_context is not None and self.pull_context not in CONTEXTS:
            raise RareflowError(f"pull_context must be one of {', '.join(CONTEXTS)} or null, got {self.pull_context!r}")
        if self.pull_context is not None and self.scale != "learned":
            raise RareflowError("pull_context needs scale: learned (the poisson scale has no context)")

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> ConvAutoencoderNet:
        self._cells = torch.from_numpy(varying_cells(X).astype(np.float32))
        latent = BOTTLENECK_LATENT[self.bottleneck] if self.latent is None else int(self.latent)
        return ConvAutoencoderNet(channel_list(self.channels, "channels", self.name), latent, self.activation,
                                  coords=bool(self.coords), bottleneck=self.bottleneck, grid=X.shape[1:],
                                  hidden=int(self.hidden))  # fmt: skip

    def _loss(self) -> Any:
        return reconstruction_loss(self.loss, float(self.denoise), self._cells)

    def _train(self, model: nn.Module, loss: Any, train: Batch, valid: Batch | None, val_loss: Any, description: str,
               epochs: int | None = None, key: str = TRAIN) -> dict[str, Any]:  # fmt: skip
        """The template's run, with the validation images corrupted once (fixed seed) when denoising."""
        if valid is not None and len(valid) and float(self.denoise) > 0:
            seed = self._seed(_VALID_KEY)
            valid = _corrupted_validation(valid, self._cells, float(self.denoise), 0 if seed is None else seed)
        return super()._train(model, loss, train, valid, val_loss, description, epochs, key)

    def _after_fit(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> None:
        del self._cells
        if self.map == "pull":
            self._fit_pull_scale(X)

    def _arch(self) -> dict[str, Any]:
        return self.model_.config

    def _from_arch(self, cfg: dict[str, Any]) -> ConvAutoencoderNet:
        return ConvAutoencoderNet(tuple(cfg["channels"]), cfg["latent"], cfg["activation"], cfg["in_channels"], cfg["coords"],
                                  cfg.get("bottleneck", "conv"), cfg.get("grid"), cfg.get("hidden", 256))  # fmt: skip

    def _reconstruct(self, X: np.ndarray) -> np.ndarray:
        return self._predict(lambda x: self.model_(x[:, None])[:, 0].float(), X, out_dtype=np.float32)

    def _fit_pull_scale(self, X: np.ndarray) -> None:
        """Robust spread of the charge residual vs the reconstruction, on held-out training images."""
        _, va = split_indices(len(X), self.training_config().validation_fraction, self._seed(SPLIT))
        if len(va) > _PULL_MAX_IMAGES:  # millions of residuals already; more only costs memory
            seed = self._seed(SPLIT, "pull")
            va = np.sort(np.random.default_rng(seed).choice(va, _PULL_MAX_IMAGES, replace=False))
        Xv = X[va] if len(va) >= 10 else X[:_PULL_MAX_IMAGES]
        varying = varying_cells(X)
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

    def _export_extra(self, state: FittedState) -> None:
        """The pull scale beside the weights (``pull/...`` arrays)."""
        arrays = state.arrays
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

    def _import(self, state: FittedState) -> None:
        pull = {k: state.arrays.pop(k) for k in list(state.arrays) if k.startswith("pull/")}
        super()._import(state)
        state.arrays.update(pull)
        self.bottleneck = self.model_.config.get("bottleneck", "conv")  # files saved before the dense bottleneck: conv
        if self.map == "pull" and "pull/s0" not in pull and "pull/centres" in pull:
            self.scale = "learned"  # saved before scale existed: its learned scale is what it was fitted with
        if self.map == "pull" and self.scale == "poisson":
            if "pull/s0" not in pull:
                raise RareflowError("the saved conv-autoencoder has no poisson pull scale (saved with scale: learned?); retrain")
            self.pull_s0_ = float(np.asarray(pull["pull/s0"]).ravel()[0])
            self.pull_cells_ = np.asarray(pull["pull/cells"], dtype=np.float32)
        elif self.map == "pull":
            if "pull/centres" not in pull:
                raise RareflowError("the saved conv-autoencoder has no pull scale (saved with map: error?); retrain")
            self.pull_centres_ = np.asarray(pull["pull/centres"], dtype=np.float64)
            self.pull_scales_ = np.asarray(pull["pull/scales"], dtype=np.float64)
            if "pull/cells" in pull:  # files saved before the camera-cell mask: no mask
                self.pull_cells_ = np.asarray(pull["pull/cells"], dtype=np.float32)
            if self.pull_context is not None:
                if "pull/context_scales" not in pull:
                    raise RareflowError("the saved conv-autoencoder has no context pull scale (saved without pull_context?); retrain")
                self.pull_qcentres_ = np.asarray(pull["pull/context_qcentres"], dtype=np.float64)
                self.pull_ccentres_ = np.asarray(pull["pull/context_ccentres"], dtype=np.float64)
                self.pull_scales2d_ = np.asarray(pull["pull/context_scales"], dtype=np.float64)


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
