r"""2-D flow steps for image detectors (FastFlow) and the self-supervised image loss.

The conv nets (encoder, autoencoder) live in :mod:`rareflow.nets.conv`.

* :class:`AffineCoupling2d` — the FastFlow step (Yu et al. 2021, arXiv:2111.07677; coupling of
  Dinh et al. 2017): split the channels :math:`x = (x_a, x_b)`,

  .. math:: y_a = x_a, \qquad y_b = x_b \odot e^{s(x_a)} + t(x_a),
            \qquad s = \kappa \tanh(\tilde s / \kappa),

  with :math:`(\tilde s, t)` from a conv subnet (3x3 or 1x1 kernels) and soft clamping
  :math:`\kappa` (FrEIA's ``AllInOneBlock``). The log-determinant is
  :math:`\sum_{c,h,w} s_{c,h,w}`; :meth:`forward` returns it per position, :math:`\sum_c s_{c,h,w}`.
* :class:`FlowSteps2d` — couplings alternating the kernel (3x3, 1x1, ...) and the half that is
  transformed, and the per-position log-likelihood

  .. math:: \log p(x)_{h,w} = \sum_c \log N(z_{c,h,w}; 0, 1) + \sum_{k}\sum_c s^{(k)}_{c,h,w},

  whose sum over positions is the exact log-density of the feature map (the coupling Jacobian is
  triangular even though :math:`s` sees a 3x3 neighbourhood of :math:`x_a`).
* :func:`selfsup_image_loss` — the self-supervised two-class loss of the rare scenario
  (Chiu & Lai 2023) on image log-likelihoods: :math:`L = L_B - L_R`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.nets.activations import activation as _act
from rareflow.nets.conv import coordinate_channels

LOG_2PI = math.log(2.0 * math.pi)


class AffineCoupling2d(nn.Module):
    """One FastFlow step: affine coupling along channels with a conv subnet (``kernel`` 3 or 1)."""

    def __init__(self, channels: int, hidden: int, kernel: int = 3, swap: bool = False, clamp: float = 2.0,
                 activation: str = "relu", cond_channels: int = 0) -> None:  # fmt: skip
        super().__init__()
        if channels < 2:
            raise RareflowError(f"a coupling needs >= 2 feature channels (got {channels}); widen the backbone")
        if kernel not in (1, 3):
            raise RareflowError(f"coupling kernel must be 1 or 3 (got {kernel})")
        self.swap, self.clamp = bool(swap), float(clamp)
        n_a = channels // 2
        self.n_a, self.n_b = (channels - n_a, n_a) if swap else (n_a, channels - n_a)
        pad = kernel // 2
        self.subnet = nn.Sequential(
            nn.Conv2d(self.n_a + int(cond_channels), hidden, kernel, padding=pad), _act(activation),
            nn.Conv2d(hidden, 2 * self.n_b, kernel, padding=pad),
        )  # fmt: skip
        nn.init.zeros_(self.subnet[-1].weight)  # start at the identity
        nn.init.zeros_(self.subnet[-1].bias)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.swap:
            x_b, x_a = x[:, : self.n_b], x[:, self.n_b :]
        else:
            x_a, x_b = x[:, : self.n_a], x[:, self.n_a :]
        return x_a, x_b

    def _join(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        return torch.cat([x_b, x_a] if self.swap else [x_a, x_b], dim=1)

    def _scale_shift(self, x_a: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        s, t = self.subnet(x_a if cond is None else torch.cat([x_a, cond], dim=1)).chunk(2, dim=1)
        return self.clamp * torch.tanh(s / self.clamp), t

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(y, logdet)`` with ``logdet`` per position (n, H, W); ``cond``: conditioning channels."""
        x_a, x_b = self._split(x)
        s, t = self._scale_shift(x_a, cond)
        return self._join(x_a, x_b * torch.exp(s) + t), s.sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        """:math:`x_b = (y_b - t(y_a)) e^{-s(y_a)}`."""
        y_a, y_b = self._split(y)
        s, t = self._scale_shift(y_a, cond)
        return self._join(y_a, (y_b - t) * torch.exp(-s))


