"""Train an ensemble of flows of one architecture as ONE stacked network, in one loop.

Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and scalable predictive
uncertainty estimation using deep ensembles") average :math:`M` independently trained members.
Trained one after another, each member pays its own Python loop, validation pass and early
stopping. Here the members' parameters are stacked over a leading member dimension
(``torch.func.stack_module_state``) and one step evaluates every member's loss at once,

.. math:: L_k = \\ell\\big(f_{\\theta_k};\\ B_k\\big), \\qquad k = 1 \\dots M, \\qquad
          \\nabla_{\\theta_k} \\textstyle\\sum_j L_j = \\nabla_{\\theta_k} L_k ,

so the gradient of the summed loss is each member's own gradient. Two ways to evaluate the
:math:`L_k`, chosen per call of :func:`train_ensemble`:

* **stacked form** (fused RealNVPs, no ``wrap``, a loss with a ``stacked`` attribute:
  :func:`~rareflow.flows.losses.nll_loss` and :func:`class_context_nll_loss`):
  :meth:`~rareflow.flows.model.FlowModel.stacked_log_prob`, one ``baddbmm`` per layer for all
  members and no ``vmap`` (flow-classifier's default path);
* **vmap**: ``torch.vmap(functional_call(model, theta_k, B_k))`` for any other loss or flow
  (zuko's MAF/NSF, ``ClassFlows`` wraps, trimmed losses).

All parameters of all members live in ONE ``(M, P)`` tensor, of which the stacked weights are
views, so the per-member gradient norm, clipping and AdamW (its fused kernel) are one operation
each instead of one per parameter tensor. The members stay independent, exactly as if trained
separately:

* own initialisation (the caller builds each :class:`~rareflow.flows.model.FlowModel` with its
  seed; all members share one preprocessing, whose buffers must be equal),
* own data order: member :math:`k` draws its permutation of the training rows from a generator
  seeded with ``seeds[k]`` (the same draws as :func:`rareflow.training.train` with that seed),
* own optimiser state (AdamW is elementwise, so one AdamW over the stacked tensor is M AdamWs)
  and own gradient-norm clipping (the norm is taken per member),
* own bad-batch guard (:class:`~rareflow.training.guards.StackedGuard`, the rules of ``train``):
  a member's NaN/inf/exploded batch is skipped for that member only,
* own early stopping: a member whose validation loss has not improved for ``patience`` epochs
  (or that passed the guard's limits) gets its best weights back and is frozen; it is left out
  of the forward pass, and because AdamW's momentum and weight decay would still move it, its
  slice is copied back from the snapshot after every optimiser step (bitwise unchanged).

Small-data path: no DataLoader; every epoch gathers each member's permuted rows once and slices
them per step; the loss is synchronised once per epoch, not per step; validation can run on a
fixed seeded subset (``valid_rows``); ``lr_reference_batch`` scales the learning rate by the
square-root rule :math:`\\eta = \\eta_0 \\sqrt{b / b_0}` for larger batches (Krizhevsky 2014,
"One weird trick"; Hoffer et al. 2017), off by default.

The trained (best) weights are loaded back into the given models, which are then used exactly as
after sequential training. Fit times against sequential training and zuko, and what the stacked
form and the one-tensor parameters buy over ``vmap``: ``benchmarks/bench_ensemble.py``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from rareflow.errors import RareflowError
from rareflow.flows.model import FlowModel
from rareflow.training import Batch, TrainingDiverged, evaluate_loss, resolve_device, seeded, torch_threads, weighted_mean
from rareflow.training.guards import StackedGuard, max_skips
from rareflow.progress import make_progress

LossFn = Callable[[nn.Module, Batch], Tensor]
FIELDS = ("x", "context", "label", "weight")


def class_context_nll_loss(n_classes: int = 2, trim: float = 0.0) -> LossFn:
    """:math:`\\mathrm{mean}_i\\, w_i\\,[-\\log p(x_i \\mid c = \\mathrm{onehot}(y_i))]` for ONE conditional flow.

    The class NLL of :func:`rareflow.flows.selfsup.class_nll_loss` (``discriminative=0``) on
    ``ClassFlows([model], conditional=True)``, but with one flow pass per row (the row's own class
    as context) instead of two (``log_prob_pair`` evaluates both classes). ``batch.label`` holds
    the class index. ``trim`` > 0 drops the rows above the ``1 - trim`` NLL quantile, as
    ``class_nll_loss``; it branches on tensor values, so use it as ``val_loss_fn`` only.
    """

    def own_class(batch: Batch) -> Tensor:
        """One-hot context of each row's own class (any leading shape)."""
        assert batch.label is not None, "class_context_nll_loss needs labels"
        classes = torch.arange(n_classes, device=batch.x.device, dtype=batch.label.dtype)
        return (batch.label.unsqueeze(-1) == classes).to(batch.x.dtype)

    def loss_fn(model: nn.Module, batch: Batch) -> Tensor:
        per_row, w = -model.log_prob(batch.x, own_class(batch)), batch.weight
        if trim > 0 and len(per_row) > 1 and not bool(torch.isnan(per_row).any()):
            keep = per_row <= torch.quantile(per_row.detach().float(), 1.0 - trim).to(per_row.dtype)
            w = keep.to(per_row.dtype) if w is None else w * keep
            per_row = per_row.masked_fill(~keep, 0.0)
        return weighted_mean(per_row, w)

    def stacked(model: nn.Module, params: Mapping[str, Tensor], batch: Batch) -> Tensor:
        """``(M,)``: the loss of ``M`` stacked members on their own rows (fields ``(M, B, ...)``)."""
        return weighted_mean(-model.stacked_log_prob(params, batch.x, own_class(batch)), batch.weight, dim=-1)

    if trim <= 0:
        loss_fn.stacked = stacked  # type: ignore[attr-defined]  # the form train_ensemble runs without vmap
    return loss_fn


