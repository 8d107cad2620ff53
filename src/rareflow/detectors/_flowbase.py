"""``FlowBase``: what the flow detectors (``flow``, ``flow-classifier``, ``selfsup-flow``) share.

They store the same architecture parameters (``flow``, ``transforms``, ``hidden``, ``activation``,
``bins``, ``log_features``, ``dequantize``); this base turns them into a fitted preprocessing and
fresh :class:`~rareflow.flows.model.FlowModel` s, and saves / loads flows in the layout of their
model files (``{"config", "fused"}`` JSON, arrays under a prefix), so the detectors differ only in
their loss and score.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from rareflow.detectors.params import Choice, Names, Number, Sizes
from rareflow.detectors.torch_base import TorchDetector
from rareflow.flows.build import FLOW_KINDS, FlowConfig
from rareflow.flows.model import FlowModel
from rareflow.flows.preprocessing import Preprocessor
from rareflow.nets.activations import ACTIVATIONS
from rareflow.training import prefixed, resolve_device

#: the checked architecture parameters every flow detector shares (see :mod:`rareflow.detectors.params`)
FLOW_SPECS: dict[str, Any] = {
    "flow": Choice(FLOW_KINDS),
    "transforms": Number(integer=True, low=1, high=64),
    "hidden": Sizes(min_len=1),
    "activation": Choice(tuple(ACTIVATIONS)),
    "bins": Number(integer=True, low=1, high=256),
    "log_features": Names(),
    "dequantize": Names(),
}


class FlowBase(TorchDetector):
    """A torch detector built from normalizing flows on a stored preprocessing."""

    arch_key = "model"
    param_specs: ClassVar[dict[str, Any]] = FLOW_SPECS

    def _preprocessor(self, X: np.ndarray) -> Preprocessor:
        """The stored preprocessing (log / robust scaling / dequantisation) fitted on ``X``."""
        names = getattr(self, "feature_names_in_", None)
        names = [str(c) for c in names] if names is not None else [f"x{j}" for j in range(X.shape[1])]
        return Preprocessor.fit(X, feature_names=names, log_features=self.log_features, dequantize=self.dequantize)

    def _new_flow(self, pre: Preprocessor, context: int = 0) -> FlowModel:
        """A fresh ``FlowModel`` of the detector's architecture around ``pre`` (torch's RNG: seed it)."""
        config = FlowConfig(
            kind=self.flow, features=pre.n_features, context=int(context), transforms=int(self.transforms),
            hidden=tuple(self.hidden), activation=self.activation, bins=int(self.bins),
        )  # fmt: skip
        return FlowModel(config, pre)

    def _log_prob(self, X: np.ndarray) -> np.ndarray:
        """:math:`\\log p(x)` of the (single) flow ``model_``, batched."""
        return self._predict(lambda x: self.model_.log_prob(x), X)

    def _arch(self) -> dict[str, Any]:
        return self.model_.to_state()[0]

    def _load_flow(self, arch: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str) -> FlowModel:
        """A saved flow (architecture ``arch``, weights under ``prefix``), shape-checked, on the device."""
        device = resolve_device(self.training_config().device)
        return FlowModel.from_state(arch, prefixed(arrays, prefix), device)

    def _import(self, state: Any) -> None:
        self.model_ = self._load_flow(self._arch_from(state.json), state.arrays, self.weights_prefix)
        self.history_ = state.json.get("history", {})
        self._import_extra(state)

    def _nll_batch(self, x: Tensor) -> Tensor:
        return -self.model_.log_prob(x)
