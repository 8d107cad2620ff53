"""``FlowModel``: preprocessing + zuko flow, with fast batched scoring.

The density in the original feature space is

.. math:: \\log p(x \\mid c) = \\log N(f(T(x) \\mid c); 0, I) + \\log|\\det J_f(T(x) \\mid c)|
          + \\log|\\det J_T(x)| ,

with :math:`T` the stored preprocessing (:mod:`rareflow.flows.preprocessing`) and :math:`f`
the zuko flow (:mod:`rareflow.flows.build`). The latent point is :math:`z = f(T(x))`.

Fast path (RealNVP only). zuko builds several ``Transform`` objects per call and scatters the
two halves of the features back into one tensor after every coupling; for small tabular inputs
that Python and memory traffic dominates. :class:`FusedRealNVP` evaluates the *same* zuko
parameters (it holds references, not copies) with the halves kept as two contiguous tensors that
swap roles between the alternating couplings, ``F.linear`` layers and one fused affine update.
It is used for ``log_prob`` / ``transform`` in training and scoring; ``tests/flows`` checks that
it gives zuko's log-density and latent on the same weights, and ``benchmarks/bench_flows.py``
measures the gain. Inverse and sampling always go through zuko.

Stacked members. :meth:`FlowModel.stacked_log_prob` evaluates :math:`M` models of this
architecture at once, their weights stacked over a leading member dimension and each member on
its own rows ``(M, B, d)``: the same couplings with one ``baddbmm`` per layer for all members
(:func:`stacked_linear`), used by :func:`rareflow.flows.ensemble.train_ensemble`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.flows.build import FlowConfig, build_flow
from rareflow.flows.preprocessing import Preprocessor
from rareflow.training.inference import predict_batched
from rareflow.training.weights import load_module, module_arrays

LOG_2PI = math.log(2.0 * math.pi)
DEFAULT_SCORE_BATCH = 2048
_ACT = {"relu": F.relu, "elu": F.elu, "silu": F.silu, "tanh": torch.tanh}
# activations oneDNN fuses into its linear kernel (bias + activation in the GEMM's write-back)
_ONEDNN_ACT = {F.relu: "relu", F.silu: "swish", torch.tanh: "tanh"}


def _onednn_linear() -> Any:
    """``torch.ops.mkldnn._linear_pointwise`` when this torch build has it and it agrees with
    ``F.linear`` on a small check (private op: anything unexpected switches it off), else None."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        if not torch.backends.mkldnn.is_available():
            return None
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*s, generator=g) for s in ((33, 7), (19, 7), (19,)))
        with torch.no_grad():
            ok = torch.allclose(op(x, w, b, "relu", [], ""), F.relu(F.linear(x, w, b)), atol=1e-5, rtol=1e-4)
        return op if ok else None
    except (AttributeError, RuntimeError, TypeError):
        return None


_FUSED_LINEAR: list[Any] = []  # filled on first use: [op or None]


def fused_linear(x: Tensor, weight: Tensor, bias: Tensor | None, act: Any = None, onednn: bool = True) -> Tensor:
    """``act(F.linear(x, weight, bias))``; without autograd on CPU float32, one oneDNN call with the
    bias and the activation fused (:data:`_ONEDNN_ACT`; others applied in place afterwards).

    Scoring is a few thin GEMMs per coupling; unfused, each GEMM's output is written three times
    (bias broadcast, GEMM, activation). Training keeps ``F.linear`` (the oneDNN op has no
    backward), and so does ``onednn=False``.
    """
    use = onednn and not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
    if use and not _FUSED_LINEAR:  # probed on first use, outside autograd (and so outside training's vmap)
        _FUSED_LINEAR.append(_onednn_linear())
    op = _FUSED_LINEAR[0] if use else None
    if op is None or x.ndim != 2 or not weight.is_contiguous():
        h = F.linear(x, weight, bias)
        return h if act is None else (act(h, inplace=True) if act in (F.relu, F.elu) else act(h))
    name = _ONEDNN_ACT.get(act, "none") if act is not None else "none"
    h = op(x, weight, bias, name, [], "")
    if act is not None and name == "none":
        h = act(h, inplace=True) if act in (F.relu, F.elu) else act(h)
    return h


def stacked_linear(x: Tensor, weight: Tensor, bias: Tensor, act: Any = None) -> Tensor:
    """``act(x @ weight^T + bias)`` for ``M`` members at once: ``x`` (M, B, in), ``weight``
    (M, out, in), ``bias`` (M, out); one ``baddbmm`` (bias written once, by the GEMM)."""
    h = torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2))
    return h if act is None else (act(h, inplace=True) if act in (F.relu, F.elu) else act(h))


