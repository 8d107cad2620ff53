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
goes through the one loop of :mod:`rareflow.flows.train`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors.base import Detector, FittedState, Kind
from rareflow.errors import RareflowError
from rareflow.flows.build import ACTIVATIONS
from rareflow.flows.preprocessing import Preprocessor
from rareflow.flows.train import (
    Batch,
    TrainingDiverged,
    resolve_device,
    split_indices,
    to_tensor,
    torch_threads,
    train,
    weighted_mean,
)
from rareflow.seeding import derive_seed

_STATE_PREFIX = "model/"
LOG_2PI = math.log(2.0 * math.pi)


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class AutoencoderNet(nn.Module):
    """Preprocessing + MLP encoder/decoder (VAE when ``variational``)."""

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 32),
        bottleneck: int = 4,
        variational: bool = False,
        activation: str = "elu",
        preprocessor: Preprocessor | None = None,
    ) -> None:
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
        self.encoder = _mlp([features, *hidden, out], activation)
        self.decoder = _mlp([bottleneck, *reversed(list(hidden)), features], activation)

    def encode(self, u: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(mu, logvar)`` (``logvar`` None for a plain autoencoder)."""
        h = self.encoder(u)
        if not self.variational:
            return h, None
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(-15.0, 15.0)

    def row_losses(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Per-row ``mse`` (of the mean reconstruction) and, for a VAE, ``neg_elbo`` (one draw)."""
        u, _ = self.pre(x)
        mu, logvar = self.encode(u)
        mse = ((u - self.decoder(mu)) ** 2).mean(-1)
        if logvar is None:
            return {"mse": mse}
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        recon = self.decoder(mu + eps * torch.exp(0.5 * logvar))
        sq = ((u - recon) ** 2).sum(-1)
        kl = -0.5 * (1.0 + logvar - mu * mu - logvar.exp()).sum(-1)
        d = u.shape[-1]
        return {"mse": mse, "recon_nll": 0.5 * sq + 0.5 * d * LOG_2PI, "kl": kl}


def _loss(beta: float) -> Any:
    def loss_fn(model: AutoencoderNet, batch: Batch) -> Tensor:
        """Weighted mean of the per-row MSE (AE) or negative ELBO (VAE)."""
        parts = model.row_losses(batch.x)
        per_row = parts["mse"] if not model.variational else parts["recon_nll"] + beta * parts["kl"]
        return weighted_mean(per_row, batch.weight)

    return loss_fn


@register
class AutoencoderDetector(Detector):
    """One-class autoencoder / VAE; outlier score = reconstruction MSE (or negative ELBO)."""

    name: ClassVar[str] = "autoencoder"
    kind: ClassVar[Kind] = "one-class"

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
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        schedule: str = "cosine",
        clip_grad: float | None = 5.0,
        patience: int = 10,
        validation_fraction: float = 0.2,
        threshold: dict[str, Any] | None = None,
        random_state: int | None = 0,
        device: str = "cpu",
        n_threads: int | None = None,
        score_batch_size: int = 4096,
        on_divergence: str = "raise",
        progress: bool = True,
    ) -> None:
        self.fit_on = fit_on
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.variational = variational
        self.beta = beta
        self.score = score
        self.elbo_samples = elbo_samples
        self.activation = activation
        self.log_features = log_features
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

    def _check_params(self) -> None:
        if self.score not in ("mse", "elbo"):
            raise RareflowError(f"score must be 'mse' or 'elbo', got {self.score!r}")
        if self.score == "elbo" and not self.variational:
            raise RareflowError("score 'elbo' needs variational: true (a VAE)")
        if self.on_divergence not in ("raise", "keep"):
            raise RareflowError(f"on_divergence must be 'raise' or 'keep', got {self.on_divergence!r}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        self._check_params()
        n, d = X.shape
        seed = self.random_state
        names = getattr(self, "feature_names_in_", None)
        pre = Preprocessor.fit(X, feature_names=names, log_features=self.log_features, dequantize=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if seed is None else derive_seed(seed, "ae-init"))
            model = AutoencoderNet(d, tuple(self.hidden), int(self.bottleneck), bool(self.variational), self.activation, pre)
        tr, va = split_indices(n, float(self.validation_fraction), None if seed is None else derive_seed(seed, "split"))
        w = None if sample_weight is None else sample_weight.astype(np.float32)

        def batch(idx: np.ndarray) -> Batch:
            return Batch(x=to_tensor(X[idx]), weight=None if w is None else to_tensor(w[idx]))

        self.model_ = model
        try:
            self.history_ = train(
                model, _loss(float(self.beta)), batch(tr), batch(va) if len(va) else None,
                epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
                weight_decay=float(self.weight_decay), schedule=self.schedule, clip_grad=self.clip_grad,
                patience=int(self.patience), seed=None if seed is None else derive_seed(seed, "train"),
                n_threads=self.n_threads, device=self.device, progress=bool(self.progress),
                description="autoencoder" + (" (VAE)" if self.variational else ""),
            )  # fmt: skip
        except TrainingDiverged as exc:
            self.history_ = exc.history
            if self.on_divergence == "raise":
                raise
            warnings.warn(f"{exc}; continuing with those weights (on_divergence='keep')", stacklevel=2)

    def _rows(self, X: np.ndarray, what: str) -> np.ndarray:
        model = self.model_
        p = next(model.parameters())
        model.eval()
        out = np.empty(len(X), dtype=np.float64)
        bs = max(int(self.score_batch_size), 1)
        gen = torch.Generator(device=p.device)
        gen.manual_seed(derive_seed(0 if self.random_state is None else self.random_state, "ae-score"))
        with torch_threads(self.n_threads), torch.inference_mode():
            for start in range(0, len(X), bs):
                xb = torch.from_numpy(np.ascontiguousarray(X[start : start + bs])).to(device=p.device, dtype=p.dtype)
                if what == "mse":
                    val = model.row_losses(xb)["mse"] if not model.variational else _mse_only(model, xb)
                else:
                    total = torch.zeros(len(xb), dtype=p.dtype, device=p.device)
                    for _ in range(int(self.elbo_samples)):
                        parts = model.row_losses(xb, generator=gen)
                        total += parts["recon_nll"] + float(self.beta) * parts["kl"]
                    val = total / int(self.elbo_samples)
                out[start : start + len(xb)] = val.double().cpu().numpy()
        return out

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._rows(X, self.score)

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Per-row reconstruction MSE in standardised space (the outlier score of ``score: mse``)."""
        if not hasattr(self, "model_"):
            raise RareflowError("the autoencoder is not fitted; call fit first")
        return self._rows(self._validate_X(X, reset=False), "mse")

    def decision_function_batches(self, batches: Iterable[Any]) -> Iterator[np.ndarray]:
        """Scores of each table chunk (e.g. Parquet row groups): memory bounded by one chunk."""
        for chunk in batches:
            if hasattr(chunk, "to_pandas"):
                chunk = chunk.to_pandas()
            yield self.decision_function(chunk if isinstance(chunk, pd.DataFrame) else np.asarray(chunk))

    def _export(self) -> FittedState:
        arrays = {_STATE_PREFIX + k: v.detach().cpu().contiguous().numpy() for k, v in self.model_.state_dict().items()}
        return FittedState(json={"config": self.model_.config}, arrays=arrays)

    def _import(self, state: FittedState) -> None:
        cfg = state.json["config"]
        model = AutoencoderNet(
            cfg["features"], tuple(cfg["hidden"]), cfg["bottleneck"], cfg["variational"], cfg["activation"]
        )
        weights = {k[len(_STATE_PREFIX) :]: torch.from_numpy(np.array(v)) for k, v in state.arrays.items() if k.startswith(_STATE_PREFIX)}
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            raise RareflowError(f"saved autoencoder weights do not match its architecture ({str(exc).splitlines()[0]}); retrain") from None
        self.model_ = model.to(resolve_device(self.device)).eval()


def _mse_only(model: AutoencoderNet, x: Tensor) -> Tensor:
    u, _ = model.pre(x)
    mu, _ = model.encode(u)
    return ((u - model.decoder(mu)) ** 2).mean(-1)