class _Call(nn.Module):
    """``loss_fn(view, batch)`` as a module call, so ``functional_call`` can swap the weights.

    With ``evaluate=True`` the call is ``evaluate_loss(view, loss_fn, data, batch_size)`` (eval
    mode, no gradients, chunked): the validation loss of ``train``, for one member.
    """

    def __init__(self, base: nn.Module, view: nn.Module, loss_fn: LossFn, evaluate: bool = False) -> None:
        super().__init__()
        self.base = base
        object.__setattr__(self, "_view", view)  # shares base's modules; not registered twice
        object.__setattr__(self, "_loss", loss_fn)
        self.evaluate = evaluate

    def forward(self, *args: Any) -> Any:
        if self.evaluate:
            data, batch_size = args
            return evaluate_loss(self._view, self._loss, data, batch_size)
        return self._loss(self._view, Batch(*args))


class _Stack:
    """The members' parameters as ONE ``(M, P)`` tensor, their best snapshots and frozen flags.

    Every parameter of member ``k`` is a view into row ``k`` of :attr:`flat` (:attr:`params`), so
    the per-member gradient norm, clipping, the skip/restore copies and AdamW each run as one
    operation on one tensor instead of one per parameter tensor.
    """

    def __init__(self, models: Sequence[FlowModel], wrap: Callable[[nn.Module], nn.Module] | None, loss_fn: LossFn) -> None:
        _check_shared_buffers(models)
        self.models = list(models)
        self.base = models[0]
        self.view = wrap(self.base) if wrap is not None else self.base
        params, _ = stack_module_state(self.models)
        m = len(models)
        self.names = list(params)
        self.shapes = [tuple(p.shape[1:]) for p in params.values()]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.flat = torch.cat([p.detach().reshape(m, -1) for p in params.values()], dim=1).requires_grad_()
        self.best = self.flat.detach().clone()
        self.active = torch.ones(m, dtype=torch.bool)
        stackable = wrap is None and all(getattr(mod, "stackable", False) for mod in self.models)
        self.stacked_loss: Callable[..., Tensor] | None = getattr(loss_fn, "stacked", None) if stackable else None

    @property
    def params(self) -> dict[str, Tensor]:
        """Name -> ``(M, ...)`` views of :attr:`flat` (gradients flow into ``flat``)."""
        return self._views(self.flat)

    def _views(self, flat: Tensor) -> dict[str, Tensor]:
        chunks = flat.split(self.sizes, dim=1)
        return {n: c.view(len(flat), *shape) for n, c, shape in zip(self.names, chunks, self.shapes)}

    def member(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s weights, named for :class:`_Call`."""
        return {f"base.{n}": p[k] for n, p in self.params.items()}

    def losses(self, call: _Call, active: Tensor | None, fields: Sequence[Tensor | None]) -> Tensor:
        """``(A,)``: each active member's loss on its own rows (``fields`` stacked over members).

        The loss's ``stacked`` form (:meth:`FlowModel.stacked_log_prob`, no ``vmap``) when it has
        one and the members allow it, else ``vmap`` over ``loss_fn``.
        """
        params = self._views(self.flat if active is None else self.flat[active])
        if self.stacked_loss is not None:
            return self.stacked_loss(self.base, params, Batch(*fields))
        named = {f"base.{n}": p for n, p in params.items()}
        dims = tuple(None if f is None else 0 for f in fields)

        def one(p: dict[str, Tensor], *fs: Tensor | None) -> Tensor:
            return functional_call(call, p, tuple(fs))

        return vmap(one, in_dims=(0, *dims), randomness="different")(named, *fields)

    def grad_norms(self) -> Tensor:
        """``(M,)`` per-member gradient 2-norms; in float64 where float32 overflows although every
        entry is finite (as :func:`rareflow.training.guards.grad_norm`)."""
        g = self.flat.grad if self.flat.grad is not None else torch.zeros_like(self.flat)
        norm = torch.linalg.vector_norm(g, dim=1)
        if bool(torch.isinf(norm).any()):  # rare: only then the float64 pass (and its sync)
            wide = torch.linalg.vector_norm(g.double(), dim=1)
            norm = torch.where(torch.isinf(norm), wide.to(norm.dtype).clamp(max=torch.finfo(norm.dtype).max), norm)
            norm = torch.where(torch.isinf(wide), wide.to(norm.dtype), norm)
        return norm

    def clip(self, norms: Tensor, max_norm: float | None, skip: Tensor) -> None:
        """Per-member gradient-norm clipping (``clip_grad_norm_`` on each row, given the norms);
        the gradients of the ``skip`` members are zeroed."""
        g = self.flat.grad
        if g is None:
            return
        coef = torch.ones_like(norms) if max_norm is None or max_norm <= 0 else (max_norm / (norms + 1e-6)).clamp(max=1.0)
        coef = torch.where(skip | ~torch.isfinite(coef), 0.0, coef)
        g.mul_(coef.unsqueeze(1)).masked_fill_(skip.unsqueeze(1), 0.0)  # in place; NaN * 0 is NaN, hence the fill

    @torch.no_grad()
    def keep(self, skip: Tensor, before: Tensor) -> None:
        """Put the ``skip`` members' weights back to ``before`` (their step is skipped)."""
        self.flat.copy_(torch.where(skip.unsqueeze(1), before, self.flat))

    @torch.no_grad()
    def snapshot(self, k: int) -> None:
        self.best[k].copy_(self.flat[k])

    @torch.no_grad()
    def restore_frozen(self) -> None:
        frozen = (~self.active).nonzero().squeeze(-1).to(self.flat.device)
        if len(frozen):
            self.flat.index_copy_(0, frozen, self.best.index_select(0, frozen))

    def freeze(self, k: int) -> None:
        self.active[k] = False
        self.restore_frozen()

    @torch.no_grad()
    def load_best(self) -> None:
        """Copy each member's best weights into its ``FlowModel`` (eval mode)."""
        best = self._views(self.best)
        for k, model in enumerate(self.models):
            for n, p in model.named_parameters():
                p.copy_(best[n][k])
            model.eval()


def _check_shared_buffers(models: Sequence[FlowModel]) -> None:
    if not models:
        raise RareflowError("train_ensemble needs at least one model")
    first = models[0].state_dict()
    keys = sorted(n for n, _ in models[0].named_parameters())
    for k, m in enumerate(models[1:], start=1):
        if sorted(n for n, _ in m.named_parameters()) != keys:
            raise RareflowError(
                f"ensemble member {k} has another architecture than member 0; build all from one FlowConfig"
            )
        for name, buf in m.named_buffers():
            if buf.shape != first[name].shape or not torch.equal(buf.cpu(), first[name].cpu()):
                raise RareflowError(
                    f"ensemble member {k} differs from member 0 in buffer {name!r}; "
                    "give every member the same preprocessing (load member 0's pre state)"
                )


def _new_history() -> dict[str, Any]:
    return {
        "train_loss": [], "val_loss": [], "lr": [], "best_epoch": 0, "best_loss": math.inf,
        "epochs_run": 0, "stopped_early": False, "diverged": False, "seconds": 0.0, "samples_per_second": 0.0,
        "skipped_batches": 0,
    }  # fmt: skip


def _fixed_subset(data: Batch | None, rows: int | None, seed: int | None) -> Batch | None:
    """``rows`` validation rows drawn once (seeded); all rows when ``rows`` is None or larger."""
    if data is None or len(data) == 0:
        return None
    if rows is None or rows >= len(data):
        return data
    idx = np.sort(np.random.default_rng(seed).choice(len(data), size=int(rows), replace=False))
    return data.index(torch.as_tensor(idx, device=data.x.device))


def train_ensemble(
    models: Sequence[FlowModel],
    loss_fn: LossFn,
    train_data: Batch,
    valid_data: Batch | None = None,
    *,
    val_loss_fn: LossFn | None = None,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    epochs: int = 100,
    batch_size: int = 512,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    clip_grad: float | None = 5.0,
    patience: int | None = 10,
    min_delta: float = 0.0,
    seeds: Sequence[int] | None = None,
    lr_reference_batch: int | None = None,
    valid_rows: int | None = None,
    n_threads: int | None = None,
    device: str | torch.device = "cpu",
    eval_batch_size: int = 8192,
    progress: bool = True,
    description: str = "ensemble",
    callback: Callable[[int, dict[str, Tensor], Tensor], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``models`` (one architecture, one preprocessing) as one stacked network; one history each.

    ``loss_fn(model, batch)`` is any scalar loss of :func:`rareflow.training.train`, called
    per member on ``wrap(model)`` (e.g. ``lambda m: ClassFlows([m], conditional=True)`` for
    :func:`~rareflow.flows.selfsup.class_nll_loss`; or use :func:`class_context_nll_loss` on
    the flow itself, one pass instead of two). A loss with a ``stacked`` attribute,
    ``stacked(model, params, batch) -> (M,)`` on rows ``(M, B, ...)``, runs in that form when no
    ``wrap`` is given and every member is ``stackable`` (fused RealNVP); any other runs under
    ``torch.vmap``: no Python branches on tensor values (``val_loss_fn`` runs per member without
    vmap, so trimming is fine there).
    ``seeds[k]`` (default ``k``) seeds member ``k``'s data order; the global RNG (dequantisation
    noise) is seeded with ``seeds[0]``. Other arguments as in ``train``; ``schedule`` is
    ``cosine`` or ``none`` (a plateau schedule would need one lr per member). The history keys
    are ``train``'s. A member that diverges keeps its best weights and is frozen; after all
    members finished, :class:`TrainingDiverged` is raised with ``history={"members": [...]}``.
    ``callback(epoch, stacked_params, active)`` runs after every epoch (for tests and logging).
    """
    m = len(models)
    seeds = list(range(m)) if seeds is None else [int(s) for s in seeds]
    _check_args(m, seeds, schedule, epochs, batch_size, train_data, lr_reference_batch)
    if lr_reference_batch:
        lr = lr * math.sqrt(min(batch_size, len(train_data)) / lr_reference_batch)
    dev = resolve_device(device)
    models = [model.to(dev) for model in models]
    train_data = train_data.to(dev)
    valid = _fixed_subset(valid_data.to(dev) if valid_data is not None else None, valid_rows, seeds[0])
    stack = _Stack(models, wrap, loss_fn)
    calls = (_Call(stack.base, stack.view, loss_fn), _Call(stack.base, stack.view, val_loss_fn or loss_fn, evaluate=True))
    settings = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, schedule=schedule,
                    clip_grad=clip_grad, patience=patience, min_delta=min_delta, seeds=seeds,
                    eval_batch_size=eval_batch_size, progress=progress, description=description, callback=callback)  # fmt: skip
    with torch_threads(n_threads), seeded(seeds[0], dev):
        histories = _run(stack, calls, train_data, valid, **settings)
    stack.load_best()
    _raise_if_diverged(histories)
    return histories


def _raise_if_diverged(histories: list[dict[str, Any]]) -> None:
    """:class:`TrainingDiverged` naming the first diverged member (all best weights are loaded)."""
    diverged = [k for k, h in enumerate(histories) if h["diverged"]]
    if diverged:
        h = histories[diverged[0]]
        raise TrainingDiverged(
            f"ensemble member {diverged[0]} diverged at epoch {h['epochs_run'] + 1} "
            f"({len(diverged)} of {len(histories)} members); their best weights were kept "
            "(lower lr, set clip_grad, or check the inputs for extreme values)",
            {"members": histories},
        )


def _check_args(
    m: int, seeds: list[int], schedule: str, epochs: int, batch_size: int, data: Batch, ref: int | None
) -> None:
    if len(seeds) != m:
        raise RareflowError(f"give one seed per ensemble member: {m} members, {len(seeds)} seeds")
    if schedule not in ("cosine", "none"):
        raise RareflowError(f"ensemble training supports schedule 'cosine' or 'none', got {schedule!r}")
    if epochs < 1 or batch_size < 1:
        raise RareflowError("epochs and batch_size must be >= 1")
    if len(data) == 0:
        raise RareflowError("no training rows")
    if ref is not None and ref < 1:
        raise RareflowError(f"lr_reference_batch must be >= 1 or None, got {ref}")


def _run(
    stack: _Stack,
    calls: tuple[_Call, _Call],
    data: Batch,
    valid: Batch | None,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    schedule: str,
    clip_grad: float | None,
    patience: int | None,
    min_delta: float,
    seeds: list[int],
    eval_batch_size: int,
    progress: bool,
    description: str,
    callback: Callable[[int, dict[str, Tensor], Tensor], None] | None,
) -> list[dict[str, Any]]:
    fused = stack.flat.device.type in ("cpu", "cuda")  # one tensor: AdamW's fused kernel where torch has one
    opt = torch.optim.AdamW([stack.flat], lr=lr, weight_decay=weight_decay, **({"fused": True} if fused else {"foreach": True}))
    n, m = len(data), len(stack.models)
    batch_size = min(batch_size, n)
    steps = max(n // batch_size, 1)  # drop the ragged last batch, as train()
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps) if schedule == "cosine" else None
    gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    histories = [_new_history() for _ in range(m)]
    guard = StackedGuard(m, max_skips(epochs * steps)).to(data.x.device)
    track = _Tracker(histories, patience, min_delta, guard)
    t0, seen = time.perf_counter(), [0] * m
    with make_progress() as bar:
        task = bar.add_task(description, total=epochs, info="", visible=progress)
        for epoch in range(1, epochs + 1):
            active = stack.active.nonzero().squeeze(-1).tolist()
            perms = torch.stack([torch.randperm(n, generator=gens[k]) for k in active]).to(data.x.device)
            totals, weights, finite = _epoch(stack, calls[0], data.index(perms), steps, batch_size, opt, cosine, clip_grad, guard)
            for i, k in enumerate(active):
                seen[k] += steps * batch_size
                val = _validate(stack, calls[1], k, valid, eval_batch_size) if valid is not None else None
                track.update(stack, k, epoch, float(totals[i] / weights[i]), val, bool(finite[i]), opt.param_groups[0]["lr"])
            if callback is not None:
                callback(epoch, stack.params, stack.active.clone())
            bar.update(task, advance=1, info=f"{int(stack.active.sum())}/{m} members training")
            if not bool(stack.active.any()):
                break
    seconds = time.perf_counter() - t0
    for k, h in enumerate(histories):
        h.update(seconds=seconds, samples_per_second=seen[k] / seconds if seconds > 0 else 0.0)
    return histories


def _epoch(
    stack: _Stack,
    call: _Call,
    rows: Batch,
    steps: int,
    batch_size: int,
    opt: torch.optim.Optimizer,
    cosine: torch.optim.lr_scheduler.LRScheduler | None,
    clip_grad: float | None,
    guard: StackedGuard,
) -> tuple[Tensor, Tensor, Tensor]:
    """One epoch of the active members on their own permuted ``rows`` (fields ``(A, n, ...)``).

    Returns per active member the weighted loss sum and weight sum of its good batches, and whether
    it stayed within the bad-batch guard's limits (:class:`~rareflow.training.guards.StackedGuard`:
    a NaN/inf/exploded batch of a member is skipped for that member only).
    """
    active = stack.active.nonzero().squeeze(-1).to(rows.x.device)
    subset = None if len(active) == len(stack.active) else active
    fields = [getattr(rows, f) for f in FIELDS]
    a = len(active)
    totals, weights = rows.x.new_zeros(a), rows.x.new_zeros(a)
    present = torch.zeros(len(stack.active), dtype=torch.bool, device=rows.x.device)
    present[active] = True
    stack.base.train()
    for step in range(steps):
        sl = slice(step * batch_size, (step + 1) * batch_size)
        batch = [None if f is None else f[:, sl] for f in fields]
        losses = stack.losses(call, subset, batch)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        full = torch.zeros_like(present, dtype=losses.dtype).index_put((active,), losses.detach())
        norms = stack.grad_norms()
        skip = guard.bad(full, norms, present)
        stack.clip(norms, clip_grad, skip)
        before = stack.flat.detach().clone() if bool(skip.any()) else None
        opt.step()
        if cosine is not None:
            cosine.step()
        if before is not None:
            stack.keep(skip, before)
        stack.restore_frozen()
        w = batch[3].sum(-1) if batch[3] is not None else rows.x.new_full((a,), float(batch_size))
        good = ~skip[active]
        totals += torch.where(good, losses.detach() * w, 0.0)
        weights += torch.where(good, w, 0.0)
    return totals, weights, ~guard.over_limit()[active]


def _validate(stack: _Stack, call: _Call, k: int, valid: Batch, batch_size: int) -> float:
    """Member ``k``'s validation loss, exactly ``evaluate_loss`` on its weights."""
    with torch.no_grad():
        return float(functional_call(call, stack.member(k), (valid, batch_size)))


class _Tracker:
    """Per-member early stopping: best loss, epochs without improvement, divergence."""

    def __init__(self, histories: list[dict[str, Any]], patience: int | None, min_delta: float, guard: StackedGuard) -> None:
        self.histories = histories
        self.guard = guard
        self.patience = patience
        self.min_delta = min_delta
        self.bad = [0] * len(histories)

    def update(
        self, stack: _Stack, k: int, epoch: int, train_loss: float, val_loss: float | None, finite: bool, lr: float
    ) -> None:
        """Record member ``k``'s epoch; snapshot on improvement; freeze on patience, on too many bad
        batches, or on a NaN/inf/exploded epoch loss (the guard's rules)."""
        h = self.histories[k]
        h["skipped_batches"] = int(self.guard.skipped[k])
        metric = val_loss if val_loss is not None else train_loss
        exploded = math.isfinite(metric) and bool(self.guard.exploded(torch.full_like(self.guard.reference, metric))[k])
        if not finite or not math.isfinite(train_loss) or not math.isfinite(metric) or exploded:
            h["diverged"] = True  # epochs_run stays at the last finished epoch, as in train()
            stack.freeze(k)
            return
        h["train_loss"].append(train_loss)
        h["val_loss"].append(val_loss)
        h["lr"].append(lr)
        h["epochs_run"] = epoch
        if metric < h["best_loss"] - self.min_delta:
            h.update(best_epoch=epoch, best_loss=metric)
            self.bad[k] = 0
            stack.snapshot(k)
        else:
            self.bad[k] += 1
        if self.patience is not None and self.patience > 0 and self.bad[k] >= self.patience:
            h["stopped_early"] = True
            stack.freeze(k)
