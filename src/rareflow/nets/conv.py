r"""Convolutional nets for grid images: :class:`ConvEncoder` and :class:`ConvAutoencoderNet`.

* :class:`ConvEncoder` — stages of 3x3 convolutions (stride 2 between stages); inputs of any size
  are zero-padded to a multiple of :math:`2^{stages-1}`. It is fastflow's backbone.
* :class:`ConvAutoencoderNet` — that encoder, a bottleneck and a mirror decoder (the
  ``conv-autoencoder`` net; Masci et al. 2011).
* :class:`ConvClassifierNet` — that encoder on the image (+ CoordConv channels), global average
  and max pooling, optional extra features appended, and an MLP head to one logit
  (the ``cnn-classifier`` net).
* :func:`coordinate_channels` — CoordConv position channels (Liu et al. 2018).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.nets.activations import activation as _act
from rareflow.nets.mlp import mlp

BOTTLENECKS = ("conv", "dense")


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad (bottom, right) so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


class ConvEncoder(nn.Module):
    """Stages of 3x3 conv + activation; stage 0 keeps the size, later stages halve it (stride 2)."""

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (8, 16, 32), activation: str = "relu") -> None:
        super().__init__()
        if not channels or any(int(c) < 1 for c in channels):
            raise RareflowError(f"channels must be a non-empty list of sizes >= 1 (got {list(channels)})")
        sizes = [int(in_channels), *[int(c) for c in channels]]
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=1 if i == 0 else 2, padding=1), _act(activation))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        )

    @property
    def multiple(self) -> int:
        """Input sizes divisible by this go through without rounding."""
        return 2 ** (len(self.stages) - 1)

    def forward(self, x: Tensor, upto: int | None = None) -> Tensor:
        r"""Output of stage ``upto`` (default: the last), the input zero-padded to a multiple of
        :math:`2^{upto}` (so the output has exactly :math:`\lceil H/2^{upto} \rceil` rows)."""
        last = len(self.stages) - 1 if upto is None else int(upto)
        x = pad_to_multiple(x, 2**last)
        for stage in self.stages[: last + 1]:
            x = stage(x)
        return x


def coordinate_channels(x: Tensor) -> Tensor:
    """Two channels (n, 2, H, W) holding the cell's column and row position in [-1, 1] (CoordConv,
    Liu et al. 2018; the positional conditioning of CFLOW-AD, Gudovskiy et al. 2022)."""
    n, _, h, w = x.shape
    yy = torch.linspace(1.0, -1.0, h, dtype=x.dtype, device=x.device)[:, None].expand(h, w)
    xx = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device)[None, :].expand(h, w)
    return torch.stack([xx, yy])[None].expand(n, 2, h, w)


class ConvAutoencoderNet(nn.Module):
    """:class:`ConvEncoder` -> bottleneck -> mirror decoder (nearest upsample + 3x3 conv).

    ``bottleneck="conv"``: a 1x1 convolution down to ``latent`` channels at every position of the
    last encoder stage (a spatial code, local). ``bottleneck="dense"``: the last stage is flattened
    and passed through ``hidden`` -> ``latent`` -> ``hidden`` fully connected units (one global code
    per image; needs the grid size ``grid``): a whole-image model such as "one shower ellipse"
    cannot be assembled from local patches, so off-model light (a muon arc) has no code to go to.
    ``coords=True`` appends :func:`coordinate_channels` to the encoder input, so the code can
    depend on where in the camera a pattern lies (convolutions alone are translation-equivariant;
    gamma images point to the camera centre); only the image channels are reconstructed.
    """

    def __init__(
        self, channels: Sequence[int] = (8, 16, 32), latent: int = 4, activation: str = "relu", in_channels: int = 1,
        coords: bool = False, bottleneck: str = "conv", grid: Sequence[int] | None = None, hidden: int = 256,
    ) -> None:  # fmt: skip
        super().__init__()
        if int(latent) < 1:
            raise RareflowError(f"latent must be >= 1 (got {latent})")
        if bottleneck not in BOTTLENECKS:
            raise RareflowError(f"bottleneck must be one of {', '.join(BOTTLENECKS)}, got {bottleneck!r}")
        if bottleneck == "dense" and (grid is None or len(grid) != 2):
            raise RareflowError("a dense bottleneck needs the grid size (H, W)")
        self.config = {"channels": [int(c) for c in channels], "latent": int(latent), "activation": activation,
                       "in_channels": int(in_channels), "coords": bool(coords), "bottleneck": bottleneck,
                       "grid": None if grid is None else [int(g) for g in grid], "hidden": int(hidden)}  # fmt: skip
        self.coords = bool(coords)
        self.encoder = ConvEncoder(int(in_channels) + (2 if coords else 0), channels, activation)
        ch = [int(c) for c in channels]
        if bottleneck == "conv":
            self.bottleneck = nn.Sequential(nn.Conv2d(ch[-1], int(latent), 1), _act(activation), nn.Conv2d(int(latent), ch[-1], 1))
        else:
            m = self.encoder.multiple
            shape = (ch[-1], -(-int(grid[0]) // m), -(-int(grid[1]) // m))  # type: ignore[index]
            size = shape[0] * shape[1] * shape[2]
            self.bottleneck = nn.Sequential(
                nn.Flatten(), nn.Linear(size, int(hidden)), _act(activation), nn.Linear(int(hidden), int(latent)),
                nn.Linear(int(latent), int(hidden)), _act(activation), nn.Linear(int(hidden), size), _act(activation),
                nn.Unflatten(1, shape),
            )  # fmt: skip
        ups: list[nn.Module] = []
        for a, b in zip(ch[::-1][:-1], ch[::-1][1:]):
            ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(a, b, 3, padding=1), _act(activation)))
        self.decoder = nn.Sequential(*ups, nn.Conv2d(ch[0], int(in_channels), 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x`` (n, C, H, W), same size."""
        h, w = x.shape[-2:]
        inp = torch.cat([x, coordinate_channels(x)], dim=1) if self.coords else x
        out = self.decoder(self.bottleneck(self.encoder(inp)))
        return out[..., :h, :w]

    def error_map(self, x: Tensor) -> Tensor:
        """Per-cell squared error (n, H, W), summed over input channels."""
        return ((x - self(x)) ** 2).sum(1)