class FusedRealNVP:
    """Hand-fused forward pass of a zuko ``RealNVP`` sharing its parameters.

    For coupling :math:`k` with constant half :math:`a` and transformed half :math:`b`:
    :math:`(t, \\tilde s) = \\mathrm{MLP}_k([x_a, c])`,
    :math:`s = \\tilde s / (1 + |\\tilde s / \\log 10^{-3}|)`,
    :math:`x_b \\leftarrow x_b e^{s} + t`, :math:`\\log|\\det J| \\mathrel{+}= \\sum s` —
    zuko's ``MonotonicAffineTransform`` inside ``GeneralCouplingTransform``.
    """

    def __init__(self, flow: nn.Module, activation: str) -> None:
        # modules, not tensors: ``.to(device)`` replaces buffers, module attributes stay current
        self.couplings = list(flow.transform.transforms)
        self.linears = [[m for m in t.hyper if hasattr(m, "weight")] for t in self.couplings]
        self.act = _ACT[activation]
        self.inv_log_slope = 1.0 / math.log(1e-3)
        self._index: dict[tuple[str, int], tuple[Tensor, Tensor]] = {}

    def _split(self, k: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Index tensors of the constant / transformed halves of coupling ``k`` (cached per device)."""
        key = (str(device), k)
        if key not in self._index:
            mask = self.couplings[k].mask.to(device)
            self._index[key] = (mask.nonzero().squeeze(-1), (~mask).nonzero().squeeze(-1))
        return self._index[key]

    @staticmethod
    def supports(flow: nn.Module) -> bool:
        """True for zuko RealNVPs with alternating masks, affine couplings and a N(0, I) base."""
        try:
            layers = list(flow.transform.transforms)
            masks = [t.mask for t in layers]
            alternating = all(bool((m2 == ~m1).all()) for m1, m2 in zip(masks, masks[1:]))
            base = flow.base
            std_base = bool((base.loc == 0).all()) and bool((base.scale == 1).all())
            affine = all(getattr(t, "total", 0) == 2 for t in layers)
            return alternating and std_base and affine
        except (AttributeError, NotImplementedError, RuntimeError):  # not a zuko RealNVP, or a meta module
            return False

    def halves(
        self, u: Tensor, c: Tensor | None = None, onednn: bool = False, stacked: Sequence[Sequence[tuple[Tensor, Tensor]]] | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(z_a, z_b, log|det J_f|)``: the latent as the last coupling's two halves.

        ``onednn=True`` (log-density scoring without autograd) lets :func:`fused_linear` use oneDNN's
        fused linear; its float32 round-off differs from zuko's GEMM by ~1e-6 relative, so the
        latent ``z`` that :meth:`FlowModel.inverse` must invert keeps zuko's GEMM.
        ``stacked``: per coupling, per layer, ``(weight, bias)`` stacked over ``M`` members, used
        instead of the module's own; ``u`` and ``c`` are then ``(M, B, ...)`` (:func:`stacked_linear`).
        """
        ia, ib = self._split(0, u.device)
        xa, xb = u.index_select(-1, ia), u.index_select(-1, ib)
        ladj: Tensor | None = None
        for j, lin in enumerate(self.linears):
            h = xa if c is None else torch.cat((xa, c), dim=-1)
            for i, layer in enumerate(lin):
                act = self.act if i < len(lin) - 1 else None
                if stacked is not None:
                    h = stacked_linear(h, *stacked[j][i], act)
                else:
                    h = fused_linear(h, layer.weight, layer.bias, act, onednn)
            t, s = h.unflatten(-1, (-1, 2)).unbind(-1)  # one stack in the backward, where two selects zero-fill two (B, d, 2) tensors
            log_scale = s / (1.0 + (s * self.inv_log_slope).abs())
            xb = torch.addcmul(t, xb, log_scale.exp())
            step = log_scale.sum(-1)
            ladj = step if ladj is None else ladj + step
            xa, xb = xb, xa
        assert ladj is not None
        # after the swap xa holds the last coupling's transformed half, xb its constant half
        return xa, xb, ladj

    def merge(self, za: Tensor, zb: Tensor) -> Tensor:
        """The latent in feature order from the halves returned by :meth:`halves`."""
        ia, ib = self._split(len(self.couplings) - 1, za.device)
        z = za.new_empty((za.shape[0], len(ia) + len(ib)))
        z[:, ib] = za
        z[:, ia] = zb
        return z

    def __call__(self, u: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(z, log|det J_f|)`` for standardised inputs ``u``."""
        za, zb, ladj = self.halves(u, c)
        return self.merge(za, zb), ladj


class FlowModel(nn.Module):
    """Preprocessing + zuko flow; ``log_prob`` is the density in the original feature space."""

    def __init__(
        self,
        config: FlowConfig,
        preprocessor: Preprocessor | None = None,
        seed: int | None = None,
        fused: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.pre = preprocessor if preprocessor is not None else Preprocessor(config.features)
        if seed is None:
            self.flow = build_flow(config)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.flow = build_flow(config)
        self.fused = fused and config.kind == "realnvp" and FusedRealNVP.supports(self.flow)
        self._fast = FusedRealNVP(self.flow, config.activation) if self.fused else None
        self.register_load_state_dict_post_hook(self._refresh_fast)  # masks come from the file

    # -- core maps -------------------------------------------------------------------------------
    def _check(self, x: Tensor, context: Tensor | None) -> Tensor | None:
        if x.ndim != 2 or x.shape[-1] != self.config.features:
            raise RareflowError(f"flow expects rows of {self.config.features} features, got shape {tuple(x.shape)}")
        if self.config.context == 0:
            if context is not None:
                raise RareflowError("this flow is unconditional; do not pass a context")
            return None
        if context is None:
            raise RareflowError(f"this conditional flow needs a context of {self.config.context} values per row")
        context = context.to(x.dtype)
        if context.ndim == 1:
            context = context.unsqueeze(-1)
        if context.shape != (x.shape[0], self.config.context):
            raise RareflowError(
                f"context must have shape ({x.shape[0]}, {self.config.context}), got {tuple(context.shape)}"
            )
        return context

    def flow_forward(self, u: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(z, log|det J_f|)`` of the flow alone, on preprocessed ``u``."""
        if self._fast is not None:
            return self._fast(u, context)
        return self.flow(context).transform.call_and_ladj(u)

    def _latent_log_prob(self, x: Tensor, context: Tensor | None, need_z: bool) -> tuple[Tensor | None, Tensor]:
        context = self._check(x, context)
        u, ladj_pre = self.pre(x)
        if self._fast is not None:
            za, zb, ladj = self._fast.halves(u, context, onednn=not need_z)
            sq = (za * za).sum(-1) + (zb * zb).sum(-1)
            z = self._fast.merge(za, zb) if need_z else None
        else:
            z, ladj = self.flow(context).transform.call_and_ladj(u)
            sq = (z * z).sum(-1)
        log_base = -0.5 * sq - 0.5 * self.config.features * LOG_2PI
        return z, log_base + ladj + ladj_pre

    def stacked_log_prob(self, params: Mapping[str, Tensor], x: Tensor, context: Tensor | None = None) -> Tensor:
        """``(M, B)``: :meth:`log_prob` of ``M`` members of this architecture and preprocessing at once.

        ``params`` maps every parameter name of this model to the members' values stacked over a
        leading dimension (``torch.func.stack_module_state``); ``x`` ``(M, B, d)`` and ``context``
        ``(M, B, c)`` hold each member's own rows. Equal to member ``k``'s :meth:`log_prob` on
        ``x[k]`` up to float round-off; one ``baddbmm`` per layer instead of ``M`` GEMMs and no
        ``vmap``. Only where :attr:`stackable` (fused RealNVPs); gradients flow into ``params``.
        """
        names = self._stacked_names()
        assert self._fast is not None
        m, b, d = x.shape
        c = None if context is None else self._check(x.reshape(m * b, d), context.reshape(m * b, -1))
        u, ladj_pre = self.pre(x.reshape(m * b, d))
        weights = [[(params[w], params[bias]) for w, bias in layer] for layer in names]
        za, zb, ladj = self._fast.halves(u.view(m, b, d), None if c is None else c.view(m, b, -1), stacked=weights)
        sq = (za * za).sum(-1) + (zb * zb).sum(-1)
        return -0.5 * sq - 0.5 * self.config.features * LOG_2PI + ladj + ladj_pre.view(m, b)

    @property
    def stackable(self) -> bool:
        """Whether :meth:`stacked_log_prob` applies (fused RealNVP, every layer with a bias)."""
        return self._fast is not None and all(layer.bias is not None for lin in self._fast.linears for layer in lin)

    def _stacked_names(self) -> list[list[tuple[str, str]]]:
        """Parameter names of the fused path's ``(weight, bias)`` per coupling and layer."""
        if not self.stackable:
            raise RareflowError("stacked_log_prob needs the fused RealNVP path (kind 'realnvp', fused=True)")
        assert self._fast is not None
        ids = {id(p): n for n, p in self.named_parameters()}
        return [[(ids[id(layer.weight)], ids[id(layer.bias)]) for layer in lin] for lin in self._fast.linears]

    def transform_and_log_prob(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Latent ``z`` and ``log p(x | context)`` in one pass."""
        z, logp = self._latent_log_prob(x, context, need_z=True)
        assert z is not None
        return z, logp

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """:math:`\\log p(x \\mid c)` in the original feature space (nats)."""
        return self._latent_log_prob(x, context, need_z=False)[1]

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Same as :meth:`log_prob` (so the module can be traced or wrapped)."""
        return self.log_prob(x, context)

    def transform(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Latent ``z = f(T(x))``; standard normal for data from the training density."""
        context = self._check(x, context)
        return self.flow_forward(self.pre(x)[0], context)[0]

    def inverse(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Data-space ``x = T^{-1}(f^{-1}(z))`` (continuous; see :meth:`sample` for rounding)."""
        context = self._check(z, context)
        return self.pre.inverse(self.flow(context).transform.inv(z))

    def sample(
        self,
        n: int,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
        round_discrete: bool = True,
    ) -> Tensor:
        """``n`` draws in data space: :math:`z \\sim N(0, I)`, then :meth:`inverse`."""
        p = next(self.parameters())
        z = torch.randn(n, self.config.features, generator=generator, dtype=p.dtype, device=p.device)
        x = self.inverse(z, context)
        return self.pre.round_discrete(x) if round_discrete else x

    # -- batched numpy helpers -------------------------------------------------------------------
    def evaluate(
        self,
        X: np.ndarray | Tensor,
        context: np.ndarray | Tensor | None = None,
        batch_size: int = DEFAULT_SCORE_BATCH,
        latent: bool = True,
    ) -> dict[str, np.ndarray]:
        """``{"log_prob": (n,), "z": (n, d)}`` as float64 numpy, batched, in inference mode.

        Memory beyond the input and output is one batch. ``latent=False`` skips ``z``.
        """
        p = next(self.parameters())
        X = X.detach().cpu().numpy() if isinstance(X, Tensor) else np.asarray(X)
        d = self.config.features
        if context is not None:  # one array through the batches: features then context columns
            c = context.detach().cpu().numpy() if isinstance(context, Tensor) else np.asarray(context)
            X = np.concatenate([X, c.reshape(len(c), -1)], axis=1)

        def fn(xb: Tensor) -> Tensor:
            z, lp = self._latent_log_prob(xb[:, :d], xb[:, d:] if context is not None else None, need_z=latent)
            return lp[:, None] if z is None else torch.cat([lp[:, None], z], dim=1)

        was_training = self.training
        self.eval()
        try:
            out = predict_batched(fn, X, batch_size, p.device, dtype=p.dtype)
        finally:
            self.train(was_training)
        result = {"log_prob": out[:, 0]}
        if latent:
            result["z"] = out[:, 1:]
        return result

    # -- persistence -------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(json, arrays)``: the architecture and every weight/buffer as numpy (no pickle)."""
        return {"config": self.config.to_json(), "fused": self.fused}, module_arrays(self)

    @classmethod
    def build(cls, json: dict[str, Any]) -> "FlowModel":
        """An unfitted model of the architecture :meth:`to_state` wrote (weights to be loaded)."""
        return cls(FlowConfig.from_json(json["config"]), fused=bool(json.get("fused", True)))

    @classmethod
    def from_state(cls, json: dict[str, Any], arrays: dict[str, np.ndarray], device: torch.device | str = "cpu") -> "FlowModel":
        """Rebuild a model saved by :meth:`to_state` (shapes checked before any allocation)."""
        try:
            bound = FlowConfig.from_json(json["config"]).min_weights()
        except (RareflowError, KeyError, TypeError, ValueError) as exc:
            raise RareflowError(f"damaged model file: the stored flow architecture is invalid ({str(exc)[:200]})") from None
        return load_module(lambda: cls.build(json), arrays, "", "flow", device, min_elements=bound)

    def _refresh_fast(self, *_: Any) -> None:
        """After loading weights: the fused path only if the loaded masks still allow it."""
        if self._fast is not None and not FusedRealNVP.supports(self.flow):
            self.fused, self._fast = False, None


def one_hot(labels: np.ndarray | Tensor, n_classes: int = 2) -> Tensor:
    """Float one-hot context for class labels (e.g. 0 bulk / 1 rare) of conditional flows."""
    t = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return F.one_hot(t, n_classes).to(torch.float32)
