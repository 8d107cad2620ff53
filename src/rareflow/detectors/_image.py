"""Shared machinery of the image detectors (``conv-autoencoder``, ``fastflow``); not a method itself.

An image detector takes grid images (n, H, W) — camera images mapped to a square grid and
normalised by :mod:`rareflow.iact.images` — instead of a feature table (class attribute
``input = "image"``; the compare runner hands it ``Dataset.images``). A subclass implements
``_maps(X)``: an outlier map per image at the input grid size (n, H, W); the outlier score of an
image is the ``mean`` or ``max`` of its map (``reduce``), and :meth:`ImageDetector.anomaly_map`
returns the maps, signed like the score (higher = rarer).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from rareflow.iact.images import check_images
from rareflow.detectors.base import Detector
from rareflow.errors import RareflowError
from rareflow.training import predict_batched

REDUCES = ("mean", "max")


class ImageDetector(Detector):
    """A detector on (n, H, W) grid images; subclasses implement :meth:`_map_batch`."""

    input: ClassVar[str] = "image"

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        arr = check_images(X, None if reset else getattr(self, "image_shape_", None), self.name)
        if reset:
            self.image_shape_ = (int(arr.shape[1]), int(arr.shape[2]))
            self.n_features_in_ = int(arr.shape[1] * arr.shape[2])
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        return arr

    def _check_reduce(self) -> None:
        if getattr(self, "reduce", "mean") not in REDUCES:
            raise RareflowError(f"reduce must be 'mean' or 'max', got {self.reduce!r}")

    def _map_batch(self, x: Tensor) -> Tensor:
        """Outlier map (n, H, W) of a batch (n, 1, H, W) on the model's device."""
        raise NotImplementedError

    def _model(self) -> nn.Module:
        if not hasattr(self, "model_"):
            raise RareflowError(f"the {self.name} detector is not fitted; call fit first")
        return self.model_

    def _maps(self, X: np.ndarray) -> np.ndarray:
        model = self._model()
        p = next(model.parameters())
        model.eval()
        return predict_batched(lambda x: self._map_batch(x[:, None]).float(), X, self.score_batch_size, p.device,
                               dtype=p.dtype, out_dtype=np.float32, n_threads=self.n_threads)  # fmt: skip

    def _score(self, X: np.ndarray) -> np.ndarray:
        maps = self._maps(X).reshape(len(X), -1).astype(np.float64)
        return maps.max(axis=1) if self.reduce == "max" else maps.mean(axis=1)

    def anomaly_map(self, X: Any) -> np.ndarray:
        """Per-cell map (n, H, W) of the grid images ``X``, higher = rarer (sign as the score)."""
        return (self._sign() * self._maps(self._validate_X(X, reset=False))).astype(np.float32)


def load_weights(model: nn.Module, arrays: dict[str, np.ndarray], prefix: str, what: str) -> None:
    """Load the ``prefix``-ed arrays into ``model`` strictly; RareflowError on a mismatch."""
    weights = {k[len(prefix) :]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise RareflowError(f"saved {what} weights do not match its architecture ({str(exc).splitlines()[0]}); retrain") from None


def state_arrays(model: nn.Module, prefix: str) -> dict[str, np.ndarray]:
    """``model.state_dict()`` as prefixed numpy arrays (for :class:`FittedState`)."""
    return {prefix + k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}
