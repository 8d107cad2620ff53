"""``outliers_command`` / ``write_outliers`` (tables ``rareflow score`` accepts) and the IDX reader."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pandas as pd
import pytest

from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.io.idx import load_idx_pair, read_idx
from rareflow.api import outliers_command
from rareflow.outliers.io import parse_sigma, read_outlier_params, write_outliers
from rareflow.persistence import save_model
from rareflow.scoring import score_table
from tests.conftest import toy_table

FEATURES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def flow_model(tmp_path_factory):
    df = toy_table()
    det = get_detector("flow", transforms=2, hidden=[16, 16], epochs=8, batch_size=128, n_threads=1, progress=False)
    det.fit(df[FEATURES], (df["label"] == "gamma").astype(int))
    path = tmp_path_factory.mktemp("models") / "flow.rfm"
    save_model(det, path)
    return path, det


@pytest.mark.parametrize("method,sigma", [("extremal", 3.0), ("gumbel", None), ("extremal", "1.5:4"), ("tail", 2.0)])
def test_command_writes_a_table_score_accepts(flow_model, tmp_path, method, sigma) -> None:
    path, det = flow_model
    out = tmp_path / "outliers.parquet"
    summary = outliers_command(path, 200, method, sigma, 0, out)
    df = pd.read_parquet(out)
    assert summary["rows"] == len(df) == 200 and summary["features"] == FEATURES
    assert FEATURES == list(df.columns[:3])
    assert {"label", "gen_method", "gen_sigma", "gen_radius", "gen_chi_tail", "gen_seed"} <= set(df.columns)
    assert (df["label"] == "generated").all() and (df["gen_method"] == method).all()
    assert np.isfinite(df[FEATURES].to_numpy()).all()
    meta = read_outlier_params(out)
    assert meta["method"] == method and meta["features"] == FEATURES and meta["model_method"] == "flow"
    scored = tmp_path / "scores.parquet"
    assert score_table(path, out, scored) == 200
    s = pd.read_parquet(scored)
    assert {"score", "gen_radius", "label"} <= set(s.columns)
    # generated far outliers score as rarer than the flow's own training data
    assert np.median(s["score"]) > np.median(det.decision_scores_)
    if sigma == "1.5:4":
        assert df["gen_sigma"].between(1.5, 4).all() and df["gen_sigma"].std() > 0.3


def test_command_archetype_and_nullspace_with_and_without_data(flow_model, tmp_path) -> None:
    path, _ = flow_model
    table = tmp_path / "train.parquet"
    toy_table().to_parquet(table)
    a = outliers_command(path, 100, "archetype", 0.2, 1, tmp_path / "a.parquet", k=3)
    b = outliers_command(path, 100, "nullspace", None, 1, tmp_path / "b.parquet", data=table, k=3)
    assert a["deepaa_k"] == 3 and a["deepaa_fit_on"] == "latent N(0, I)" and b["deepaa_fit_on"] == "data"
    assert np.allclose(pd.read_parquet(tmp_path / "a.parquet")["gen_sigma"], 0.2)
    assert score_table(path, tmp_path / "b.parquet", tmp_path / "s.parquet") == 100


def test_command_is_seeded(flow_model, tmp_path) -> None:
    path, _ = flow_model
    outliers_command(path, 50, "gumbel", 2.0, 7, tmp_path / "1.parquet")
    outliers_command(path, 50, "gumbel", 2.0, 7, tmp_path / "2.parquet")
    outliers_command(path, 50, "gumbel", 2.0, 8, tmp_path / "3.parquet")
    one, two, three = (pd.read_parquet(tmp_path / f"{i}.parquet")[FEATURES] for i in (1, 2, 3))
    assert one.equals(two) and not one.equals(three)


def test_command_errors(flow_model, tmp_path) -> None:
    path, _ = flow_model
    out = tmp_path / "x.parquet"
    with pytest.raises(RareflowError, match="unknown outlier method"):
        outliers_command(path, 10, "uniform", None, 0, out)
    with pytest.raises(RareflowError):
        outliers_command(path, 0, "extremal", None, 0, out)
    with pytest.raises(RareflowError):
        outliers_command(path, 10, "extremal", "abc", 0, out)
    with pytest.raises(RareflowError):
        outliers_command(path, 10, "archetype", "0.1:0.5", 0, out)
    with pytest.raises(RareflowError, match="not found"):
        outliers_command(tmp_path / "missing.rfm", 10, "extremal", None, 0, out)
    df = toy_table()
    maha = get_detector("mahalanobis").fit(df[FEATURES])
    save_model(maha, tmp_path / "maha.rfm")
    with pytest.raises(RareflowError, match="no normalizing flow"):
        outliers_command(tmp_path / "maha.rfm", 10, "extremal", None, 0, out)
    assert not out.exists()  # nothing written on errors


def test_parse_sigma_and_write_outliers(tmp_path) -> None:
    assert parse_sigma(None) is None and parse_sigma(2) == 2.0 and parse_sigma("2.5") == 2.5
    assert parse_sigma("1:3") == (1.0, 3.0) and parse_sigma("1,3") == (1.0, 3.0) and parse_sigma((1, 2)) == (1.0, 2.0)
    with pytest.raises(RareflowError):
        parse_sigma("3:1")
    X = np.arange(12.0).reshape(4, 3)
    df = write_outliers(tmp_path / "o.parquet", X, FEATURES, {"method": "extremal", "seed": 3}, {"radius": np.ones(4)})
    back = pd.read_parquet(tmp_path / "o.parquet")
    assert back.equals(df) and (back["gen_seed"] == 3).all()
    with pytest.raises(RareflowError):
        write_outliers(tmp_path / "bad.parquet", X, ["a", "b"], {"method": "extremal"})
    assert not (tmp_path / "bad.parquet").exists()


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def test_idx_reader(tmp_path) -> None:
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))  # plain, not gzip
    x, y = load_idx_pair(tmp_path)
    assert np.array_equal(x, imgs) and np.array_equal(y, labels)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(_idx_bytes(imgs))[:-20])  # truncated archive
    with pytest.raises(RareflowError, match="damaged|decompress"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(imgs)[:-10])
    with pytest.raises(RareflowError, match="header says"):
        read_idx(short)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(RareflowError, match="magic"):
        read_idx(junk)
    with pytest.raises(RareflowError, match="not found"):
        read_idx(tmp_path / "none.gz")
    with pytest.raises(RareflowError):
        load_idx_pair(tmp_path / "empty_dir")
