"""Shared machinery of the image detectors (``conv-autoencoder``, ``fastflow``, ``cnn-classifier``,
``image-flow-classifier``); not a method itself.

An image detector takes grid images (n, H, W) — camera images mapped to a square grid and
normalised by :mod:`rareflow.iact.images` — instead of a feature table (class attribute
``input = "image"``; the compare runner hands it ``Dataset.images``). It is a
:class:`~rareflow.detectors.torch_base.TorchDetector`: one ``training`` parameter, the one loop,
seeds under the fixed keys, batched scoring and shape-checked weight import.

Map detectors (:class:`MapDetector`: ``conv-autoencoder``, ``fastflow``) implement ``_map_batch(x)``: an outlier map per image at the input grid size
(n, H, W); the outlier score of an image is the ``mean`` or ``max`` of its map (``reduce``), and
:meth:`ImageDetector.anomaly_map` returns the maps, signed like the score (higher = rarer).

:meth:`ImageDetector._fit_backbone` trains the conv encoder the flows on images (``fastflow``,
``image-flow-classifier``) use as frozen feature extractor: the encoder of a small reconstruction
autoencoder (:class:`~rareflow.nets.conv.ConvAutoencoderNet`, squared error on the log1p images).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor, nn

from rareflow.detectors.base import FittedState
from rareflow.detectors.params import Choice, Sizes
from rareflow.detectors.torch_base import TorchDetector
from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.images import GridMapping, check_images
from rareflow.nets.conv import ConvAutoencoderNet
from rareflow.nets.backbone import FrozenFeatures
from rareflow.training import INIT, SPLIT, Batch, seeded, split_indices, training_rows, weighted_mean

REDUCES = ("mean", "max")
#: parameter checks shared by the image detectors
IMAGE_SPECS: dict[str, Any] = {"reduce": Choice(REDUCES), "channels": Sizes(min_len=1, high=4096)}


def channel_list(value: Any, name: str, method: str) -> tuple[int, ...]:
    """``value`` as a non-empty tuple of positive integer sizes; one-line RareflowError otherwise."""
    try:
        out = tuple(int(c) for c in value)
        ok = bool(out) and all(c >= 1 and float(c) == float(v) for c, v in zip(out, value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RareflowError(f"method '{method}': parameter {name}={value!r:.60} is invalid; it must be a list of sizes >= 1, e.g. [16, 32]")
    return out


def varying_cells(X: np.ndarray, step: int = 8192) -> np.ndarray:
    """Boolean mask over ``X.shape[1:]``: the cells whose value is not the same in every image
    (max > min), computed in chunks of ``step`` images (``X`` may be a memory-mapped file)."""
    if len(X) == 0:
        return np.zeros(X.shape[1:], dtype=bool)
    lo, hi = X[0].copy(), X[0].copy()
    for a in range(0, len(X), step):
        chunk = np.asarray(X[a : a + step])
        lo, hi = np.minimum(lo, chunk.min(axis=0)), np.maximum(hi, chunk.max(axis=0))
    return hi > lo


def log_reconstruction_loss(model: nn.Module, batch: Batch) -> Tensor:
    r"""Weighted mean over images of the per-cell squared error :math:`(u - \hat u)^2` (log1p images)."""
    return weighted_mean(((batch.x - model(batch.x)) ** 2).flatten(1).mean(1), batch.weight)


class ImageDetector(TorchDetector):
    """A detector on (n, H, W) grid images; map detectors implement :meth:`_map_batch`."""

    input: ClassVar[str] = "image"
    #: seed keys the method used before the template (``(key, *more) -> old key``), kept so that the
    #: documented figures (examples/IMAGES.md, docs/fastflow.md) reproduce with the same seeds
    legacy_seed_keys: ClassVar[dict[tuple[str, ...], str]] = {}

    def _seed(self, key: str, *more: int | str) -> int | None:
        old = self.legacy_seed_keys.get((key, *(str(m) for m in more)))
        return super()._seed(key, *more) if old is None else super()._seed(old)

    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        arr = check_images(X, None if reset else getattr(self, "image_shape_", None), self.name)
        if reset:
            self.image_shape_ = (int(arr.shape[1]), int(arr.shape[2]))
            self.camera_ = None  # set by remember_camera when the caller knows the camera
            self.n_features_in_ = int(arr.shape[1] * arr.shape[2])
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        return arr

    def _eval_batch_size(self) -> int:
        """Validation in chunks of ``score_batch_size`` images: an 8192-image chunk of conv activations
        (and test-time symmetries) would cost gigabytes, whatever the size of the training set."""
        return int(self.training_config().score_batch_size)

    def _training_rows(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The images as (n, 1, H, W) rows (one channel), no label."""
        return X[:, None], None, w

    # -- the shared conv backbone ----------------------------------------------------------------
    def _fit_backbone(self, X: np.ndarray, w: np.ndarray | None, channels: Sequence[int], latent: int, epochs: int,
                      activation: str, upto: int) -> tuple[FrozenFeatures, dict[str, Any]]:  # fmt: skip
        """Train a conv autoencoder on the grid images ``X`` (seed keys ``init``/``split``/``train``
        + ``"backbone"``) and return its encoder up to stage ``upto``, frozen, with the history."""
        with seeded(self._seed(INIT, "backbone")):
            net = ConvAutoencoderNet(tuple(channels), int(latent), activation)
        tr, va = split_indices(len(X), self.training_config().validation_fraction, self._seed(SPLIT, "backbone"))
        rows, w32 = X[:, None], None if w is None else np.asarray(w, dtype=np.float32)
        valid = training_rows(rows, va, None, w32) if len(va) else None
        hist = self._train(net, log_reconstruction_loss, training_rows(rows, tr, None, w32), valid, None,
                           f"{self.name} backbone (conv autoencoder)", epochs=int(epochs), key="backbone-train")  # fmt: skip
        return FrozenFeatures(net.encoder.cpu(), int(upto)), hist

    # -- the camera the images came from -----------------------------------------------------------
    def remember_camera(self, camera: CameraGeometry, mapping: GridMapping | None = None) -> None:
        """Record which camera the training images came from (name, pixels, grid), saved with the
        model so that scoring images of another camera fails clearly (:meth:`check_camera`)."""
        mapping = mapping or GridMapping.from_camera(camera)
        grid = [int(mapping.shape[0]), int(mapping.shape[1])]
        shape = getattr(self, "image_shape_", None)
        if shape is not None and tuple(shape) != tuple(grid):
            raise RareflowError(f"method '{self.name}' was trained on {shape[0]}x{shape[1]} images, camera "
                                f"{camera.name!r} maps to a {grid[0]}x{grid[1]} grid; remember the camera of the training images")  # fmt: skip
        self.camera_ = {"name": str(camera.name), "n_pixels": int(camera.n_pixels), "grid": grid, "lattice": str(mapping.lattice)}

    def check_camera(self, camera: CameraGeometry, mapping: GridMapping, source: str) -> None:
        """One-line error when ``camera`` (of the images in ``source``) is not the training camera.

        Models saved without a camera record (older files, or trained on bare arrays) are checked
        on the grid shape only."""
        mine = getattr(self, "camera_", None)
        grid = tuple(int(v) for v in mapping.shape)
        if mine is not None:
            same = (mine["name"], int(mine["n_pixels"]), tuple(mine["grid"])) == (str(camera.name), camera.n_pixels, grid)
            trained = f"camera {mine['name']} ({mine['grid'][0]}x{mine['grid'][1]} grid, {mine['n_pixels']} pixels)"
        else:
            shape = tuple(getattr(self, "image_shape_", grid))
            same = shape == grid
            trained = f"{shape[0]}x{shape[1]} grid images (camera not recorded)"
        if not same:
            raise RareflowError(
                f"model trained on {trained}, {source} has camera {camera.name} ({grid[0]}x{grid[1]} grid, "
                f"{camera.n_pixels} pixels); simulate on {camera.name} with `rareflow simulate --camera-from {source}` "
                "and train on those images"
            )

    # -- persistence -----------------------------------------------------------------------------
    def _export(self) -> FittedState:
        state = super()._export()
        state.json["image_shape"] = list(self.image_shape_)
        if getattr(self, "camera_", None) is not None:
            state.json["camera"] = dict(self.camera_)
        return state

    def _import(self, state: FittedState) -> None:
        shape = state.json.get("image_shape") or (state.json.get(self.arch_key) or {}).get("image_shape")
        if not isinstance(shape, list) or len(shape) != 2:
            raise RareflowError(f"damaged model file: the {self.name} model has no image_shape")
        self.image_shape_ = (int(shape[0]), int(shape[1]))
        self.camera_ = _camera_record(state.json.get("camera"), self.image_shape_, self.name)
        super()._import(state)


