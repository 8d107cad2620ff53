"""``autoencoder``: one-class MLP autoencoder (optionally a VAE); score = reconstruction error.

The seed slides' one-class recipe ("min MSE"): train :math:`g_\\phi \\circ e_\\theta` to
reconstruct the training class, then rank events by

.. math:: \\mathrm{MSE}(x) = \\frac{1}{d} \\lVert u - g(e(u)) \\rVert^2, \\qquad u = T(x),

in the standardised space of the stored preprocessing :math:`T` (log of heavy-tailed positive
columns, median / IQR standardisation; see :mod:`rareflow.flows.preprocessing`). Events unlike
the training class reconstruct badly (Hawkins et al. 2002; Sakurada & Yairi 2014).

``variational=True`` gives a VAE (Kingma & Welling 2014): the encoder outputs
:math:`(\\mu, \\log\\sigma^2)`, the latent is :math:`N(0, I)` a priori, and training minimises the
negative ELBO with a unit-variance Gaussian decoder,

.. math:: -\\mathrm{ELBO}(u) = \\tfrac12 \\lVert u - g(\\zeta) \\rVert^2 + \\tfrac d2 \\log 2\\pi
          + \\beta\\, \\mathrm{KL}(N(\\mu, \\sigma^2) \\,\\Vert\\, N(0, I)),
          \\quad \\zeta = \\mu + \\sigma \\odot \\epsilon .

Scores: ``mse`` (reconstruction of the posterior mean; default) or ``elbo`` (the negative ELBO
averaged over ``elbo_samples`` draws with a fixed seed, so scoring is deterministic). Training
goes through the one loop of :mod:`rareflow.training` (:class:`TorchDetector`) under the same
divergence rules as the flows (:mod:`rareflow.training.guards`): a reconstruction loss that turns
NaN/inf or explodes (``lr=10`` drives it to :math:`10^{18}` while it stays finite) ends the fit
with one line, or with ``on_divergence="keep"`` a warning and the best weights before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors.base import Kind
from rareflow.detectors.params import Choice, Flag, Names, Number, Sizes
from rareflow.detectors.torch_base import TorchDetector
from rareflow.errors import RareflowError
from rareflow.flows.preprocessing import Preprocessor
from rareflow.nets.activations import ACTIVATIONS
from rareflow.nets.mlp import mlp
from rareflow.training import Batch, score_seed, weighted_mean

LOG_2PI = math.log(2.0 * math.pi)


class AutoencoderNet(nn.Module):
    """Preprocessing + MLP encoder/decoder (VAE when ``variational``)."""

    def __init__(self, features: int, hidden: Sequence[int] = (64, 32), bottleneck: int = 4, variational: bool = False,
                 activation: str = "elu", preprocessor: Preprocessor | None = None) -> None:  # fmt: skip
        super().__init__()
        if activation not in ACTIVATIONS:
            raise RareflowError(f"unknown activation {activation!r}; use one of {', '.join(ACTIVATIONS)}")
        if bottleneck < 1 or any(int(h) < 1 for h in hidden):
            raise RareflowError("bottleneck and hidden sizes must be >= 1")
        self.config = {
            "features": int(features), "hidden": [int(h) for h in hidden], "bottleneck": int(bottleneck),
            "variational": bool(variational), "activation": activation,
        }  # fmt: skip
        self.variational = bool(variational)
        self.pre = preprocessor if preprocessor is not None else Preprocessor(features)
        out = 2 * bottleneck if variational else bottleneck
        self.encoder = mlp([features, *hidden, out], activation)
        self.decoder = mlp([bottleneck, *reversed(list(hidden)), features], activation)

    def encode(self, u: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(mu, logvar)`` (``logvar`` None for a plain autoencoder)."""
        h = self.encoder(u)
        if not self.variational:
            return h, None
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(-15.0, 15.0)

    def mse(self, x: Tensor) -> Tensor:
        """Per-row MSE of the reconstruction of the (posterior) mean, in standardised space."""
        u, _ = self.pre(x)
        return ((u - self.decoder(self.encode(u)[0])) ** 2).mean(-1)

    def neg_elbo(self, x: Tensor, beta: float, generator: torch.Generator | None = None) -> Tensor:
        """Per-row :math:`\\tfrac12\\lVert u - g(\\zeta)\\rVert^2 + \\tfrac d2\\log 2\\pi + \\beta\\,\\mathrm{KL}` (one draw)."""
        u, _ = self.pre(x)
        mu, logvar = self.encode(u)
        assert logvar is not None
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        sq = ((u - self.decoder(mu + eps * torch.exp(0.5 * logvar))) ** 2).sum(-1)
        kl = -0.5 * (1.0 + logvar - mu * mu - logvar.exp()).sum(-1)
        return 0.5 * sq + 0.5 * u.shape[-1] * LOG_2PI + beta * kl


