"""Thresholds come from training data only: scrambling the *test* labels must leave every
method's cut (and its test scores) unchanged. A cut placed with test labels would move."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rareflow.config import parse_config
from rareflow.io.tables import prepare_dataset
from rareflow.evaluation.runner import make_split, run_task
from rareflow.detectors.thresholds import parse_rule, quantile_threshold
from tests.conftest import toy_table

FAST = {
    "flow-classifier": {"transforms": 2, "hidden": [16, 16], "epochs": 4, "ensemble": 2, "progress": False},
    "selfsup-flow": {"transforms": 2, "hidden": [16, 16], "epochs": 4, "progress": False},
    "nn-classifier": {"hidden": [16], "epochs": 4, "progress": False},
    "gbdt": {"max_iter": 30},
    "mahalanobis": {},
}


def _cfg(method: str):
    return parse_config({
        "data": {"source": "table", "path": "unused.parquet"},
        "scenario": {"kind": "rare", "test_size": 0.4, "test_rare_fraction": 0.01, "seeds": [0]},
        "threshold": {"bulk_acceptance": 0.05, "calibration_fraction": 0.25},
        "methods": [{"name": method, "params": FAST[method]}],
    })  # fmt: skip


def _scrambled_test_labels(ds, test_idx: np.ndarray):
    frame = ds.frame.copy()
    rng = np.random.default_rng(99)
    frame.loc[test_idx, "label"] = rng.permutation(frame.loc[test_idx, "label"].to_numpy())
    frame.loc[test_idx[: len(test_idx) // 3], "label"] = "gamma"  # also change the class mix
    y = (frame["label"] == "gamma").to_numpy().astype(np.int64)
    return dataclasses.replace(ds, frame=frame, y=y)


@pytest.mark.parametrize("method", sorted(FAST))
def test_threshold_ignores_test_labels(method: str) -> None:
    ds = prepare_dataset(toy_table(), "toy", rare_label="gamma", bulk_labels=["hadron"], need_labels=True)
    cfg = _cfg(method)
    split = make_split(cfg, ds.y, 0)
    leaked = _scrambled_test_labels(ds, split.test_idx)
    assert not np.array_equal(ds.y[split.test_idx], leaked.y[split.test_idx])
    assert np.array_equal(ds.y[split.fit_idx], leaked.y[split.fit_idx])
    a = run_task(cfg, ds, split, cfg.methods[0])
    b = run_task(cfg, leaked, split, cfg.methods[0])
    assert a.threshold == b.threshold
    assert np.array_equal(a.scores, b.scores)
    # the check has power: a cut placed on the test bulk scores would have moved
    rule = parse_rule(cfg.threshold.rule_dict())
    test_bulk = [a.scores[d.y[split.test_idx] == 0] for d in (ds, leaked)]
    assert not np.array_equal(np.sort(test_bulk[0]), np.sort(test_bulk[1]))
    on_test = [quantile_threshold(a.scores, d.y[split.test_idx], rule, None) for d in (ds, leaked)]
    assert on_test[0] != on_test[1] or test_bulk[0].mean() != test_bulk[1].mean()
