"""Outlier generation with normalizing flows (Bungert 2021, "An Exploration of Normalizing Flows
for Outlier Generation") and training with the generated outliers.

* :mod:`~rareflow.outliers.latent` — chi-law radii: p-sigma shells, chi tails, Gumbel extremes;
  :func:`generate` inverts the flow to data space.
* :mod:`~rareflow.outliers.archetypes` — classic archetypal analysis (Cutler & Breiman 1994) and
  the elbow choice of ``k``.
* :mod:`~rareflow.outliers.deep_aa` — DeepAA head on a flow latent (Keller et al. 2019/2021),
  Dirichlet and null-space sampling.
* :mod:`~rareflow.outliers.training` — discriminator and outlier-exposure classifier
  (Hendrycks et al. 2019), trained through :func:`rareflow.training.train`.
* :mod:`~rareflow.outliers.io` — outlier tables (the ``rareflow outliers`` command is
  :func:`rareflow.api.outliers_command`).
* the MNIST-format IDX reader is :mod:`rareflow.io.idx`.

See ``docs/outliers.md``.
"""

from rareflow.outliers.archetypes import ArchetypeModel, archetypal_analysis, elbow, project_simplex, select_k
from rareflow.outliers.deep_aa import DeepAA, fit_deep_aa, sample_archetype, sample_nullspace
from rareflow.outliers.io import write_outliers
from rareflow.outliers.latent import Generated, chi_moments, fit_gumbel, generate, sample_directions
from rareflow.outliers.training import (
    classifier_score,
    discriminator_score,
    train_discriminator,
    train_oe_classifier,
    train_oe_net,
)

__all__ = [
    "ArchetypeModel",
    "DeepAA",
    "Generated",
    "archetypal_analysis",
    "chi_moments",
    "classifier_score",
    "discriminator_score",
    "elbow",
    "fit_deep_aa",
    "fit_gumbel",
    "generate",
    "project_simplex",
    "sample_archetype",
    "sample_directions",
    "sample_nullspace",
    "select_k",
    "train_discriminator",
    "train_oe_classifier",
    "train_oe_net",
    "write_outliers",
]
