"""``TorchDetector``: the template of every torch detector.

A subclass writes only what makes its method different:

* ``_build_model(X, y, w)`` — a fresh ``nn.Module`` (called inside a torch RNG block seeded with
  the ``INIT`` key, so initial weights depend on ``random_state`` only);
* ``_loss()`` — ``loss_fn(model, batch) -> scalar`` for :func:`rareflow.training.train`
  (optional ``_val_loss()``: the early-stopping criterion, default the loss);
* ``_score_batch(x)`` — the outlier score (one-class) or rare score of a batch tensor;
* ``_arch()`` / ``_from_arch(arch)`` — the model's architecture as JSON and back (persistence);

and, where a method truly needs them, the hooks ``_check_params``, ``_training_rows`` (which rows,
labels and weights the loop sees), ``_split``, ``_after_fit`` and ``_export_extra`` /
``_import_extra``.

The base owns the rest: the validated training settings (the ONE ``training`` parameter, a dict
over the class's ``training_defaults``, see :class:`rareflow.training.TrainConfig`), the
validation split, the seeds under the fixed keys of :mod:`rareflow.training.seeds`, the divergence
policy, batched scoring (:func:`rareflow.training.predict_batched`) and the export / import of the
weights (:func:`rareflow.training.load_module`, shape-checked before any allocation).

Older model files stored the training settings as flat parameters (``epochs``, ``lr``, ...);
:meth:`TorchDetector.upgrade_params` moves them into ``training`` (``get_detector`` and
``load_model`` call it), and renames parameters listed in ``renamed_params``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from rareflow.detectors.base import Detector, FittedState
from rareflow.errors import RareflowError
from rareflow.training import (
    INIT,
    SPLIT,
    TRAIN,
    Batch,
    TrainConfig,
    child_seed,
    fit_model,
    load_module,
    training_rows,
    module_arrays,
    predict_batched,
    resolve_device,
    seeded,
    small_history,
    split_indices,
    train_config,
)
from rareflow.training.config import FIELDS

LossFn = Callable[[nn.Module, Batch], Tensor]


class TorchDetector(Detector):
    """Base class of the torch detectors (see the module docstring)."""

    training_defaults: ClassVar[dict[str, Any]] = {}
    renamed_params: ClassVar[dict[str, str]] = {}
    arch_key: ClassVar[str] = "config"
    weights_prefix: ClassVar[str] = "model/"

    # -- parameters ------------------------------------------------------------------------------
    @classmethod
    def upgrade_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with renamed parameters renamed and top-level training settings
        (``epochs=5``) moved into ``training`` (a top-level value overrides the same key there)."""
        own = set(cls._get_param_names())
        out = {cls.renamed_params.get(k, k): v for k, v in params.items()}
        moved = {k: out.pop(k) for k in list(out) if k in FIELDS and k not in own}
        if moved:
            base = out.get("training") or {}
            if not isinstance(base, dict):
                raise RareflowError(f"training must be a mapping of training settings such as {{epochs: 50}}, got {base!r:.60}")
            out["training"] = {**base, **moved}
        return out

    def training_config(self) -> TrainConfig:
        """The ``training`` parameter over the class defaults, validated (one-line RareflowError)."""
        return train_config(getattr(self, "training", None), self.training_defaults)

    def _seed(self, key: str, *more: int | str) -> int | None:
        """Child seed of ``random_state`` for one purpose (keys in :mod:`rareflow.training.seeds`)."""
        return child_seed(getattr(self, "random_state", None), key, *more)

    # -- hooks -----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Validate method parameters (one line naming the parameter); called first in ``fit``."""

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> nn.Module:
        raise NotImplementedError

    def _loss(self) -> LossFn:
        raise NotImplementedError

    def _val_loss(self) -> LossFn | None:
        return None

    def _score_batch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _arch(self) -> dict[str, Any]:
        raise NotImplementedError

    def _from_arch(self, arch: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def _training_rows(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(rows, label, weight)`` the loop trains on (default: ``X``, no label, ``w``)."""
        return X, None, w

    def _split(self, X: np.ndarray, label: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(train, validation)`` row indices (seed key ``SPLIT``)."""
        return split_indices(len(X), self.training_config().validation_fraction, self._seed(SPLIT))

    def _after_fit(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> None:
        """Anything fitted after the weights (latent statistics, calibration, ...)."""

    def _description(self) -> str:
        return self.name

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        cfg = self.training_config()
        self._check_params()
        with seeded(self._seed(INIT)):
            self.model_ = self._build_model(X, y, sample_weight)
        rows, label, w = self._training_rows(X, y, sample_weight)
        w = None if w is None else np.asarray(w, dtype=np.float32)
        label = None if label is None else np.asarray(label, dtype=np.float32)
        tr, va = self._split(rows, label)
        self.history_ = self._train(
            self.model_, self._loss(), training_rows(rows, tr, label, w), training_rows(rows, va, label, w), self._val_loss(),
            self._description(),
        )
        self.model_.to(resolve_device(cfg.device))
        self._after_fit(X, y, sample_weight)

    def _train(self, model: nn.Module, loss: LossFn, train: Batch, valid: Batch | None, val_loss: LossFn | None,
               description: str, epochs: int | None = None, key: str = TRAIN) -> dict[str, Any]:  # fmt: skip
        """One run of the loop with this detector's settings, seed ``key`` and divergence policy."""
        return fit_model(model, loss, train, valid, self.training_config(), seed=self._seed(key), val_loss_fn=val_loss,
                         description=description, epochs=epochs, eval_batch_size=self._eval_batch_size())  # fmt: skip

    def _eval_batch_size(self) -> int:
        """Rows per validation chunk: the loop's 8192 (tables); image detectors use ``score_batch_size``."""
        return 8192

    # -- scoring ---------------------------------------------------------------------------------
    def _fitted_model(self) -> nn.Module:
        if not hasattr(self, "model_"):
            raise RareflowError(f"the {self.name} detector is not fitted; call fit first")
        return self.model_

    def _device(self) -> torch.device:
        p = next(self._fitted_model().parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _predict(self, fn: Callable[[Tensor], Tensor], X: np.ndarray, out_dtype: type = np.float64) -> np.ndarray:
        """``fn`` over ``X`` in batches of ``score_batch_size`` on the model's device, model in eval mode."""
        cfg = self.training_config()
        self._fitted_model().eval()
        return predict_batched(fn, X, cfg.score_batch_size, self._device(), out_dtype=out_dtype, n_threads=cfg.n_threads)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._predict(self._score_batch, X)

    def _checked(self, X: Any) -> np.ndarray:
        self._fitted_model()
        return self._validate_X(X, reset=False)

    def decision_function_batches(self, batches: Iterable[Any]) -> Iterator[np.ndarray]:
        """Scores of each table chunk (e.g. Parquet row groups): memory bounded by one chunk."""
        for chunk in batches:
            if hasattr(chunk, "to_pandas"):  # pyarrow RecordBatch / Table
                chunk = chunk.to_pandas()
            yield self.decision_function(chunk if isinstance(chunk, pd.DataFrame) else np.asarray(chunk))

    # -- persistence -----------------------------------------------------------------------------
    def _export(self) -> FittedState:
        state = FittedState(
            json={self.arch_key: self._arch(), "history": small_history(getattr(self, "history_", {}))},
            arrays=module_arrays(self.model_, self.weights_prefix),
        )
        self._export_extra(state)
        return state

    def _import(self, state: FittedState) -> None:
        arch = self._arch_from(state.json)
        self.model_ = self._load(lambda: self._from_arch(arch), state.arrays, self.weights_prefix)
        self.history_ = state.json.get("history", {})
        self._import_extra(state)

    def _arch_from(self, json: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(json.get(self.arch_key), dict):
            raise RareflowError(f"damaged model file: the {self.name} model has no architecture ('{self.arch_key}')")
        return json[self.arch_key]

    def _load(self, build: Callable[[], nn.Module], arrays: dict[str, np.ndarray], prefix: str) -> nn.Module:
        """``build()`` with the stored weights (shape-checked on the meta device first), on the device."""
        return load_module(build, arrays, prefix, self.name, resolve_device(self.training_config().device))

    def _export_extra(self, state: FittedState) -> None:
        """Add what the detector saves beyond the model weights."""

    def _import_extra(self, state: FittedState) -> None:
        """Read back what :meth:`_export_extra` saved."""
