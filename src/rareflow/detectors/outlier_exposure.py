"""``outlier-exposure``: a flow generates outliers of the training class, a network learns to spot them.

Fit (Bungert 2021; Hendrycks, Mazeika & Dietterich 2019):

1. a one-class normalizing flow (the ``flow`` detector's model and training) on the training
   class (``fit_on``, bulk by default);
2. ``n_generated`` outliers from the flow with ``generator`` (``extremal`` | ``tail`` | ``gumbel``:
   latent radius at / beyond :math:`E\\chi_d + \\sigma\\,\\mathrm{sd}\\chi_d`; ``archetype`` |
   ``nullspace``: DeepAA Dirichlet samples with concentration ``sigma``), see
   :mod:`rareflow.outliers`;
3. ``mode="discriminator"``: an MLP separating training rows from the generated outliers
   (score = its logit), or ``mode="classifier"``: an MLP classifying ``n_classes`` k-means
   clusters of the training rows with outlier exposure
   :math:`CE + \\beta\\,\\mathrm{KL}(\\mathcal U \\Vert p(y|\\tilde x))` on the generated outliers
   (score = ``-max softmax`` or ``-KL``).

Score: higher = more unlike the training class (sign flipped for ``fit_on="rare"``).

A :class:`~rareflow.detectors.torch_base.TorchDetector`: the network of step 3 is the template's
``model_`` (one ``training`` dict: epochs, batch size, learning rate, device, ...); the flow of
step 1 is a ``flow`` detector trained with the same settings except ``epochs = flow_epochs``, kept
as ``flow_``. Seeds (keys of :mod:`rareflow.training.seeds`): the flow gets
``derive_seed(random_state, "flow")`` as its own ``random_state``, the generation ``SYNTHETIC``, the
k-means classes ``"clusters"``, the network ``SPLIT`` / ``INIT`` / ``TRAIN``. Files saved when
the training settings were flat parameters (``epochs``, ``lr``, ...) still load.

The same generation is offered to ``selfsup-flow`` as its synthetic rare set:
``synthetic: {name: flow-outliers, size: 1.0, method: tail, sigma: 2.0}`` (:func:`flow_outliers`,
registered with ``rareflow.detectors.selfsup_flow.register_synthetic`` when this module loads —
which the detector registry does before any method is built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from rareflow.detectors import register
from rareflow.detectors._flowbase import FLOW_SPECS
from rareflow.detectors.base import FittedState, Kind
from rareflow.detectors.params import Choice, Number, Pair, Sizes
from rareflow.detectors.torch_base import LossFn, TorchDetector
from rareflow.errors import RareflowError
from rareflow.nets.mlp import MLP
from rareflow.outliers.support import training_box
from rareflow.seeding import derive_seed
from rareflow.training import SYNTHETIC, child_seed, module_arrays, prefixed, resolve_device

GENERATORS = ("extremal", "tail", "gumbel", "archetype", "nullspace")
MODES = ("discriminator", "classifier")
FLOW, CLUSTERS = "flow", "clusters"  # seed keys of the generating flow and of the k-means classes
_FLOW = "flow/"


@register
class OutlierExposureDetector(TorchDetector):
    """Flow-generated outliers + discriminator / outlier-exposure classifier (one-class)."""

    name: ClassVar[str] = "outlier-exposure"
    kind: ClassVar[Kind] = "one-class"
    training_defaults: ClassVar[dict[str, Any]] = {"batch_size": 128, "weight_decay": 1e-4, "patience": 8}
    arch_key: ClassVar[str] = "net"
    weights_prefix: ClassVar[str] = "net/"
    param_specs: ClassVar[dict[str, Any]] = {
        "mode": Choice(MODES), "generator": Choice(GENERATORS), "sigma": Pair(Number(low=0, none_ok=True)),
        "n_generated": Number(low=0, low_open=True), "beta": Number(low=0), "n_classes": Number(integer=True, low=2, high=1000),
        "score": Choice(("msp", "kl")), "flow": FLOW_SPECS["flow"], "transforms": FLOW_SPECS["transforms"],
        "flow_hidden": Sizes(min_len=1), "flow_epochs": Number(integer=True, low=1), "hidden": Sizes(),
    }  # fmt: skip

    def __init__(
        self,
        fit_on: str = "bulk",
        mode: str = "discriminator",
        generator: str = "extremal",
        sigma: float | Sequence[float] | None = 2.5,
        n_generated: float = 1.0,
        beta: float = 0.5,
        n_classes: int = 4,
        score: str = "msp",
        flow: str = "realnvp",
        transforms: int = 6,
        flow_hidden: Sequence[int] = (64, 64),
        flow_epochs: int = 60,
        hidden: Sequence[int] = (128, 128),
        threshold: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self._store(locals())

    # -- fitting: flow, generated outliers, then the template's run of the network ----------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        cfg = self.training_config()
        settings = {k: getattr(cfg, k) for k in ("validation_fraction", "n_threads", "progress", "device", "on_divergence")}
        self.flow_ = fit_flow(X, sample_weight, flow=self.flow, transforms=self.transforms, hidden=self.flow_hidden,
                              epochs=self.flow_epochs, seed=self._seed(FLOW), **settings)  # fmt: skip
        self.support_ = training_box(X)
        m = int(self.n_generated) if self.n_generated >= 2 else max(int(round(self.n_generated * len(X))), 1)
        self._generated = generate_outliers(self.flow_, X, self.generator, self.sigma, m, self._seed(SYNTHETIC),
                                            n_threads=cfg.n_threads, device=cfg.device)  # fmt: skip
        try:
            super()._fit(X, y, sample_weight)
        finally:
            del self._generated

    def _training_rows(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """Discriminator: inliers 0 / outliers 1, class-balanced; classifier: k-means classes, outliers -1."""
        from rareflow.outliers.training import discriminator_rows, oe_rows

        if self.mode == "discriminator":
            return discriminator_rows(X, self._generated)
        rows, label, _, _ = oe_rows(X, self._pseudo_classes(X), self._generated, float(self.beta), int(self.n_classes))
        return rows, label, None

    def _pseudo_classes(self, X: np.ndarray) -> np.ndarray:
        """k-means clusters of the standardised training rows as the classifier's classes."""
        from sklearn.cluster import KMeans

        Xs = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        seed = self._seed(CLUSTERS)
        return KMeans(n_clusters=int(self.n_classes), n_init=3, random_state=seed).fit_predict(Xs)

    def _build_model(self, X: np.ndarray, y: np.ndarray | None, w: np.ndarray | None) -> MLP:
        from rareflow.outliers.training import new_net

        return new_net(X.shape[1], 1 if self.mode == "discriminator" else int(self.n_classes), tuple(self.hidden), X)

    def _loss(self) -> LossFn:
        from rareflow.outliers.training import discriminator_loss, oe_loss

        return discriminator_loss if self.mode == "discriminator" else oe_loss(float(self.beta))

    def _description(self) -> str:
        return "discriminator" if self.mode == "discriminator" else "OE classifier"

    # -- scoring ---------------------------------------------------------------------------------
    def _score_batch(self, x: Tensor) -> Tensor:
        from rareflow.outliers.training import logit_score

        return logit_score(self.model_(x), "logit" if self.mode == "discriminator" else self.score)

    # -- persistence: {"flow", "net"} JSON, arrays under flow/ and net/ (as saved before the template)
    def _arch(self) -> dict[str, Any]:
        return self.model_.config()

    def _from_arch(self, arch: dict[str, Any]) -> MLP:
        return MLP.from_config(arch)

    def _export_extra(self, state: FittedState) -> None:
        flow_json, _ = self.flow_.to_state()
        state.json["flow"] = flow_json
        state.arrays.update(module_arrays(self.flow_, _FLOW))
        state.arrays["support"] = self.support_

    def _import_extra(self, state: FittedState) -> None:
        from rareflow.flows.model import FlowModel

        device = resolve_device(self.training_config().device)
        self.flow_ = FlowModel.from_state(state.json["flow"], prefixed(state.arrays, _FLOW), device)
        self.support_ = state.arrays.get("support")  # None in files saved before it


