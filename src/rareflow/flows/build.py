"""Flow builders on zuko: RealNVP, MAF and neural spline flows, all with a standard-normal base.

Every flow is a bijection :math:`z = f(u)` to a standard normal latent :math:`z \\sim N(0, I_d)`,
and its density is the change of variables

.. math:: \\log p(u) = \\log N(f(u); 0, I_d) + \\log \\left|\\det \\frac{\\partial f}{\\partial u}\\right| .

**RealNVP** (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP") stacks
affine coupling layers. With a binary mask splitting :math:`u = (u_1, u_2)`,

.. math:: y_1 = u_1, \\qquad y_2 = u_2 \\odot \\exp(s(u_1)) + t(u_1),
          \\qquad \\log|\\det J| = \\textstyle\\sum_j s_j(u_1),

and the inverse :math:`u_2 = (y_2 - t(y_1)) \\odot \\exp(-s(y_1))` — exactly the seed slides'
equations (1)-(3). zuko's ``RealNVP`` (``GeneralCouplingTransform`` with
``MonotonicAffineTransform``) implements this with one MLP giving :math:`(t, \\tilde s)` per
transformed feature and a soft bound of the log-scale,
:math:`s = \\tilde s / (1 + |\\tilde s / \\log \\text{slope}|)` (``slope = 1e-3``, so
:math:`|s| < 6.9`), which keeps training stable; masks alternate between even and odd features.

**MAF** (Papamakarios, Pavlakou & Murray 2017, "Masked autoregressive flow for density
estimation"): :math:`y_i = u_i \\exp(s_i(u_{<i})) + t_i(u_{<i})` with a MADE network
(Germain et al. 2015) computing all :math:`(s_i, t_i)` in one pass; density evaluation is one
network pass, sampling needs :math:`d` passes. The order reverses between transformations.

**NSF** (Durkan, Bekasov, Murray & Papamakarios 2019, "Neural spline flows"): the same
autoregressive structure with monotonic rational-quadratic splines of ``bins`` bins on
:math:`[-5, 5]` instead of affine maps (identity outside), hence the robust standardisation done
by :mod:`rareflow.flows.preprocessing` before the flow.

Conditional variants take a ``context`` vector (e.g. a one-hot class label) that is fed to every
conditioner network: :math:`s(u_1, c), t(u_1, c)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import zuko

from rareflow.errors import RareflowError
from rareflow.nets.activations import ACTIVATIONS

FLOW_KINDS = ("realnvp", "maf", "nsf")


@dataclass(frozen=True)
class FlowConfig:
    """Everything needed to rebuild a flow's architecture (saved as JSON with the weights)."""

    kind: str
    features: int
    context: int = 0
    transforms: int = 8
    hidden: tuple[int, ...] = (128, 128)
    activation: str = "relu"
    bins: int = 8
    passes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FLOW_KINDS:
            raise RareflowError(f"unknown flow {self.kind!r}; use one of {', '.join(FLOW_KINDS)}")
        if self.activation not in ACTIVATIONS:
            raise RareflowError(f"unknown activation {self.activation!r}; use one of {', '.join(ACTIVATIONS)}")
        if self.features < 1 or self.transforms < 1 or any(int(h) < 1 for h in self.hidden):
            raise RareflowError("a flow needs >= 1 feature, >= 1 transform and positive hidden sizes")
        if self.kind == "realnvp" and self.features < 2:
            raise RareflowError("RealNVP couples halves of the features and needs >= 2 features; use maf or nsf")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def min_weights(self) -> int:
        """A lower bound of the weight count of this architecture, from the sizes alone (no build):
        every transform has an MLP ``(features // 2 + context) -> hidden... -> features``. Used to
        refuse a model file whose stored architecture is larger than its stored weights."""
        sizes = [self.features // 2 + self.context, *self.hidden, self.features]
        return self.transforms * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists)."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FlowConfig":
        """Inverse of :meth:`to_json`."""
        data = dict(data)
        data["hidden"] = tuple(data.get("hidden", (128, 128)))
        return cls(**data)


def realnvp(
    features: int,
    context: int = 0,
    transforms: int = 8,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
) -> zuko.flows.RealNVP:
    """RealNVP of ``transforms`` affine couplings with alternating even/odd masks."""
    return zuko.flows.RealNVP(
        features,
        context=context,
        transforms=transforms,
        hidden_features=tuple(hidden),
        activation=ACTIVATIONS[activation],
    )


def maf(
    features: int,
    context: int = 0,
    transforms: int = 5,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
    passes: int | None = None,
) -> zuko.flows.MAF:
    """Masked autoregressive flow (affine); ``passes=2`` turns it into a coupling flow."""
    return zuko.flows.MAF(
        features,
        context=context,
        transforms=transforms,
        hidden_features=tuple(hidden),
        activation=ACTIVATIONS[activation],
        passes=passes,
    )


def nsf(
    features: int,
    context: int = 0,
    transforms: int = 5,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
    bins: int = 8,
    passes: int | None = None,
) -> zuko.flows.NSF:
    """Neural spline flow: autoregressive rational-quadratic splines of ``bins`` bins on [-5, 5]."""
    return zuko.flows.NSF(
        features,
        context=context,
        transforms=transforms,
        bins=bins,
        hidden_features=tuple(hidden),
        activation=ACTIVATIONS[activation],
        passes=passes,
    )


def build_flow(config: FlowConfig) -> zuko.lazy.Flow:
    """The zuko flow described by ``config`` (weights initialised from torch's global RNG)."""
    common = dict(
        features=config.features,
        context=config.context,
        transforms=config.transforms,
        hidden=config.hidden,
        activation=config.activation,
    )
    if config.kind == "realnvp":
        return realnvp(**common)
    if config.kind == "maf":
        return maf(**common, passes=config.passes)
    return nsf(**common, bins=config.bins, passes=config.passes)
