"""The one training loop: early stopping with best weights, NaN/inf guard, seeds, weights, threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rareflow.errors import RareflowError
from rareflow.flows import FlowConfig, FlowModel, Preprocessor, nll_loss
from rareflow.training import Batch, TrainingDiverged, train
from rareflow.training import evaluate_loss, split_indices


def _setup(seed: int = 0, n: int = 1200) -> tuple[FlowModel, Batch, Batch]:
    r = np.random.default_rng(seed)
    X = np.column_stack([r.normal(0, 1, n), r.gamma(2.0, 1.0, n), r.normal(0, 1, n)])
    pre = Preprocessor.fit(X)
    model = FlowModel(FlowConfig("realnvp", features=3, transforms=3, hidden=(16, 16)), pre, seed=0)
    x = torch.as_tensor(X, dtype=torch.float32)
    return model, Batch(x[:1000]), Batch(x[1000:])


def test_history_and_best_weights_restored() -> None:
    model, tr, va = _setup()
    h = train(model, nll_loss, tr, va, epochs=8, batch_size=100, lr=3e-3, patience=3, seed=0, progress=False)
    assert h["epochs_run"] >= 1 and len(h["train_loss"]) == len(h["val_loss"]) == h["epochs_run"]
    assert h["best_loss"] == pytest.approx(min(h["val_loss"]))
    assert evaluate_loss(model, nll_loss, va, 4096) == pytest.approx(h["best_loss"], rel=1e-6)
    assert h["lr"][-1] < 3e-3  # cosine schedule decays
    assert not model.training and not h["diverged"]


def test_early_stopping_stops() -> None:
    model, tr, va = _setup()
    # a huge lr makes the validation loss stop improving quickly
    h = train(model, nll_loss, tr, va, epochs=200, batch_size=100, lr=0.05, patience=2, schedule="none", seed=0, progress=False)
    assert h["stopped_early"] and h["epochs_run"] < 200
    assert h["epochs_run"] - h["best_epoch"] == 2


def test_nan_loss_raises_keeps_best_weights_and_model_still_scores() -> None:
    model, tr, va = _setup()
    calls = {"n": 0}
    steps_per_epoch = 1000 // 100

    def poisoned(m: torch.nn.Module, batch: Batch) -> torch.Tensor:
        loss = nll_loss(m, batch)
        if m.training:
            calls["n"] += 1
            if calls["n"] > 3 * steps_per_epoch + 2:  # inside epoch 4
                return loss * float("nan")
        return loss

    with pytest.raises(RareflowError, match=r"training diverged at epoch 4: loss is nan; best weights from epoch \d kept") as err:
        train(model, poisoned, tr, va, epochs=10, batch_size=100, lr=3e-3, patience=0, seed=0, progress=False)
    assert isinstance(err.value, TrainingDiverged)
    h = err.value.history
    assert h["diverged"] and h["best_epoch"] in (1, 2, 3) and h["epochs_run"] == 3
    # the restored weights are the best epoch's: its validation loss is reproduced
    assert evaluate_loss(model, nll_loss, va, 4096) == pytest.approx(h["best_loss"], rel=1e-6)
    out = model.evaluate(va.x.numpy())
    assert np.isfinite(out["log_prob"]).all()


def test_nan_in_first_epoch_keeps_initial_weights() -> None:
    model, tr, va = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def always_nan(m: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return nll_loss(m, batch) * float("inf")

    with pytest.raises(TrainingDiverged, match="epoch 1: loss is inf; initial weights kept"):
        train(model, always_nan, tr, va, epochs=3, batch_size=100, seed=0, progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_same_seed_same_weights_and_threads_restored() -> None:
    threads = torch.get_num_threads()
    results = []
    for _ in range(2):
        model, tr, va = _setup()
        h = train(model, nll_loss, tr, va, epochs=3, batch_size=100, seed=7, n_threads=1, progress=False)
        results.append((h["val_loss"], model.evaluate(va.x.numpy())["log_prob"]))
    assert results[0][0] == results[1][0]
    assert np.array_equal(results[0][1], results[1][1])
    assert torch.get_num_threads() == threads
    model, tr, va = _setup()
    h = train(model, nll_loss, tr, va, epochs=3, batch_size=100, seed=8, progress=False)
    assert h["val_loss"] != results[0][0]


def test_global_rng_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model, tr, va = _setup()
    train(model, nll_loss, tr, va, epochs=1, batch_size=100, seed=0, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_sample_weights_change_the_fit() -> None:
    model_a, tr, va = _setup()
    model_b, _, _ = _setup()
    w = torch.where(tr.x[:, 0] > 0, 10.0, 0.1)
    train(model_a, nll_loss, tr, epochs=4, batch_size=100, lr=3e-3, seed=0, progress=False)
    train(model_b, nll_loss, Batch(tr.x, weight=w), epochs=4, batch_size=100, lr=3e-3, seed=0, progress=False)
    with torch.no_grad():
        s = model_b.sample(4000, generator=torch.Generator().manual_seed(0))
        s0 = model_a.sample(4000, generator=torch.Generator().manual_seed(0))
    assert float(s[:, 0].mean()) > float(s0[:, 0].mean()) + 0.3


def test_bad_arguments() -> None:
    model, tr, va = _setup()
    with pytest.raises(RareflowError, match="schedule"):
        train(model, nll_loss, tr, va, schedule="step", progress=False)
    with pytest.raises(RareflowError, match="validation_fraction"):
        split_indices(10, 1.5, 0)
    tr_idx, va_idx = split_indices(100, 0.2, 0)
    assert len(va_idx) == 20 and len(np.intersect1d(tr_idx, va_idx)) == 0
    assert len(split_indices(3, 0.1, 0)[1]) == 0


def test_plateau_schedule_runs() -> None:
    model, tr, va = _setup()
    h = train(model, nll_loss, tr, va, epochs=3, batch_size=100, schedule="plateau", seed=0, progress=False)
    assert h["epochs_run"] == 3
