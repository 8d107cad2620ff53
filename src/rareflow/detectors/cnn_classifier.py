r"""``cnn-classifier``: a supervised CNN on the camera image (rare vs bulk), optionally hybrid with Hillas.

The field's best gamma/hadron separators are supervised networks on the camera images (CTLearn,
Nieto et al. ICRC 2019 / Brill et al. ICRC 2019; GammaLearn's gamma-PhysNet, Jacquemont et al.
2021, which beats Hillas + random forest on LST-1 simulations). This is a small one of that kind,
trained through the one loop (:class:`~rareflow.detectors.torch_base.TorchDetector`):

* input: the camera image on the axial square grid (:mod:`rareflow.iact.images`, lossless
  hex -> square), log1p-normalised charges :math:`u`;
* net (:class:`~rareflow.nets.conv.ConvClassifierNet`): 3x3 conv stages (stride 2 between
  stages) with CoordConv position channels, global mean and max pooling, an MLP head to a logit
  :math:`f(u)`; with ``hillas: true`` the event's feature-table row :math:`v` (the Hillas
  parameters), standardised by the stored preprocessing of ``nn-classifier`` (log of skewed
  positive columns, median / IQR), is appended to the pooled features (hybrid, as gamma-PhysNet
  adds auxiliary inputs);
* loss: the class-balanced binary cross-entropy

  .. math:: L = -\sum_i w_i \big[y_i \log \sigma(f_i) + (1-y_i) \log(1-\sigma(f_i))\big] \big/ \sum_i w_i,
            \qquad w_i = \text{event weight} / (2\, W_{y_i}),

  :math:`W_y` the total weight of class :math:`y` (``balance``), so a 1e-3 rare class counts as
  much as the bulk;
* augmentation (``augment``): each training image is turned by a random symmetry of the camera
  (:func:`rareflow.iact.images.grid_symmetries`: the rotations / reflections of the hexagonal
  lattice that map the camera's pixels onto its pixels — 12 for the TAIGA-like camera — found
  from the cells that vary over the training images, ``lattice`` ``auto`` picks the lattice with
  more of them). Images of a source at the camera centre are statistically invariant under these;
  the Hillas features of a hybrid are not turned (orientation columns such as ``psi``, ``cog_x``
  keep their values: leave them out of the table or set ``augment: false``).

Score: the logit :math:`f` (higher = rarer), an estimate of
:math:`\log p(u \mid \mathrm{rare}) - \log p(u \mid \mathrm{bulk})` for balanced classes.

Input: grid images (n, H, W); with ``hillas: true`` an
:class:`~rareflow.iact.images.ImagesWithFeatures` (images + table rows; ``rareflow compare``
passes it, the detector says so with ``uses_features``). See docs/cnn-classifier.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.detectors import register
from rareflow.detectors._image import ImageDetector, channel_list, varying_cells
from rareflow.detectors.base import Detector, FittedState, Kind
from rareflow.detectors.params import Choice, Flag, Names, Number, Sizes
from rareflow.errors import RareflowError
from rareflow.flows.preprocessing import Preprocessor
from rareflow.iact.images import ImagesWithFeatures, check_images, grid_symmetries
from rareflow.nets.activations import ACTIVATIONS
from rareflow.nets.conv import ConvClassifierNet
from rareflow.training import Batch, class_balanced_weights, weighted_mean

LATTICES = ("auto", "hexagonal", "square")


class CNNClassifierNet(nn.Module):
    """Packed rows ``[image (H*W) | features (F)]`` -> logit: the conv net + the stored feature preprocessing."""

    def __init__(self, grid: Sequence[int], net: ConvClassifierNet, pre: Preprocessor | None) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.net = net
        self.pre = pre
        self.register_buffer("symmetries", torch.zeros(0, self.grid[0] * self.grid[1], dtype=torch.long), persistent=False)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Images (n, 1, H, W) and standardised features (n, F) or None of packed rows."""
        hw = self.grid[0] * self.grid[1]
        extra = None if self.pre is None else self.pre(x[:, hw:])[0].to(x.dtype)
        return x[:, :hw].reshape(-1, 1, *self.grid), extra

    def augment(self, x: Tensor) -> Tensor:
        """Each row's image turned by a random camera symmetry (torch's global RNG, seeded by the loop)."""
        k = len(self.symmetries)
        if k <= 1:
            return x
        hw = self.grid[0] * self.grid[1]
        pick = self.symmetries.to(x.device)[torch.randint(k, (len(x),), device="cpu").to(x.device)]
        return torch.cat([torch.gather(x[:, :hw], 1, pick), x[:, hw:]], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(*self.split(x))


def balanced_bce(model: CNNClassifierNet, batch: Batch) -> Tensor:
    """Weighted binary cross-entropy of the logits (``batch.label`` 1 = rare), images augmented in training."""
    assert batch.label is not None
    x = model.augment(batch.x) if model.training else batch.x
    per_row = F.binary_cross_entropy_with_logits(model(x), batch.label, reduction="none")
    return weighted_mean(per_row, batch.weight)


@register
class CNNClassifier(ImageDetector):
    """Supervised CNN on camera images (optionally + Hillas features); score = logit (higher = rarer)."""

    name: ClassVar[str] = "cnn-classifier"
    kind: ClassVar[Kind] = "supervised"
    requires_labels: ClassVar[bool] = True
    training_defaults: ClassVar[dict[str, Any]] = {
        "epochs": 30, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4, "patience": 6, "score_batch_size": 1024,
    }  # fmt: skip
    param_specs: ClassVar[dict[str, Any]] = {
        "dropout": Number(low=0.0, high=1.0, high_open=True), "coords": Flag(), "hillas": Flag(), "augment": Flag(),
        "lattice": Choice(LATTICES), "balance": Flag(), "activation": Choice(tuple(ACTIVATIONS)),
        "channels": Sizes(min_len=1, high=4096), "hidden": Sizes(high=65536), "log_features": Names(),
    }  # fmt: skip
    weights_prefix: ClassVar[str] = "net/"

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        hidden: Sequence[int] = (64,),
        dropout: float = 0.2,
        coords: bool = True,
        hillas: bool = False,
        augment: bool = True,
        lattice: str = "auto",
        balance: bool = True,
        log_features: Sequence[str] | bool | None = None,
        activation: str = "relu",
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    @property
    def uses_features(self) -> bool:
        """True when the detector reads the feature table beside the images (``hillas: true``)."""
        return bool(self.hillas)

    # -- input -----------------------------------------------------------------------------------
    def _validate_X(self, X: Any, reset: bool) -> np.ndarray:
        """Packed float32 rows ``[image | features]`` from images or :class:`ImagesWithFeatures`."""
        images, feats = (X.images, X.features) if isinstance(X, ImagesWithFeatures) else (X, None)
        if self.hillas and feats is None:
            raise RareflowError(
                "cnn-classifier with hillas: true needs the images and the feature table: pass "
                "ImagesWithFeatures(images, table) (rareflow compare does), or set hillas: false"
            )
        imgs = check_images(images, None if reset else getattr(self, "image_shape_", None), self.name)
        if reset:
            self.image_shape_ = (int(imgs.shape[1]), int(imgs.shape[2]))
            self.camera_ = None  # set by remember_camera when the caller knows the camera
        flat = imgs.reshape(len(imgs), -1)
        if not self.hillas:
            if reset:
                self.n_features_in_ = flat.shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
            return flat
        table = Detector._validate_X(self, feats if isinstance(feats, pd.DataFrame) else np.asarray(feats), reset)
        return np.concatenate([flat, table.astype(np.float32)], axis=1)

    def _training_rows(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Labels as the target; with ``balance`` each class gets half of the total weight."""
        assert y is not None
        w = class_balanced_weights(y, w, bool(self.balance))
        return X, y, w

    # -- model -----------------------------------------------------------------------------------
    def _symmetries(self, X: np.ndarray) -> np.ndarray:
        """Camera symmetries of the grid (cells varying over the training images), per ``lattice``."""
        hw = self.image_shape_[0] * self.image_shape_[1]
        cells = varying_cells(X[:, :hw]).reshape(self.image_shape_)
        if self.lattice != "auto":
            return grid_symmetries(cells, self.lattice)
        return max((grid_symmetries(cells, lat) for lat in ("hexagonal", "square")), key=len)

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> CNNClassifierNet:
        hw = self.image_shape_[0] * self.image_shape_[1]
        pre = None
        if self.hillas:
            names = getattr(self, "feature_names_in_", None)
            pre = Preprocessor.fit(X[:, hw:], feature_names=None if names is None else [str(c) for c in names],
                                   log_features=self.log_features, dequantize=False)  # fmt: skip
        model = self._new_net(pre.n_features if pre is not None else 0, pre)
        if self.augment:
            model.symmetries = torch.from_numpy(self._symmetries(X))
        self.n_symmetries_ = max(len(model.symmetries), 1)
        return model

    def _new_net(self, n_extra: int, pre: Preprocessor | None) -> CNNClassifierNet:
        net = ConvClassifierNet(channel_list(self.channels, "channels", self.name), channel_list(self.hidden, "hidden", self.name),
                                float(self.dropout), n_extra, self.activation, bool(self.coords))  # fmt: skip
        return CNNClassifierNet(self.image_shape_, net, pre)

    def _loss(self) -> Any:
        return balanced_bce

    def _score_batch(self, x: Tensor) -> Tensor:
        return self.model_(x)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._predict(self._score_batch, X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (bulk, rare) for the training class mix (balanced when ``balance``)."""
        p = 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -500, 500)))
        return np.column_stack([1.0 - p, p])

    # -- persistence -----------------------------------------------------------------------------
    def _arch(self) -> dict[str, Any]:
        return {"grid": list(self.image_shape_), "n_extra": 0 if self.model_.pre is None else int(self.model_.pre.n_features)}

    def _from_arch(self, arch: dict[str, Any]) -> CNNClassifierNet:
        n_extra = int(arch["n_extra"])
        return self._new_net(n_extra, Preprocessor(n_extra) if n_extra else None)

    def _export_extra(self, state: FittedState) -> None:
        state.json["n_symmetries"] = int(getattr(self, "n_symmetries_", 1))

    def _import_extra(self, state: FittedState) -> None:
        self.n_symmetries_ = int(state.json.get("n_symmetries", 1))
