"""One meaning of --seed (train, compare and the API give the same model), seeds and detector
parameters validated with one line, and thresholds owned by detectors (issue 14 items 4-5, issue 16 §3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rareflow.api import train_model
from rareflow.cli import main
from rareflow.config import parse_config
from rareflow.evaluation.runner import load_experiment_data, make_split, run_experiment
from rareflow.persistence import load_model
from tests.conftest import toy_table


def _experiment(path: Path, seeds: list[int], methods: list, threshold: dict | None = None) -> dict:
    raw = {
        "data": {"source": "table", "path": str(path)},
        "scenario": {"kind": "rare", "seeds": seeds, "test_rare_fraction": 0.01},
        "methods": methods,
    }
    if threshold is not None:
        raw["threshold"] = threshold
    return raw


@pytest.mark.parametrize("method", ["iforest", "power-mahalanobis"])
def test_train_and_compare_with_the_same_seed_give_the_same_model(tmp_path: Path, method: str) -> None:
    """compare's training rows, given to `train --seed 3`, give exactly compare's test scores."""
    data = tmp_path / "toy.parquet"
    toy_table().to_parquet(data, index=False)
    cfg = parse_config(_experiment(data, [3], [{"name": method, "params": {}}], {"calibration_fraction": 0.0}))
    result = run_experiment(cfg)
    ds = load_experiment_data(cfg, 3)
    split = make_split(cfg, ds.y, 3)
    fit_rows = tmp_path / "fit.parquet"
    ds.frame.iloc[split.fit_idx].to_parquet(fit_rows, index=False)
    model = tmp_path / "m.rfm"
    args = ["train", method, "--data", str(fit_rows), "--out", str(model), "-q", "--seed", "3",
            "--features", ",".join(ds.features)]  # fmt: skip
    assert main(args) == 0
    det = load_model(model)
    compare_scores = result.scores.loc[result.scores.method == method, "score"].to_numpy()
    np.testing.assert_array_equal(det.decision_function(ds.X.iloc[split.test_idx]), compare_scores)
    api = train_model(method, fit_rows, features=ds.features, seed=3)
    np.testing.assert_array_equal(api.decision_function(ds.X.iloc[split.test_idx]), compare_scores)
    other = train_model(method, fit_rows, features=ds.features, seed=4)
    same = np.array_equal(other.decision_function(ds.X.iloc[split.test_idx]), compare_scores)
    assert same == other.deterministic  # a different seed: a different model, unless deterministic


def test_power_mahalanobis_keeps_its_chi2_cut_in_compare_unless_the_experiment_names_a_rule(tmp_path: Path) -> None:
    data = tmp_path / "toy.parquet"
    toy_table().to_parquet(data, index=False)
    own = run_experiment(parse_config(_experiment(data, [0], ["power-mahalanobis", "mahalanobis"])))
    rows = {r["method"]: r for r in own.per_seed}
    assert rows["power-mahalanobis"]["threshold_rule"] == "chi2(alpha=0.01)"
    assert rows["power-mahalanobis"]["threshold_source"] == "detector default"
    assert rows["mahalanobis"]["threshold_rule"] == "quantile(bulk_acceptance=0.01)"
    assert rows["mahalanobis"]["kind"] == "one-class"
    forced = run_experiment(parse_config(_experiment(data, [0], ["power-mahalanobis"], {"bulk_acceptance": 0.05})))
    row = forced.per_seed[0]
    assert row["threshold_rule"] == "quantile(bulk_acceptance=0.05)" and row["threshold_source"] == "experiment"
    assert row["threshold"] != rows["power-mahalanobis"]["threshold"]


def test_report_names_kind_and_cut_rule_from_the_rows(tmp_path: Path) -> None:
    data = tmp_path / "toy.parquet"
    toy_table().to_parquet(data, index=False)
    cfg = tmp_path / "e.yaml"
    cfg.write_text(yaml.safe_dump(_experiment(data, [0, 1], ["gbdt", "power-mahalanobis"])))
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q", "--seed", "2,5"]) == 0
    doc = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert doc["seeds"] == [2, 5]
    assert doc["methods"]["gbdt"]["kind"] == "supervised"
    assert doc["methods"]["power-mahalanobis"]["threshold_rule"] == "chi2(alpha=0.01)"
    html = (tmp_path / "o" / "report.html").read_text()
    assert "chi2(alpha=0.01) (detector default)" in html and "<td class=l>supervised</td>" in html


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "gbdt", "--seed", "-1"], "--seed '-1'"),
        (["train", "gbdt", "--seed", "1e23"], "--seed '1e23'"),
        (["compare", "--seed", ","], "no seed given"),
        (["compare", "--seed", "1,1"], "given twice"),
        (["compare", "--seed", "-1"], "--seed '-1'"),
        (["compare", "--methods", "gbdt,gbdt"], "methods listed twice"),
        (["train", "gbdt", "-p", "max_iter=-5"], "max_iter=-5"),
        (["train", "iforest", "-p", "n_estimators=abc"], "n_estimators='abc'"),
        (["train", "mahalanobis", "-p", "ridge=abc"], "ridge='abc'"),
        (["train", "mahalanobis", "-p", "ridge=[1, 2]"], "ridge=[1, 2]"),
        (["train", "iforest", "--fit-on", "sideways"], "fit_on='sideways'"),
    ],
)  # fmt: skip
def test_bad_seeds_and_parameters_give_one_line(tmp_path: Path, capsys, argv: list[str], needle: str) -> None:
    data = tmp_path / "toy.parquet"
    toy_table().to_parquet(data, index=False)
    out = tmp_path / "out"
    if argv[0] == "train":
        argv = [*argv, "--data", str(data), "--out", str(out)]
    else:
        cfg = tmp_path / "e.yaml"
        cfg.write_text(yaml.safe_dump(_experiment(data, [0], ["gbdt"])))
        argv = [*argv, "--config", str(cfg), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err, err
    assert not out.exists()


@pytest.mark.parametrize("seeds,needle", [([-1], "seed -1"), ([], "at least 1"), ([1.0e23], "seed 1e+23"), ([4, 4], "twice")])
def test_yaml_seeds_are_validated(tmp_path: Path, seeds: list, needle: str) -> None:
    from rareflow.errors import RareflowError

    with pytest.raises(RareflowError, match="scenario.seeds") as info:
        parse_config(_experiment(tmp_path / "t.parquet", seeds, ["gbdt"]))
    assert needle in str(info.value)


def test_threshold_section_overrides_only_when_it_names_a_rule(tmp_path: Path) -> None:
    t = tmp_path / "t.parquet"
    assert not parse_config(_experiment(t, [0], ["gbdt"])).threshold.overrides()
    assert not parse_config(_experiment(t, [0], ["gbdt"], {"calibration_fraction": 0.1})).threshold.overrides()
    cfg = parse_config(_experiment(t, [0], ["gbdt"], {"rule": "chi2"}))
    assert cfg.threshold.overrides() and cfg.threshold.rule_dict() == {"rule": "chi2"}
    assert pd.api.types.is_number(cfg.threshold.alpha)  # the rule model's defaults still fill the value