# -- shared helpers (also the selfsup-flow synthetic-R hook) ----------------------------------------
def fit_flow(
    X: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    flow: str = "realnvp",
    transforms: int = 6,
    hidden: Sequence[int] = (64, 64),
    epochs: int = 60,
    seed: int | None = 0,
    **training: Any,
) -> Any:
    """A one-class ``FlowModel`` on ``X``, trained exactly like the ``flow`` detector; ``training``:
    more :class:`~rareflow.training.TrainConfig` settings (``validation_fraction``, ``device``, ...)."""
    from rareflow.detectors.flow import FlowDetector

    training = {"progress": False, **training, "epochs": epochs}
    det = FlowDetector(flow=flow, transforms=transforms, hidden=tuple(hidden), training=training, random_state=seed)
    det.fit(X, sample_weight=sample_weight)
    return det.model_


def generate_outliers(
    model: Any,
    X: np.ndarray,
    generator: str,
    sigma: float | Sequence[float] | None,
    n: int,
    seed: int | None,
    n_threads: int | None = None,
    device: str | None = None,
) -> np.ndarray:
    """``n`` outliers of the flow ``model`` (fitted on ``X``) by ``generator`` (see module doc);
    DeepAA (archetype / nullspace) trains on ``device`` (default: the flow's)."""
    if generator not in GENERATORS:
        raise RareflowError(f"generator must be one of {', '.join(GENERATORS)}, got {generator!r}")
    if generator in ("archetype", "nullspace"):
        from rareflow.outliers.deep_aa import fit_deep_aa, sample_archetype, sample_nullspace

        deep, _ = fit_deep_aa(model, X, seed=seed, n_threads=n_threads, device=device)
        sampler = sample_archetype if generator == "archetype" else sample_nullspace
        c = 0.1 if sigma is None else float(sigma)  # type: ignore[arg-type]
        return sampler(deep, n, concentration=c, seed=child_seed(seed, "sample")).x
    from rareflow.outliers.latent import generate

    p = sigma if sigma is None or np.ndim(sigma) == 0 else tuple(sigma)  # type: ignore[arg-type]
    return generate(model, n, generator, p, seed=seed).x  # type: ignore[arg-type]


