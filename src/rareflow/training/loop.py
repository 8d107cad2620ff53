"""The one training loop of every torch detector (flows, autoencoders, classifiers, image nets).

:func:`train` minimises ``loss_fn(model, batch)`` — any scalar, so the negative log-likelihood
of a one-class flow, an autoencoder's reconstruction error and the self-supervised
:math:`L_B - L_R` of Chiu & Lai (2023) all plug in — with

* mini-batches drawn by a seeded ``torch.Generator`` (same seed => same numbers on one machine),
* AdamW (``lr``, ``weight_decay``; Loshchilov & Hutter 2019), a per-step cosine schedule or a
  per-epoch plateau schedule,
* gradient-norm clipping,
* early stopping on the validation loss (``patience`` epochs without improvement) and the best
  weights restored at the end,
* bad-batch guards (:mod:`~rareflow.training.guards`): a batch with a NaN/inf or exploded loss
  or a NaN/inf gradient is skipped a bounded number of times (``skipped_batches`` in the
  history); beyond that the best weights so far are restored and
  :class:`~rareflow.training.divergence.TrainingDiverged` carrying the history is raised,
* ``torch.set_num_threads`` for the duration (``n_threads``) and a rich progress bar.

:func:`fit_model` runs it with a :class:`~rareflow.training.config.TrainConfig` under the
divergence policy, which is how detectors call it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from rareflow.errors import RareflowError
from rareflow.progress import make_progress
from rareflow.training.batch import Batch
from rareflow.training.stream import StreamedRows
from rareflow.training.config import TrainConfig
from rareflow.training.device import resolve_device, torch_threads
from rareflow.training.divergence import TrainingDiverged, apply_policy, diverged_message
from rareflow.training.guards import BatchGuard, grad_norm, max_skips
from rareflow.training.seeds import seeded

SCHEDULES = ("cosine", "plateau", "none")
LossFn = Callable[[nn.Module, Batch], Tensor]
#: training / validation rows: in memory, or read from a memory-mapped file a batch at a time
Rows = Batch | StreamedRows


def evaluate_loss(model: nn.Module, loss_fn: LossFn, data: Batch, batch_size: int) -> float:
    """Loss on ``data`` in eval mode without gradients (chunk losses weighted by chunk weight).

    A criterion that is not a sum over rows (e.g. an AUC) sets ``loss_fn.whole_set = True`` and is
    evaluated on all of ``data`` at once.
    """
    if getattr(loss_fn, "whole_set", False):
        batch_size = max(len(data), 1)
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                chunk = data.index(slice(start, start + batch_size))
                w = chunk.total_weight()
                total += float(loss_fn(model, chunk)) * w
                weight += w
    finally:
        model.train(was_training)
    return total / weight if weight > 0 else float("nan")


def _clone_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Rows,
    valid_data: Rows | None = None,
    *,
    val_loss_fn: LossFn | None = None,
    epochs: int = 100,
    batch_size: int = 512,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    clip_grad: float | None = 5.0,
    patience: int | None = 10,
    min_delta: float = 0.0,
    seed: int | None = 0,
    n_threads: int | None = None,
    device: str | torch.device = "cpu",
    eval_batch_size: int = 8192,
    progress: bool = True,
    description: str = "training",
) -> dict[str, Any]:
    """Train ``model`` in place; return the history dict.

    The best epoch is the one with the lowest validation loss (training loss without validation
    data); its weights are loaded at the end. ``val_loss_fn`` (default ``loss_fn``) is the
    validation criterion. History keys: ``train_loss``, ``val_loss``, ``lr`` (per epoch),
    ``best_epoch`` (0 = initial weights), ``best_loss``, ``epochs_run``, ``stopped_early``,
    ``diverged``, ``skipped_batches``, ``seconds``, ``samples_per_second``.
    """
    if schedule not in SCHEDULES:
        raise RareflowError(f"unknown lr schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    if epochs < 1 or batch_size < 1:
        raise RareflowError("epochs and batch_size must be >= 1")
    if len(train_data) == 0:
        raise RareflowError("no training rows")
    dev = resolve_device(device)
    model.to(dev)
    train_data = train_data.to(dev)
    valid_data = valid_data.to(dev) if valid_data is not None and len(valid_data) > 0 else None
    opts = dict(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, schedule=schedule, clip_grad=clip_grad,
        patience=patience, min_delta=min_delta, seed=seed, eval_batch_size=eval_batch_size, progress=progress,
        description=description,
    )  # fmt: skip
    with torch_threads(n_threads), seeded(seed, dev):
        return _Run(model, loss_fn, val_loss_fn or loss_fn, train_data, valid_data, **opts).run()


def fit_model(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Rows,
    valid_data: Rows | None,
    config: TrainConfig,
    *,
    seed: int | None,
    val_loss_fn: LossFn | None = None,
    description: str = "training",
    epochs: int | None = None,
    eval_batch_size: int = 8192,
) -> dict[str, Any]:
    """:func:`train` with the settings of ``config`` (``epochs`` overrides) under its divergence policy.

    ``eval_batch_size``: rows per validation chunk (criteria with ``whole_set`` see every row at once,
    e.g. the selfsup AUC); image detectors pass their ``score_batch_size``, so a validation chunk of
    images costs what a scoring batch does."""
    return apply_policy(
        lambda: train(
            model, loss_fn, train_data, valid_data if valid_data is not None and len(valid_data) else None,
            val_loss_fn=val_loss_fn, epochs=int(config.epochs if epochs is None else epochs), batch_size=config.batch_size,
            lr=config.lr, weight_decay=config.weight_decay, schedule=config.schedule, clip_grad=config.clip_grad,
            patience=config.patience, min_delta=config.min_delta, seed=seed, n_threads=config.n_threads,
            device=config.device, progress=config.progress, eval_batch_size=int(eval_batch_size), description=description,
        ),
        config.on_divergence,
    )  # fmt: skip


class _Run:
    """One call of :func:`train`: optimiser, schedules, generator, best state and history."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, val_loss_fn: LossFn, train_data: Rows,
                 valid_data: Rows | None, **opts: Any) -> None:  # fmt: skip
        self.model, self.loss_fn, self.val_loss_fn = model, loss_fn, val_loss_fn
        self.train_data, self.valid_data, self.o = train_data, valid_data, opts
        self.params = [p for p in model.parameters() if p.requires_grad]
        # foreach: one multi-tensor kernel per Adam op instead of a Python loop over parameters
        self.opt = torch.optim.AdamW(self.params, lr=opts["lr"], weight_decay=opts["weight_decay"], foreach=True)
        n = len(train_data)
        self.batch_size = min(int(opts["batch_size"]), n)
        self.steps = max(n // self.batch_size, 1)  # drop the ragged last batch: stable losses
        sched, patience = opts["schedule"], opts["patience"]
        self.cosine = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=opts["epochs"] * self.steps) if sched == "cosine" else None
        )
        self.plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=0.5, patience=max(1, (patience or 10) // 3))
            if sched == "plateau" else None
        )  # fmt: skip
        self.gen = torch.Generator(device="cpu")
        if opts["seed"] is None:
            self.gen.seed()
        else:
            self.gen.manual_seed(int(opts["seed"]))
        self.history: dict[str, Any] = {
            "train_loss": [], "val_loss": [], "lr": [], "best_epoch": 0, "best_loss": math.inf,
            "epochs_run": 0, "stopped_early": False, "diverged": False, "seconds": 0.0, "samples_per_second": 0.0,
        }  # fmt: skip
        self.guard = BatchGuard(max_skips(opts["epochs"] * self.steps))
        self.history["skipped_batches"] = 0
        self.best_state, self.best, self.bad = _clone_state(model), math.inf, 0
        self.t0, self.seen = time.perf_counter(), 0

    def diverge(self, epoch: int, what: str, value: float) -> TrainingDiverged:
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        self.history.update(diverged=True, seconds=time.perf_counter() - self.t0)
        return TrainingDiverged(diverged_message(epoch, what, value, self.history["best_epoch"]), self.history)

    def epoch(self, epoch: int) -> float:
        """One pass over the shuffled training rows; the weighted mean training loss."""
        self.model.train()
        perm = self.train_data.order(self.gen)  # Batch: all rows shuffled; StreamedRows: block shuffle
        total, weight = 0.0, 0.0
        for step in range(self.steps):
            batch = self.train_data.index(perm[step * self.batch_size : (step + 1) * self.batch_size])
            loss = self.loss_fn(self.model, batch)
            value = float(loss.detach())
            if (what := self.guard.bad_loss(value)) is not None:
                self.skip(epoch, what, value)
                continue
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = grad_norm(self.params, self.o["clip_grad"])
            if (what := self.guard.bad_grad(norm)) is not None:
                self.skip(epoch, what, norm)
                continue
            self.opt.step()
            if self.cosine is not None:
                self.cosine.step()
            w = batch.total_weight()
            total, weight, self.seen = total + value * w, weight + w, self.seen + len(batch)
        return total / weight if weight > 0 else math.nan

    def skip(self, epoch: int, what: str, value: float) -> None:
        """A bad batch (no optimiser step); a divergence once the guard's limits are reached."""
        ok = self.guard.skip()
        self.history["skipped_batches"] = self.guard.skipped
        if not ok:
            raise self.diverge(epoch, what, value)

    def record(self, epoch: int, train_loss: float, val_loss: float | None) -> float:
        """Book-keeping after an epoch; returns the early-stopping metric."""
        metric = val_loss if val_loss is not None else train_loss
        if (what := self.guard.bad_metric(metric)) is not None:
            raise self.diverge(epoch, what, metric)
        if self.plateau is not None:
            self.plateau.step(metric)
        h = self.history
        h["train_loss"].append(train_loss)
        h["val_loss"].append(val_loss)
        h["lr"].append(self.opt.param_groups[0]["lr"])
        h["epochs_run"] = epoch
        if metric < self.best - self.o["min_delta"]:
            self.best, self.bad = metric, 0
            self.best_state = _clone_state(self.model)
            h.update(best_epoch=epoch, best_loss=metric)
        else:
            self.bad += 1
        return metric

    def run(self) -> dict[str, Any]:
        o, patience = self.o, self.o["patience"]
        with make_progress() as bar:
            task = bar.add_task(o["description"], total=o["epochs"], info="", visible=o["progress"])
            for epoch in range(1, o["epochs"] + 1):
                train_loss = self.epoch(epoch)
                val_loss = (
                    evaluate_loss(self.model, self.val_loss_fn, self.valid_data, o["eval_batch_size"])
                    if self.valid_data is not None else None
                )  # fmt: skip
                self.record(epoch, train_loss, val_loss)
                info = f"loss {train_loss:.4f}" + (f" val {val_loss:.4f}" if val_loss is not None else "")
                bar.update(task, advance=1, info=info)
                if patience is not None and patience > 0 and self.bad >= patience:
                    self.history["stopped_early"] = True
                    break
        self.model.load_state_dict(self.best_state)
        self.model.eval()
        seconds = time.perf_counter() - self.t0
        self.history.update(seconds=seconds, samples_per_second=self.seen / seconds if seconds > 0 else 0.0)
        return self.history


def small_history(history: dict[str, Any]) -> dict[str, Any]:
    """History as JSON (NaN/inf losses become None)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return {k: clean(v) for k, v in history.items()}
