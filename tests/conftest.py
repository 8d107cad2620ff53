"""Shared fixtures: a small synthetic labelled table and the optional real data in ../shared/data."""

from __future__ import annotations

import os

# Tests are not benchmarks: one thread per pool keeps them fast and steady on a shared 2-core
# machine (OpenMP/torch pools oversubscribe badly under load). Set before torch/sklearn start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
MAGIC = SHARED_DATA / "magic" / "magic04.data"


def require_shared(path: Path) -> Path:
    """Skip the calling test with a clear reason when ../shared/data (or the file) is absent."""
    if not path.exists():
        pytest.skip(f"{path} not found: real data lives in ../shared/data beside the repository")
    return path


@pytest.fixture
def magic_path() -> Path:
    return require_shared(MAGIC)


def toy_table(n_bulk: int = 1500, n_rare: int = 600, seed: int = 0) -> pd.DataFrame:
    """Bulk: broad Gaussian; rare: a narrow Gaussian off-centre (separable but overlapping)."""
    r = np.random.default_rng(seed)
    bulk = r.normal(0.0, 1.0, size=(n_bulk, 3))
    rare = r.normal([2.5, -2.0, 1.0], 0.4, size=(n_rare, 3))
    df = pd.DataFrame(np.vstack([bulk, rare]), columns=["a", "b", "c"])
    df["label"] = ["hadron"] * n_bulk + ["gamma"] * n_rare
    df["true_energy"] = r.uniform(0.1, 10, len(df))
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture
def toy() -> pd.DataFrame:
    return toy_table()