class FlowSteps2d(nn.Module):
    r"""``steps`` couplings, kernels cycling through ``kernels`` (3, 1), halves alternating.

    ``position=True`` conditions every coupling subnet on :func:`coordinate_channels`, so the flow
    models :math:`p(f_{h,w} \mid h, w)` (CFLOW-AD's positional conditioning) instead of one
    density shared by all positions.
    """

    def __init__(self, channels: int, steps: int = 4, hidden: int | None = None, kernels: Sequence[int] = (3, 1),
                 clamp: float = 2.0, activation: str = "relu", position: bool = False) -> None:  # fmt: skip
        super().__init__()
        if steps < 1:
            raise RareflowError(f"steps must be >= 1 (got {steps})")
        hid = int(hidden or channels)
        self.position = bool(position)
        self.couplings = nn.ModuleList(
            AffineCoupling2d(channels, hid, int(kernels[k % len(kernels)]), swap=bool(k % 2), clamp=clamp,
                             activation=activation, cond_channels=2 if position else 0)  # fmt: skip
            for k in range(int(steps))
        )

    def _cond(self, x: Tensor) -> Tensor | None:
        return coordinate_channels(x) if self.position else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, logdet)``, ``logdet`` per position (n, H, W)."""
        cond = self._cond(x)
        logdet = torch.zeros(x.shape[0], *x.shape[2:], dtype=x.dtype, device=x.device)
        for c in self.couplings:
            x, ld = c(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor) -> Tensor:
        """The feature map whose :meth:`forward` gives ``z``."""
        cond = self._cond(z)
        for c in reversed(self.couplings):
            z = c.inverse(z, cond)
        return z

    def log_prob_map(self, x: Tensor) -> Tensor:
        """:math:`\\log p` per position (n, H, W): standard-normal latent + per-position log-det."""
        z, logdet = self(x)
        return -0.5 * (z * z).sum(1) - 0.5 * z.shape[1] * LOG_2PI + logdet

    def latent_map(self, x: Tensor) -> Tensor:
        """:math:`\\tfrac12 \\overline{z^2}` per position (FastFlow's map: no Jacobian term)."""
        z, _ = self(x)
        return 0.5 * (z * z).mean(1)


def selfsup_image_loss(
    log_p: Tensor, own: Tensor, weight: Tensor | None = None, floor: float = -math.inf
) -> Tensor:
    r"""Self-supervised two-class loss on image log-likelihoods (Chiu & Lai 2023), :math:`L = L_B - L_R`:

    .. math:: L_B = \frac{1}{|B|}\sum_{b} -\log p(x_b), \qquad
              L_R = \sum_{r} -\log p(x_r)\; I\big[\log p(x_r) > c \;\wedge\; \log p(x_r) > \min_b \log p(x_b)\big],

    ``own`` marks the modelled class B (bool), the others are R; :math:`c` = ``floor``. Minimising
    raises the likelihood of B and lowers that of the R events still inside B's likelihood range,
    stopping at :math:`c` so no R likelihood is driven to :math:`-\infty`. ``weight`` weighs L_B.
    """
    own = own.bool()
    lp_b, lp_r = log_p[own], log_p[~own]
    if lp_b.numel() == 0:
        return log_p.sum() * 0.0
    w_b = None if weight is None else weight[own]
    l_b = -(lp_b.mean() if w_b is None else (lp_b * w_b).sum() / w_b.sum().clamp_min(1e-12))
    if lp_r.numel() == 0:
        return l_b
    active = (lp_r > floor) & (lp_r > lp_b.min().detach())
    l_r = (-lp_r * active.to(lp_r.dtype)).sum()
    return l_b - l_r
