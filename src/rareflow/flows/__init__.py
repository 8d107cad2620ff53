"""Normalizing flows on zuko: builders, the preprocessing stored with a model, ``FlowModel``, the
likelihood losses and flow anomaly scores (the training loop is :mod:`rareflow.training`).

Quick use::

    from rareflow.flows import FlowConfig, FlowModel, Preprocessor, nll_loss
    from rareflow.training import Batch, train
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
from rareflow.flows.losses import nll_loss, trimmed_nll_loss

__all__ = [
    "FLOW_KINDS",
    "FlowConfig",
    "FlowModel",
    "FusedRealNVP",
    "LatentGaussian",
    "Preprocessor",
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
    "trimmed_nll_loss",
]