@register
class AutoencoderDetector(TorchDetector):
    """One-class autoencoder / VAE; outlier score = reconstruction MSE (or negative ELBO)."""

    name: ClassVar[str] = "autoencoder"
    kind: ClassVar[Kind] = "one-class"
    training_defaults: ClassVar[dict[str, Any]] = {"score_batch_size": 4096}
    param_specs: ClassVar[dict[str, Any]] = {
        "hidden": Sizes(), "bottleneck": Number(integer=True, low=1, high=65536), "variational": Flag(),
        "beta": Number(low=0), "score": Choice(("mse", "elbo")), "elbo_samples": Number(integer=True, low=1, high=10000),
        "activation": Choice(tuple(ACTIVATIONS)), "log_features": Names(),
    }  # fmt: skip

    def __init__(
        self,
        fit_on: str = "bulk",
        hidden: Sequence[int] = (64, 32),
        bottleneck: int = 4,
        variational: bool = False,
        beta: float = 1.0,
        score: str = "mse",
        elbo_samples: int = 16,
        activation: str = "elu",
        log_features: Sequence[str] | bool | None = None,
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    def _check_params(self) -> None:
        if self.score == "elbo" and not self.variational:
            raise RareflowError("score 'elbo' needs variational: true (a VAE)")

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> AutoencoderNet:
        names = getattr(self, "feature_names_in_", None)
        pre = Preprocessor.fit(X, feature_names=names, log_features=self.log_features, dequantize=False)
        return AutoencoderNet(X.shape[1], tuple(self.hidden), int(self.bottleneck), bool(self.variational), self.activation, pre)

    def _loss(self) -> Any:
        beta = float(self.beta)

        def loss_fn(model: AutoencoderNet, batch: Batch) -> Tensor:
            """Weighted mean of the per-row MSE (AE) or negative ELBO (VAE)."""
            per_row = model.neg_elbo(batch.x, beta) if model.variational else model.mse(batch.x)
            return weighted_mean(per_row, batch.weight)

        return loss_fn

    def _description(self) -> str:
        return "autoencoder" + (" (VAE)" if self.variational else "")

    def _score_batch(self, x: Tensor) -> Tensor:
        if self.score == "mse":
            return self.model_.mse(x)
        gen = torch.Generator(device=x.device).manual_seed(score_seed(self.random_state))
        draws = [self.model_.neg_elbo(x, float(self.beta), gen) for _ in range(int(self.elbo_samples))]
        return torch.stack(draws).mean(0)

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Per-row reconstruction MSE in standardised space (the outlier score of ``score: mse``)."""
        return self._predict(self.model_.mse, self._checked(X))

    def _arch(self) -> dict[str, Any]:
        return self.model_.config

    def _from_arch(self, arch: dict[str, Any]) -> AutoencoderNet:
        return AutoencoderNet(int(arch["features"]), tuple(arch["hidden"]), int(arch["bottleneck"]),
                              bool(arch["variational"]), str(arch["activation"]))  # fmt: skip
