"""``TrainConfig``: the training settings every torch detector shares, validated once.

A torch detector takes them as ONE constructor parameter, ``training`` (a dict or None), so that
``get_params`` / ``clone`` / JSON persistence see a plain mapping; :func:`train_config` overlays it
on the detector's own defaults and validates it. A bad value gives one line naming the field::

    training.epochs must be >= 1 (got 0)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rareflow.errors import RareflowError


class TrainConfig(BaseModel):
    """Settings of the one training loop (:func:`rareflow.training.train`) and of batched scoring."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    epochs: int = Field(100, ge=1, description="maximum number of passes over the training rows")
    batch_size: int = Field(256, ge=1, description="rows per optimiser step")
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="AdamW learning rate")
    weight_decay: float = Field(1e-5, ge=0, allow_inf_nan=False, description="AdamW decoupled weight decay")
    schedule: Literal["cosine", "plateau", "none"] = "cosine"
    clip_grad: float | None = Field(5.0, gt=0, allow_inf_nan=False, description="gradient-norm clip (None: off)")
    patience: int = Field(10, ge=0, description="epochs without validation improvement before stopping (0: never)")
    min_delta: float = Field(0.0, ge=0, allow_inf_nan=False)
    validation_fraction: float = Field(0.2, ge=0, lt=1, description="share of training rows held out for early stopping")
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto")
    n_threads: int | None = Field(None, ge=1, description="torch CPU threads while training/scoring (None: unchanged)")
    progress: bool = True
    on_divergence: Literal["raise", "keep"] = "raise"
    score_batch_size: int = Field(2048, ge=1, description="rows per batch when scoring")


FIELDS = tuple(TrainConfig.model_fields)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "training"
    value = repr(err.get("input"))
    value = value if len(value) <= 60 else value[:57] + "..."
    msg = str(err["msg"]).replace("Input should be", "must be").replace("Extra inputs are not permitted", "is not a training setting")
    return f"training.{loc} {msg} (got {value})"


def train_config(training: Any, defaults: dict[str, Any] | None = None) -> TrainConfig:
    """``training`` (dict, TrainConfig or None) over ``defaults``, validated; one-line RareflowError."""
    if isinstance(training, TrainConfig):
        return training
    if training is not None and not isinstance(training, dict):
        raise RareflowError(f"training must be a mapping of training settings such as {{epochs: 50}}, got {type(training).__name__}")
    try:
        return TrainConfig(**{**(defaults or {}), **(training or {})})
    except ValidationError as exc:
        raise RareflowError(f"{_first_error(exc)}; fields: {', '.join(FIELDS)}") from None