class ConvClassifierNet(nn.Module):
    r"""Logit of (image, extra features): :math:`f = \mathrm{MLP}([\mathrm{avg}(E(u)), \max(E(u)), v])`.

    ``E`` is a :class:`ConvEncoder` on the image (with :func:`coordinate_channels` when ``coords``,
    so the pooled features can depend on where a pattern lies: gamma images point to the source),
    pooled over positions by mean and max (2 C values), ``v`` the ``n_extra`` extra features
    (already standardised by the caller), then ``hidden`` layers with dropout to one logit.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64), hidden: Sequence[int] = (64,), dropout: float = 0.2,
                 n_extra: int = 0, activation: str = "relu", coords: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.coords = bool(coords)
        self.encoder = ConvEncoder(1 + (2 if coords else 0), channels, activation)
        width = 2 * int(list(channels)[-1]) + int(n_extra)
        self.head = mlp([width, *[int(h) for h in hidden], 1], activation, float(dropout))

    def forward(self, image: Tensor, extra: Tensor | None = None) -> Tensor:
        """Logits (n,) of images (n, 1, H, W) and extra features (n, F) or None."""
        inp = torch.cat([image, coordinate_channels(image)], dim=1) if self.coords else image
        f = self.encoder(inp)
        z = torch.cat([f.mean((2, 3)), f.amax((2, 3))], dim=1)
        if extra is not None and extra.shape[1]:
            z = torch.cat([z, extra.to(z.dtype)], dim=1)
        return self.head(z).squeeze(-1)
