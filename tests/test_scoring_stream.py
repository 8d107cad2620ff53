"""Streaming `score_table`: Parquet row groups in chunks, rows kept in order, errors name the file row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rareflow.errors import RareflowError
from rareflow.scoring import read_scores, score_table
from tests.conftest import toy_table


@pytest.fixture(scope="module")
def model(tmp_path_factory):  # type: ignore[no-untyped-def]
    from rareflow.detectors import get_detector
    from rareflow.persistence import save_model

    path = tmp_path_factory.mktemp("m") / "maha.rfm"
    save_model(get_detector("mahalanobis").fit(toy_table(400, 100, seed=1)[["a", "b", "c"]]), path)
    return path


def _write(df: pd.DataFrame, path, row_group: int) -> None:  # type: ignore[no-untyped-def]
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=row_group)


def test_row_groups_streamed_in_order(tmp_path, model) -> None:  # type: ignore[no-untyped-def]
    from rareflow.persistence import load_model

    df = toy_table(900, 350, seed=2)
    data, out = tmp_path / "d.parquet", tmp_path / "s.parquet"
    _write(df, data, row_group=400)  # 4 row groups; chunks of 150 never span two of them
    assert score_table(model, data, out, batch_rows=150) == len(df)
    scored, meta = read_scores(out)
    pd.testing.assert_frame_equal(scored[list(df.columns)], df, check_exact=True)
    whole = load_model(model).decision_function(df[["a", "b", "c"]])
    np.testing.assert_allclose(scored["score"], whole, rtol=1e-12, atol=1e-12)
    assert meta["method"] == "mahalanobis" and meta["features"] == ["a", "b", "c"]
    assert set(scored["prediction"]) <= {0, 1} and (scored["threshold"] == meta["threshold"]).all()
    # the chunks are what the writer saw: one output row group per chunk
    sizes = [pq.ParquetFile(out).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(out).num_row_groups)]
    assert sizes == [150, 150, 100] * 3 + [50]  # 1250 rows = 3 x 400 + 50


def test_nonfinite_row_is_numbered_from_the_file_start(tmp_path, model) -> None:  # type: ignore[no-untyped-def]
    df = toy_table(600, 200, seed=4)
    df.loc[555, "c"] = np.inf
    data, out = tmp_path / "d.parquet", tmp_path / "s.parquet"
    _write(df, data, row_group=250)
    with pytest.raises(RareflowError, match=r"d\.parquet: 1 NaN/inf value\(s\) in 1 row\(s\), column\(s\) \['c'\], first at row 555"):
        score_table(model, data, out, batch_rows=100)
    assert not out.exists() and not list(tmp_path.glob(".s.parquet*"))
    with pytest.raises(RareflowError, match="batch_rows must be >= 1"):
        score_table(model, data, out, batch_rows=0)
