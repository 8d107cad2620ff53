"""rareflow.load_table / load_dataset read a table exactly as `rareflow train` does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rareflow
from rareflow.cli import main
from rareflow.errors import RareflowError
from rareflow.persistence import load_model
from tests.conftest import toy_table


@pytest.fixture
def table(tmp_path: Path) -> Path:
    df = toy_table()
    df["weight"] = np.linspace(0.5, 1.5, len(df))
    df.loc[len(df)] = {"a": 0.0, "b": 0.0, "c": 0.0, "label": "muon", "weight": 1.0}
    p = tmp_path / "t.parquet"
    df.to_parquet(p, index=False)
    return p


def test_lazy_exports_do_not_import_pandas() -> None:
    code = "import sys, rareflow; print('pandas' in sys.modules, callable(rareflow.load_dataset), 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(Path(rareflow.__file__).parents[1])})
    assert out.stdout.split() == ["False", "True", "True"]
    with pytest.raises(AttributeError):
        rareflow.no_such_name  # noqa: B018


def test_load_dataset_selects_labels_features_weights(table: Path) -> None:
    raw = rareflow.load_table(table)
    X, y, w = rareflow.load_dataset(table, rare_label="gamma", bulk_label="hadron")
    keep = raw["label"].isin(["gamma", "hadron"]).to_numpy()
    assert list(X.columns) == ["a", "b", "c"]  # label and weight are not features
    np.testing.assert_array_equal(X.to_numpy(), raw.loc[keep, ["a", "b", "c"]].to_numpy())
    np.testing.assert_array_equal(y, (raw.loc[keep, "label"] == "gamma").to_numpy().astype(int))
    np.testing.assert_allclose(w, raw.loc[keep, "weight"].to_numpy())
    X2, y2, w2 = rareflow.load_dataset(raw, features="a,b")  # a DataFrame works too; bulk = all others
    assert list(X2.columns) == ["a", "b"] and len(y2) == len(raw) and w2 is not None


def test_cli_model_equals_api_model(table: Path, tmp_path: Path) -> None:
    """The CLI trains on what load_dataset returns: same data -> same fitted scores."""
    from rareflow.detectors import get_detector

    assert main(["train", "mahalanobis", "--data", str(table), "--out", str(tmp_path / "m.rfm"), "--fit-on", "rare",
                 "--bulk-label", "hadron", "-q"]) == 0  # fmt: skip
    X, y, w = rareflow.load_dataset(table, bulk_label=["hadron"])
    det = get_detector("mahalanobis", fit_on="rare").fit(X, y, sample_weight=w)
    np.testing.assert_allclose(load_model(tmp_path / "m.rfm").decision_function(X), det.decision_function(X))


def test_load_dataset_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(RareflowError, match="file not found"):
        rareflow.load_dataset(tmp_path / "nope.parquet")
    df = pd.DataFrame({"a": [1.0, np.nan], "label": ["gamma", "hadron"]})
    with pytest.raises(RareflowError, match="--drop-nonfinite"):
        rareflow.load_dataset(df)
    X, y, _ = rareflow.load_dataset(df, drop_nonfinite=True, need_labels=False)
    assert len(X) == 1 and list(y) == [1]
