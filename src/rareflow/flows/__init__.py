"""Normalizing flows on zuko: builders, the preprocessing stored with a model, ``FlowModel``, the
one torch training loop of rareflow, and flow anomaly scores.

Quick use::

    from rareflow.flows import FlowConfig, FlowModel, Preprocessor, Batch, train, nll_loss
    pre = Preprocessor.fit(X_train)                      # numpy (n, d)
    model = FlowModel(FlowConfig("realnvp", features=d), pre, seed=0)
    history = train(model, nll_loss, Batch(torch.as_tensor(X_train, dtype=torch.float32)))
    out = model.evaluate(X_test)                         # {"log_prob": ..., "z": ...}

See ``docs/flows.md`` for the formulas and papers.
"""

from rareflow.flows.build import FLOW_KINDS, FlowConfig, build_flow, maf, nsf, realnvp
from rareflow.flows.model import FlowModel, FusedRealNVP, one_hot
from rareflow.flows.preprocessing import Preprocessor
from rareflow.flows.scores import LatentGaussian, all_scores, chi_tail, latent_norm, nll
from rareflow.flows.train import (
    Batch,
    TrainingDiverged,
    nll_loss,
    resolve_device,
    split_indices,
    to_tensor,
    torch_threads,
    train,
    trimmed_nll_loss,
    weighted_mean,
)

__all__ = [
    "FLOW_KINDS",
    "Batch",
    "FlowConfig",
    "FlowModel",
    "FusedRealNVP",
    "LatentGaussian",
    "Preprocessor",
    "TrainingDiverged",
    "all_scores",
    "build_flow",
    "chi_tail",
    "latent_norm",
    "maf",
    "nll",
    "nll_loss",
    "nsf",
    "one_hot",
    "realnvp",
    "resolve_device",
    "split_indices",
    "to_tensor",
    "torch_threads",
    "train",
    "trimmed_nll_loss",
    "weighted_mean",
]
