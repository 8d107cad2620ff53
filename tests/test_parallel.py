"""The Dask path gives bit-identical results to the in-process path (2-worker LocalCluster).

Compare sweeps, `rareflow score` (Parquet row groups and CSV chunks on workers, the model loaded
from its path on each worker) and `rareflow extract` (one task per sim_telarray file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rareflow.config import parse_config
from rareflow.errors import RareflowError

pytest.importorskip("distributed", reason="dask.distributed not installed (pip install 'rareflow[dask]')")

from tests.conftest import SHARED_DATA, require_shared, toy_table  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One 2-worker LocalCluster for the module; tests pass its address as ``scheduler``."""
    import logging

    import distributed

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        silence_logs=logging.WARNING,
    ) as lc:  # fmt: skip
        yield lc.scheduler_address


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A mahalanobis and a tiny flow trained on the toy table's bulk, saved to files."""
    from rareflow.detectors import get_detector
    from rareflow.persistence import save_model

    tmp = tmp_path_factory.mktemp("models")
    df = toy_table(600, 200, seed=3)
    X = df[["a", "b", "c"]]
    out = {}
    for name, params in (
        ("mahalanobis", {}),
        ("flow", {"epochs": 2, "transforms": 2, "hidden": [16, 16], "progress": False, "patience": 0}),
    ):
        det = get_detector(name, **params).fit(X)
        save_model(det, tmp / f"{name}.rfm")
        out[name] = tmp / f"{name}.rfm"
    return out


def _table_with_row_groups(path: Path, n: int = 3000, row_group: int = 700) -> pd.DataFrame:
    df = toy_table(n // 2, n - n // 2, seed=5)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=row_group)
    assert pq.ParquetFile(path).num_row_groups == -(-n // row_group)
    return df


@pytest.mark.parametrize("method", ["mahalanobis", "flow"])
def test_dask_score_is_bit_identical(tmp_path, cluster, models, method) -> None:
    from rareflow.scoring import read_scores, score_table

    data = tmp_path / "data.parquet"
    df = _table_with_row_groups(data)
    one, dist = tmp_path / "one.parquet", tmp_path / "dist.parquet"
    assert score_table(models[method], data, one, batch_rows=300) == len(df)
    assert score_table(models[method], data, dist, batch_rows=300, scheduler=cluster) == len(df)
    a, meta_a = read_scores(one)
    b, meta_b = read_scores(dist)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert meta_a == meta_b and meta_a["method"] == method
    assert np.array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    pd.testing.assert_frame_equal(a[list(df.columns)], df, check_exact=True)  # input rows kept, in order


def test_dask_score_csv_and_errors(tmp_path, cluster, models) -> None:
    from rareflow.scoring import score_table

    df = toy_table(500, 100, seed=6)
    csv = tmp_path / "data.csv"
    df.to_csv(csv, index=False)
    score_table(models["flow"], csv, tmp_path / "one.parquet", batch_rows=128)
    score_table(models["flow"], csv, tmp_path / "dist.parquet", batch_rows=128, scheduler=cluster)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "dist.parquet"), check_exact=True
    )
    # a NaN in row 1234 (third row group): the worker's error names the file and the row; no output
    bad = tmp_path / "bad.parquet"
    table = _table_with_row_groups(bad)
    table.loc[1234, "b"] = np.nan
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), bad, row_group_size=700)
    out = tmp_path / "never.parquet"
    with pytest.raises(RareflowError, match=r"bad\.parquet.*first at row 1234"):
        score_table(models["mahalanobis"], bad, out, scheduler=cluster)
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    with pytest.raises(RareflowError, match=r"lacks feature column\(s\) \['c'\]"):
        pd.DataFrame({"a": [1.0], "b": [2.0]}).to_parquet(tmp_path / "short.parquet")
        score_table(models["mahalanobis"], tmp_path / "short.parquet", out, scheduler=cluster)


def test_score_cli_with_scheduler(tmp_path, cluster, models) -> None:
    from rareflow.cli import main

    data = tmp_path / "data.parquet"
    _table_with_row_groups(data, n=1000, row_group=400)
    one, dist = tmp_path / "one.parquet", tmp_path / "dist.parquet"
    base = ["score", "--model", str(models["flow"]), "--data", str(data), "-q", "--batch-rows", "256"]
    assert main([*base, "--out", str(one)]) == 0
    assert main([*base, "--out", str(dist), "--scheduler", cluster]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(one), pd.read_parquet(dist), check_exact=True)


SIMTEL = SHARED_DATA / "simtel"
SIMTEL_FILES = [
    "lst_muons_with_true_photons.simtel.zst", "gamma_with_obslevel_particles.simtel.zst", "n_hv_disabled.simtel.gz",
]  # fmt: skip


def test_dask_extract_matches_single_process(tmp_path, cluster) -> None:
    pytest.importorskip("ctapipe", reason="sim_telarray input needs the IACT extra (pip install 'rareflow[iact]')")
    from rareflow.cli import main
    from rareflow.iact.extract import extract_simtel

    files = [str(require_shared(SIMTEL / name)) for name in SIMTEL_FILES]
    one, dist = tmp_path / "one.parquet", tmp_path / "dist.parquet"
    # streamed one event at a time in this process vs one task per file on the cluster
    assert main(["extract", *files, "--out", str(one), "--chunk-events", "1", "-q"]) == 0
    assert main(["extract", *files, "--out", str(dist), "--scheduler", cluster, "-q"]) == 0
    a, b = pd.read_parquet(one), pd.read_parquet(dist)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    ref = pd.concat([extract_simtel(f) for f in files], ignore_index=True)  # whole-file API, input order
    pd.testing.assert_frame_equal(a, ref, check_exact=True)
    assert list(a["label"]) == ["muon"] * 3 + ["gamma", "proton"]


def test_dask_sweep_is_bit_identical(tmp_path) -> None:
    from rareflow.evaluation.runner import run_experiment

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
    par.run_tasks = lambda scheduler, *a, **kw: real(scheduler, *a, **{**kw, "n_workers": 2})
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
