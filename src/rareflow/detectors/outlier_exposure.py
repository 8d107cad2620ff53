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

The same generation is offered to ``selfsup-flow`` as its synthetic rare set:
``synthetic: {name: flow-outliers, size: 1.0, method: tail, sigma: 2.0}`` (:func:`flow_outliers`,
registered with ``rareflow.detectors.selfsup_flow.register_synthetic`` when this module loads —
which the detector registry does before any method is built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from rareflow.detectors import register
from rareflow.detectors.base import Detector, FittedState, Kind
from rareflow.errors import RareflowError
from rareflow.seeding import derive_seed

GENERATORS = ("extremal", "tail", "gumbel", "archetype", "nullspace")
MODES = ("discriminator", "classifier")
_FLOW, _NET = "flow/", "net/"


@register
class OutlierExposureDetector(Detector):
    """Flow-generated outliers + discriminator / outlier-exposure classifier (one-class)."""

    name: ClassVar[str] = "outlier-exposure"
    kind: ClassVar[Kind] = "one-class"

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
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        validation_fraction: float = 0.2,
        threshold: dict[str, Any] | None = None,
        random_state: int | None = 0,
        n_threads: int | None = None,
        progress: bool = True,
    ) -> None:
        self.fit_on = fit_on
        self.mode = mode
        self.generator = generator
        self.sigma = sigma
        self.n_generated = n_generated
        self.beta = beta
        self.n_classes = n_classes
        self.score = score
        self.flow = flow
        self.transforms = transforms
        self.flow_hidden = flow_hidden
        self.flow_epochs = flow_epochs
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.validation_fraction = validation_fraction
        self.threshold = threshold
        self.random_state = random_state
        self.n_threads = n_threads
        self.progress = progress

    def _check_params(self) -> None:
        from rareflow.outliers.training import OE_SCORES

        if self.mode not in MODES:
            raise RareflowError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.generator not in GENERATORS:
            raise RareflowError(f"generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.score not in OE_SCORES:
            raise RareflowError(f"score must be one of {', '.join(OE_SCORES)}, got {self.score!r}")
        if self.n_generated <= 0:
            raise RareflowError(f"n_generated must be > 0 (a count or a fraction of the training rows), got {self.n_generated}")

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        self._check_params()
        seed = 0 if self.random_state is None else int(self.random_state)
        self.model_ = fit_flow(
            X, sample_weight, flow=self.flow, transforms=self.transforms, hidden=self.flow_hidden,
            epochs=self.flow_epochs, validation_fraction=self.validation_fraction, seed=derive_seed(seed, "oe-flow"),
            n_threads=self.n_threads, progress=self.progress,
        )  # fmt: skip
        m = int(self.n_generated) if self.n_generated >= 2 else max(int(round(self.n_generated * len(X))), 1)
        X_out = generate_outliers(self.model_, X, self.generator, self.sigma, m, derive_seed(seed, "oe-generate"),
                                  n_threads=self.n_threads)  # fmt: skip
        common = dict(hidden=tuple(self.hidden), epochs=int(self.epochs), batch_size=int(self.batch_size), lr=float(self.lr),
                      validation_fraction=float(self.validation_fraction), seed=derive_seed(seed, "oe-net"),
                      n_threads=self.n_threads, progress=bool(self.progress))  # fmt: skip
        if self.mode == "discriminator":
            from rareflow.outliers.training import train_discriminator

            self.net_, self.history_ = train_discriminator(X, X_out, **common)
        else:
            from rareflow.outliers.training import train_oe_classifier

            classes = self._pseudo_classes(X, derive_seed(seed, "oe-kmeans"))
            self.net_, self.history_ = train_oe_classifier(X, classes, X_out, beta=float(self.beta), **common)

    def _pseudo_classes(self, X: np.ndarray, seed: int) -> np.ndarray:
        """k-means clusters of the standardised training rows as the classifier's classes."""
        from sklearn.cluster import KMeans

        k = int(self.n_classes)
        if k < 2:
            raise RareflowError(f"classifier mode needs n_classes >= 2, got {k}")
        Xs = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
        return KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(Xs)

    # -- scoring ---------------------------------------------------------------------------------
    def _score(self, X: np.ndarray) -> np.ndarray:
        from rareflow.outliers.training import classifier_score, discriminator_score

        if self.mode == "discriminator":
            return discriminator_score(self.net_, X)
        return classifier_score(self.net_, X, self.score)

    # -- persistence -----------------------------------------------------------------------------
    def _export(self) -> FittedState:
        flow_json, flow_arrays = self.model_.to_state()
        from rareflow.outliers.training import mlp_state

        net_json, net_arrays = mlp_state(self.net_)
        state = FittedState(json={"flow": flow_json, "net": net_json})
        state.arrays = {**{_FLOW + k: v for k, v in flow_arrays.items()}, **{_NET + k: v for k, v in net_arrays.items()}}
        return state

    def _import(self, state: FittedState) -> None:
        from rareflow.flows.model import FlowModel
        from rareflow.outliers.training import mlp_from_state

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) :]: v for k, v in state.arrays.items() if k.startswith(prefix)}

        self.model_ = FlowModel.from_state(state.json["flow"], part(_FLOW))
        self.net_ = mlp_from_state(state.json["net"], part(_NET))


