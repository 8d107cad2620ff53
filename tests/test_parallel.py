"""The Dask path gives bit-identical scores and metrics to the in-process path (2-worker LocalCluster)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rareflow.config import parse_config

pytest.importorskip("distributed", reason="dask.distributed not installed (pip install 'rareflow[dask]')")


def test_dask_sweep_is_bit_identical(tmp_path) -> None:
    from rareflow.evaluation.runner import run_experiment
    from tests.conftest import toy_table

    path = tmp_path / "toy.parquet"
    toy_table().to_parquet(path, index=False)
    cfg = parse_config({
        "data": {"source": "table", "path": str(path)},
        "scenario": {"kind": "rare", "seeds": [0, 1], "test_rare_fraction": 0.01},
        "methods": ["gbdt", "mahalanobis", {"name": "iforest", "params": {"n_estimators": 30}}],
    })
    import rareflow.parallel as par

    local = run_experiment(cfg)
    real = par.run_tasks
    par.run_tasks = lambda scheduler, *a: real(scheduler, *a, n_workers=2)
    try:
        dist = run_experiment(cfg, scheduler="local")
    finally:
        par.run_tasks = real
    pd.testing.assert_frame_equal(local.scores, dist.scores, check_exact=True)
    from rareflow.evaluation.summary import _clean  # NaN -> None, so NaN metrics compare equal

    timing = {"fit_seconds", "score_events_per_second"}
    for a, b in zip(local.per_seed, dist.per_seed):
        assert _clean({k: v for k, v in a.items() if k not in timing}) == _clean({k: v for k, v in b.items() if k not in timing})
    assert np.array_equal(local.scores["score"].to_numpy(), dist.scores["score"].to_numpy())
