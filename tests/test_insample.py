"""In-sample numbers are flagged: training fingerprint, `train --holdout`, evaluate's warning,
and the working point printed by `train` and `repr`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rareflow.cli import main
from rareflow.detectors import get_detector
from rareflow.fingerprint import HEAD_ROWS, holdout_mask, table_fingerprint
from rareflow.persistence import load_model, save_model
from rareflow.scoring import read_scores
from tests.conftest import toy_table


@pytest.fixture
def table(tmp_path: Path) -> Path:
    p = tmp_path / "t.parquet"
    toy_table().to_parquet(p, index=False, row_group_size=500)
    return p


def _train(tmp_path: Path, table: Path, *extra: str) -> Path:
    model = tmp_path / "m.rfm"
    assert main(["train", "gbdt", "--data", str(table), "--out", str(model), "--param", "max_iter=20", "-q", *extra]) == 0
    return model


def test_fingerprint_sees_row_order_and_count_not_the_file() -> None:
    df = toy_table()
    fp = table_fingerprint(df, len(df), ["a", "b"])
    assert fp == table_fingerprint(df.copy(), len(df), ["a", "b"])
    assert fp != table_fingerprint(df.sample(frac=1.0, random_state=0), len(df), ["a", "b"])
    assert fp != table_fingerprint(df.iloc[:-1], len(df) - 1, ["a", "b"])
    assert fp != table_fingerprint(df, len(df), ["a", "c"])
    assert len(df) > HEAD_ROWS


def test_holdout_mask_is_seeded_and_exact() -> None:
    m = holdout_mask(1001, 0.5, seed=3)
    assert m.sum() == 500 and (m == holdout_mask(1001, 0.5, seed=3)).all()
    assert (m != holdout_mask(1001, 0.5, seed=4)).any()
    assert not holdout_mask(10, 0.0, 0).any()


def test_scoring_the_training_table_is_marked_and_warned(tmp_path: Path, table: Path, caplog: pytest.LogCaptureFixture) -> None:
    model, scores, metrics = _train(tmp_path, table), tmp_path / "s.parquet", tmp_path / "m.json"
    assert main(["score", "--model", str(model), "--data", str(table), "--out", str(scores), "-q"]) == 0
    _, meta = read_scores(scores)
    assert meta["training_table"] == "same" and meta["in_sample"] is True
    with caplog.at_level(logging.WARNING, logger="rareflow"):
        assert main(["evaluate", "--scores", str(scores), "--out", str(metrics), "-q"]) == 0
    assert "in-sample, optimistic" in caplog.text
    assert json.loads(metrics.read_text())["data"]["in_sample"] is True
    other = tmp_path / "other.parquet"
    toy_table(seed=7).to_parquet(other, index=False)
    assert main(["score", "--model", str(model), "--data", str(other), "--out", str(scores), "-q"]) == 0
    assert read_scores(scores)[1]["in_sample"] is False and read_scores(scores)[1]["training_table"] == "other"


def test_holdout_trains_on_one_part_and_scores_the_other(tmp_path: Path, table: Path) -> None:
    model, scores = _train(tmp_path, table, "--holdout", "0.4", "--seed", "5"), tmp_path / "s.parquet"
    src = pd.read_parquet(table)
    held = holdout_mask(len(src), 0.4, seed=5)
    det = load_model(model)
    assert len(det.decision_scores_) == (~held).sum()  # trained on the other rows only
    assert main(["score", "--model", str(model), "--data", str(table), "--out", str(scores), "-q", "--batch-rows", "128"]) == 0
    out, meta = read_scores(scores)
    assert meta["holdout_only"] is True and meta["in_sample"] is False and meta["skipped_training_rows"] == (~held).sum()
    np.testing.assert_array_equal(out[["a", "b", "c"]].to_numpy(), src.loc[held, ["a", "b", "c"]].to_numpy())
    np.testing.assert_allclose(out["score"], det.decision_function(src.loc[held, ["a", "b", "c"]]))
    assert pq.ParquetFile(scores).metadata.num_rows == held.sum()


def test_working_point_in_train_output_repr_and_file(tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "maha.rfm"
    assert main(["train", "mahalanobis", "--data", str(table), "--out", str(model), "--fit-on", "rare"]) == 0
    err = capsys.readouterr().err
    assert "rule quantile(rare_efficiency=0.9)" in err and "bulk acc." in err and "fit_on=rare negates" in err
    df = toy_table()
    X, y = df[["a", "b", "c"]], (df["label"] == "gamma").to_numpy().astype(int)
    det = get_detector("mahalanobis", fit_on="rare").fit(X, y)
    s = det.decision_function(X)
    wp = det.working_point_
    assert wp["rare_efficiency"] == pytest.approx(np.mean(s[y == 1] > det.threshold_))
    assert wp["bulk_acceptance"] == pytest.approx(np.mean(s[y == 0] > det.threshold_))  # the other class, scored
    assert det.threshold_rule_ == "quantile(rare_efficiency=0.9)"
    assert f"{det.threshold_:.4g}" in repr(det) and "bulk acc." in repr(det) and len(repr(det)) < 300
    save_model(det, tmp_path / "d.rfm")
    loaded = load_model(tmp_path / "d.rfm")
    assert loaded.working_point_ == pytest.approx(wp) and repr(loaded) == repr(det)
    gb = get_detector("gbdt", max_iter=10).fit(X, y)
    assert gb.threshold_rule_ == "quantile(bulk_acceptance=0.01)"
    assert gb.working_point_["bulk_acceptance"] <= 0.01 + 1e-12