# -- shared helpers (also the selfsup-flow synthetic-R hook) ----------------------------------------
def fit_flow(
    X: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    flow: str = "realnvp",
    transforms: int = 6,
    hidden: Sequence[int] = (64, 64),
    epochs: int = 60,
    validation_fraction: float = 0.2,
    seed: int = 0,
    n_threads: int | None = None,
    progress: bool = False,
) -> Any:
    """A one-class ``FlowModel`` on ``X``, trained exactly like the ``flow`` detector."""
    from rareflow.detectors.flow import FlowDetector

    training = {"epochs": epochs, "validation_fraction": validation_fraction, "n_threads": n_threads, "progress": progress}
    det = FlowDetector(flow=flow, transforms=transforms, hidden=tuple(hidden), training=training, random_state=seed)
    det.fit(X, sample_weight=sample_weight)
    return det.model_


def generate_outliers(
    model: Any,
    X: np.ndarray,
    generator: str,
    sigma: float | Sequence[float] | None,
    n: int,
    seed: int,
    n_threads: int | None = None,
) -> np.ndarray:
    """``n`` outliers of the flow ``model`` (fitted on ``X``) by ``generator`` (see module doc)."""
    if generator not in GENERATORS:
        raise RareflowError(f"generator must be one of {', '.join(GENERATORS)}, got {generator!r}")
    if generator in ("archetype", "nullspace"):
        from rareflow.outliers.deep_aa import fit_deep_aa, sample_archetype, sample_nullspace

        deep, _ = fit_deep_aa(model, X, seed=seed, n_threads=n_threads)
        sampler = sample_archetype if generator == "archetype" else sample_nullspace
        c = 0.1 if sigma is None else float(sigma)  # type: ignore[arg-type]
        return sampler(deep, n, concentration=c, seed=derive_seed(seed, "sample")).x
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
                     seed=derive_seed(seed, "flow"), n_threads=n_threads)  # fmt: skip
    return generate_outliers(model, X_B, method, sigma, int(n), derive_seed(seed, "generate"), n_threads)


def _register_selfsup_hook() -> None:
    """Offer :func:`flow_outliers` to ``selfsup-flow`` as the synthetic generator ``flow-outliers``."""
    try:
        from rareflow.detectors.selfsup_flow import register_synthetic
    except Exception:  # selfsup-flow absent or broken: never break the detector registry over a hook
        return
    register_synthetic("flow-outliers")(flow_outliers)


_register_selfsup_hook()
