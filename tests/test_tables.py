"""Tables: round trips and the one-line errors of SPEC (file, column, row, fix)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rareflow.io.magic import MAGIC_FEATURES, read_magic
from rareflow.io.tables import prepare_dataset, read_table, select_features, write_table
from rareflow.errors import RareflowError


def test_parquet_and_csv_round_trip(tmp_path, toy) -> None:
    write_table(toy, tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, toy, check_dtype=False)
    toy.to_csv(tmp_path / "t.csv", index=False)
    back = read_table(tmp_path / "t.csv")
    np.testing.assert_allclose(back[["a", "b", "c"]].to_numpy(), toy[["a", "b", "c"]].to_numpy())
    assert list(back["label"]) == list(toy["label"])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_magic_reader(magic_path) -> None:
    df = read_table(magic_path)
    assert list(df.columns) == MAGIC_FEATURES + ["label"]
    assert df.shape == (19020, 11)
    assert df["label"].value_counts().to_dict() == {"gamma": 12332, "hadron": 6688}


def test_magic_bad_class_names_row(tmp_path) -> None:
    p = tmp_path / "magic04.data"
    p.write_text("1,2,3,4,5,6,7,8,9,10,g\n1,2,3,4,5,6,7,8,9,10,x\n")
    with pytest.raises(RareflowError, match="row 2 has class 'x'"):
        read_magic(p)


@pytest.mark.parametrize(
    "name,content,pattern",
    [
        ("missing.parquet", None, "file not found"),
        ("t.xyz", "a\n1\n", "unknown table format"),
        ("empty.csv", "", "empty"),
        ("header.csv", "a,b,label\n", "no rows"),
        ("broken.parquet", "not parquet", "cannot read as Parquet"),
    ],
)
def test_read_errors(tmp_path, name, content, pattern) -> None:
    p = tmp_path / name
    if content is not None:
        p.write_text(content)
    with pytest.raises(RareflowError, match=pattern) as err:
        read_table(p)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_feature_selection(toy) -> None:
    assert select_features(toy, None) == ["a", "b", "c"]  # label and true_* excluded
    with pytest.raises(RareflowError, match=r"unknown feature column\(s\) \['zz'\]"):
        select_features(toy, ["a", "zz"])
    with pytest.raises(RareflowError, match="not numeric"):
        select_features(toy.assign(s="x"), ["a", "s"])
    with pytest.raises(RareflowError, match="cannot be a feature"):
        select_features(toy, ["a", "true_energy"])


def test_nonfinite_counted_located_and_droppable(toy) -> None:
    bad = toy.copy()
    bad.loc[5, "b"] = np.nan
    bad.loc[9, "a"] = np.inf
    with pytest.raises(RareflowError, match=r"2 NaN/inf value\(s\) in 2 row\(s\).*first at row 5.*--drop-nonfinite"):
        prepare_dataset(bad, "t.csv")
    ds = prepare_dataset(bad, "t.csv", drop_nonfinite=True)
    assert len(ds.frame) == len(toy) - 2 and len(ds.y) == len(ds.frame)


def test_label_errors(toy) -> None:
    with pytest.raises(RareflowError, match="no 'label' column"):
        prepare_dataset(toy.drop(columns="label"), "t.csv", need_labels=True)
    with pytest.raises(RareflowError, match="rare label 'electron' not present"):
        prepare_dataset(toy, "t.csv", rare_label="electron")
    with pytest.raises(RareflowError, match=r"bulk label\(s\) \['proton'\] not present"):
        prepare_dataset(toy, "t.csv", bulk_labels=["proton"])
    ds = prepare_dataset(toy, "t.csv")
    assert ds.bulk_labels == ["hadron"] and ds.y.sum() == 600


def test_other_labels_dropped_when_bulk_is_named(toy) -> None:
    df = toy.copy()
    df.loc[:99, "label"] = "muon"
    ds = prepare_dataset(df, "t.csv", bulk_labels=["hadron"])
    assert "muon" not in set(ds.frame["label"]) and len(ds.frame) == len(df) - 100
