r"""Synthetic additive artefacts for images: smooth random blobs of extra light.

The training corruption of the denoising ``conv-autoencoder`` (the reconstructive half of DRAEM,
Zavrtanik, Kristan & Skočaj 2021, "DRAEM — a discriminatively trained reconstruction embedding for
surface anomaly detection", ICCV, arXiv:2108.07610): a random subset of the training images gets
extra light in a random smooth region, and the network learns to return the image **without** it.
The regions are thresholded Gaussian random fields (DRAEM thresholds Perlin noise):

.. math:: f = G_\sigma * \varepsilon, \quad \varepsilon_{h,w} \sim N(0, 1), \qquad
          M = [f > f_{(k)}], \quad k = \lceil a \cdot N_{\mathrm{cells}} \rceil,

with :math:`\sigma \sim \log U(0.6, 2.5)` cells and the covered share :math:`a \sim U(0.5\%, 5\%)`
of the camera cells, and added in charge units (the images are :math:`\log(1 + q)`):

.. math:: q' = q + A \cdot M \cdot t, \qquad A \sim \log U(5, 100), \quad t_{h,w} \sim U(0.5, 1).

Nothing here is shaped like a particular artefact (no rings, no pixel clusters): blobs of one to
a few tens of cells, compact or ragged, dim or bright — "light that does not belong to the image".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SIGMA_CELLS = (0.6, 2.5)
COVER = (0.005, 0.05)
AMPLITUDE = (5.0, 100.0)


def _log_uniform(lo: float, hi: float, size: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    return torch.exp(torch.empty(size).uniform_(math.log(lo), math.log(hi), generator=generator))


def _gaussian_field(n: int, shape: tuple[int, int], sigma: float, generator: torch.Generator | None) -> Tensor:
    """White noise (n, 1, H, W) smoothed by a separable Gaussian of ``sigma`` cells (wrapping at the edges)."""
    r = max(int(math.ceil(3.0 * sigma)), 1)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    f = torch.randn(n, 1, *shape, generator=generator)
    f = F.conv2d(F.pad(f, (r, r, 0, 0), mode="circular"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(f, (0, 0, r, r), mode="circular"), k.view(1, 1, -1, 1))


def blob_masks(n: int, cells: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``n`` random blob masks (n, 1, H, W) of 0/1 on the camera cells ``cells`` (H, W) of 0/1."""
    sigma = float(_log_uniform(*SIGMA_CELLS, (1,), generator))
    f = _gaussian_field(n, (int(cells.shape[0]), int(cells.shape[1])), sigma, generator) * cells
    share = torch.empty(n).uniform_(*COVER, generator=generator)
    k = (share * cells.sum()).ceil().long().clamp(1, max(int(cells.sum()) - 1, 1))
    ranked = torch.sort((f + (cells - 1.0) * 1e9).flatten(1), dim=1, descending=True).values
    threshold = ranked.gather(1, k.view(-1, 1))[:, 0]
    return (f > threshold.view(n, 1, 1, 1)).float() * cells


def add_light_blobs(u: Tensor, cells: Tensor, fraction: float, generator: torch.Generator | None = None) -> Tensor:
    r"""Copy of the log1p images ``u`` (n, 1, H, W) where a random ``fraction`` of them get a blob of
    extra light (charge units, see the module docstring); ``cells`` (H, W) marks the camera cells."""
    n = int(u.shape[0])
    cells = cells.to(dtype=torch.float32, device="cpu")
    mask = blob_masks(n, cells, generator)
    amplitude = _log_uniform(*AMPLITUDE, (n, 1, 1, 1), generator)
    texture = torch.empty(n, 1, *cells.shape).uniform_(0.5, 1.0, generator=generator)
    chosen = (torch.rand(n, 1, 1, 1, generator=generator) < float(fraction)).float()
    add = (amplitude * mask * texture * chosen).to(device=u.device, dtype=u.dtype)
    q = torch.sign(u) * torch.expm1(u.abs()) + add
    return torch.sign(q) * torch.log1p(q.abs())
