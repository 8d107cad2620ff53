"""The torch training core shared by every torch detector (one concept a file).

* :mod:`~rareflow.training.batch` — :class:`Batch`, tensors from numpy, weighted means;
* :mod:`~rareflow.training.loop` — the one loop :func:`train` and :func:`fit_model` (with a
  :class:`TrainConfig` and the divergence policy);
* :mod:`~rareflow.training.divergence` — :class:`TrainingDiverged` and ``on_divergence``;
* :mod:`~rareflow.training.guards` — bad-batch guards (skip NaN/inf/exploded batches, bounded);
* :mod:`~rareflow.training.config` — :class:`TrainConfig` (validated training settings);
* :mod:`~rareflow.training.device` — :func:`resolve_device`, :func:`torch_threads`;
* :mod:`~rareflow.training.seeds` — the fixed seed keys and :func:`seeded` RNG blocks;
* :mod:`~rareflow.training.split` — seeded validation splits;
* :mod:`~rareflow.training.inference` — :func:`predict_batched`;
* :mod:`~rareflow.training.stream` — :class:`StreamedRows`: training rows read from a memory-mapped file a batch at a time;
* :mod:`~rareflow.training.weights` — ``state_dict`` <-> numpy arrays, architecture-checked import.
"""

from rareflow.training.batch import Batch, class_balanced_weights, make_batch, to_tensor, weighted_mean
from rareflow.training.config import TrainConfig, train_config
from rareflow.training.device import resolve_device, torch_threads
from rareflow.training.divergence import TrainingDiverged, apply_policy
from rareflow.training.inference import predict_batched
from rareflow.training.loop import evaluate_loss, fit_model, small_history, train
from rareflow.training.seeds import INIT, SCORE, SPLIT, SYNTHETIC, TRAIN, child_seed, score_seed, seeded
from rareflow.training.split import split_indices, stratified_split
from rareflow.training.stream import StreamedRows, is_disk_backed, training_rows
from rareflow.training.weights import load_module, module_arrays, prefixed

__all__ = [
    "INIT", "SCORE", "SPLIT", "SYNTHETIC", "TRAIN", "Batch", "TrainConfig", "TrainingDiverged", "apply_policy",
    "child_seed", "evaluate_loss", "fit_model", "load_module", "make_batch", "module_arrays", "predict_batched",
    "prefixed", "resolve_device", "score_seed", "seeded", "small_history", "split_indices", "stratified_split",
    "class_balanced_weights", "to_tensor", "torch_threads", "train", "train_config", "weighted_mean",
    "StreamedRows", "is_disk_backed", "training_rows",
]  # fmt: skip
