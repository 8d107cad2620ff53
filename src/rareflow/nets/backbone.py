r"""Frozen feature extractors for the flows on images (``fastflow``, ``image-flow-classifier``).

* :class:`FrozenFeatures` — a backbone (a :class:`~rareflow.nets.conv.ConvEncoder` or any module
  mapping (n, 1, H, W) to (n, C, h, w)) with its parameters frozen, keeping the output of stage
  ``upto`` of a built-in encoder;
* :class:`StandardisedFeatures` — that backbone followed by the per-channel standardisation
  :math:`\tilde f = (f(u) - \mu_c)/\sigma_c` (training mean / std over images and positions,
  stored as buffers) and optional Gaussian noise while training (positions whose features never
  vary — cells outside the camera — would otherwise get an unbounded density).

No pretrained weights exist for Cherenkov images: the detectors train the encoder first (as the
encoder of a reconstruction autoencoder, :class:`~rareflow.nets.conv.ConvAutoencoderNet`) or
keep seeded random weights, then freeze it here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.nets.conv import ConvEncoder, pad_to_multiple


class FrozenFeatures(nn.Module):
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

    @property
    def input_multiple(self) -> int:
        """Padding multiple of a built-in encoder (inputs padded before the stride-2 stages), else 1."""
        if isinstance(self.backbone, ConvEncoder) and self.upto is not None:
            return 2 ** int(self.upto)
        return 1


class StandardisedFeatures(nn.Module):
    r""":class:`FrozenFeatures` -> :math:`(f - \mu_c)/\sigma_c` (+ ``noise`` x N(0, 1) in train mode)."""

    def __init__(self, backbone: FrozenFeatures, channels: int) -> None:
        super().__init__()
        self.features = backbone
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.noise = 0.0

    @property
    def channels(self) -> int:
        return int(self.mean.numel())

    def forward(self, x: Tensor) -> Tensor:
        f = (self.features(x) - self.mean[:, None, None]) / self.std[:, None, None]
        if self.training and self.noise > 0:
            f = f + self.noise * torch.randn_like(f)
        return f

    @torch.no_grad()
    def fit_scaling(self, X: np.ndarray, batch_size: int = 512) -> None:
        """Per-channel mean / std of the backbone features over the grid images ``X`` (n, H, W)."""
        s1 = s2 = None
        n = 0
        p = next(self.features.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
        for start in range(0, len(X), int(batch_size)):
            chunk = torch.from_numpy(np.ascontiguousarray(X[start : start + int(batch_size)][:, None])).to(device)
            f = self.features(chunk).double()
            s1 = f.sum((0, 2, 3)) if s1 is None else s1 + f.sum((0, 2, 3))
            s2 = (f * f).sum((0, 2, 3)) if s2 is None else s2 + (f * f).sum((0, 2, 3))
            n += f.shape[0] * f.shape[2] * f.shape[3]
        mean = s1 / n
        std = torch.sqrt(torch.clamp(s2 / n - mean * mean, min=0.0)).clamp_min(1e-3)
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())

    def upsample(self, m: Tensor, x: Tensor) -> Tensor:
        """A per-position map ``m`` (n, h, w) brought bilinearly to the input grid of ``x`` (n, 1, H, W)."""
        h, w = x.shape[-2:]
        if m.shape[-2:] == (h, w):
            return m
        mult = self.features.input_multiple
        hp, wp = pad_to_multiple(x, mult).shape[-2:] if mult > 1 else (h, w)
        up = F.interpolate(m[:, None], size=(hp, wp), mode="bilinear", align_corners=False)[:, 0]
        return up[..., :h, :w]