def flow_outliers(
    X_B: np.ndarray,
    n: int,
    gen: np.random.Generator,
    method: str = "tail",
    sigma: float | Sequence[float] | None = 2.0,
    transforms: int = 6,
    hidden: Sequence[int] = (64, 64),
    epochs: int = 60,
    n_threads: int | None = None,
) -> np.ndarray:
    """Synthetic rare rows for ``selfsup-flow`` (``synthetic: {name: flow-outliers, method, sigma}``):
    a flow fitted on the B rows, ``n`` outliers generated from it (seeded by ``gen``)."""
    seed = int(gen.integers(2**31 - 1))
    model = fit_flow(X_B, flow="realnvp", transforms=transforms, hidden=hidden, epochs=epochs,
                     seed=derive_seed(seed, FLOW), n_threads=n_threads)  # fmt: skip
    return generate_outliers(model, X_B, method, sigma, int(n), derive_seed(seed, "generate"), n_threads)


def _register_selfsup_hook() -> None:
    """Offer :func:`flow_outliers` to ``selfsup-flow`` as the synthetic generator ``flow-outliers``."""
    try:
        from rareflow.detectors.selfsup_flow import register_synthetic
    except Exception:  # selfsup-flow absent or broken: never break the detector registry over a hook
        return
    register_synthetic("flow-outliers")(flow_outliers)


_register_selfsup_hook()