def _camera_record(doc: Any, shape: tuple[int, int], method: str) -> dict[str, Any] | None:
    """The saved camera record, checked; None for files saved before it was recorded."""
    if doc is None:
        return None
    try:
        rec = {"name": str(doc["name"])[:200], "n_pixels": int(doc["n_pixels"]),
               "grid": [int(doc["grid"][0]), int(doc["grid"][1])], "lattice": str(doc.get("lattice", ""))[:20]}  # fmt: skip
    except (KeyError, TypeError, ValueError, IndexError):
        raise RareflowError(f"damaged model file: the {method} model's camera record is not name/n_pixels/grid") from None
    if tuple(rec["grid"]) != tuple(shape):
        raise RareflowError(f"damaged model file: the {method} model's camera grid {rec['grid']} is not its image shape {list(shape)}")
    return rec


class MapDetector(ImageDetector):
    """An image detector with an outlier map per image (``anomaly_map``; the gallery draws it);
    subclasses implement :meth:`_map_batch`, the score is the ``mean`` or ``max`` of the map."""

    # -- maps ------------------------------------------------------------------------------------
    def _map_batch(self, x: Tensor) -> Tensor:
        """Outlier map (n, H, W) of a batch (n, 1, H, W) on the model's device."""
        raise NotImplementedError

    def _maps(self, X: np.ndarray) -> np.ndarray:
        return self._predict(lambda x: self._map_batch(x[:, None]).float(), X, out_dtype=np.float32)

    def _score(self, X: np.ndarray) -> np.ndarray:
        """The ``mean`` or ``max`` of each image's map, reduced batch by batch (float32 map, float64
        reduction): only one batch of maps is ever held, whatever the number of images."""

        def reduced(x: Tensor) -> Tensor:
            maps = self._map_batch(x[:, None]).float().flatten(1).double()
            return maps.amax(dim=1) if self.reduce == "max" else maps.mean(dim=1)

        return self._predict(reduced, X)

    def anomaly_map(self, X: Any) -> np.ndarray:
        """Per-cell map (n, H, W) of the grid images ``X``, higher = rarer (sign as the score)."""
        return (self._sign() * self._maps(self._checked(X))).astype(np.float32)
