"""Fixtures for the outlier-generation tests: a small flow trained on correlated 4-D data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rareflow.flows import FlowConfig, FlowModel, Preprocessor, nll_loss
from rareflow.training import Batch, train


def correlated(n: int = 1500, seed: int = 0) -> np.ndarray:
    """Correlated, shifted 4-D Gaussian rows with one positive skewed column (logged by the preprocessing)."""
    r = np.random.default_rng(seed)
    mix = np.array([[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.3, 0.0], [0.0, 0.0, 1.0, 0.2], [0.0, 0.0, 0.0, 2.0]])
    X = r.normal(size=(n, 4)) @ mix + 1.0
    X[:, 3] = np.exp(0.5 * X[:, 3] - 0.5)  # positive, skewed
    return X


@pytest.fixture(scope="session")
def small_flow() -> tuple[FlowModel, np.ndarray]:
    """``(flow, training data)``: RealNVP of 2 couplings, trained for a few epochs (~1-2 s)."""
    X = correlated()
    model = FlowModel(FlowConfig("realnvp", features=4, transforms=2, hidden=(16, 16)), Preprocessor.fit(X), seed=0)
    train(model, nll_loss, Batch(torch.as_tensor(X, dtype=torch.float32)), epochs=10, batch_size=128, progress=False,
          n_threads=1)  # fmt: skip
    return model.eval(), X


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small torch models on a shared 2-core machine: 1 thread is ~50x faster than 2 oversubscribed ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
