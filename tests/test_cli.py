"""The CLI end to end on small data: train -> score -> evaluate, compare, and the error contract
(one line on stderr, non-zero exit, no output file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from rareflow.cli import main
from tests.conftest import toy_table

SPEC_METHOD_KEYS = {
    "auc", "auc_std", "ap", "rare_efficiency_at_bulk_acceptance", "q_max", "threshold",
    "rare_efficiency_at_threshold", "bulk_acceptance_at_threshold", "li_ma_significance",
    "fit_seconds", "score_events_per_second",
}


@pytest.fixture
def table(tmp_path: Path) -> Path:
    p = tmp_path / "toy.parquet"
    toy_table().to_parquet(p, index=False)
    return p


def test_train_score_evaluate(tmp_path: Path, table: Path) -> None:
    model, scores, metrics = tmp_path / "m.rfm", tmp_path / "s.parquet", tmp_path / "metrics.json"
    assert main(["train", "gbdt", "--data", str(table), "--out", str(model), "--features", "a,b", "--seed", "3", "-q"]) == 0
    assert main(["score", "--model", str(model), "--data", str(table), "--out", str(scores), "-q", "--batch-rows", "500"]) == 0
    df = pd.read_parquet(scores)
    src = pd.read_parquet(table)
    assert {"score", "prediction", "threshold", "label", "a", "b", "c"} <= set(df.columns)
    assert len(df) == len(src) and list(df["label"]) == list(src["label"])  # streaming kept order
    assert main(["evaluate", "--scores", str(scores), "--out", str(metrics), "-q"]) == 0
    doc = json.loads(metrics.read_text())
    m = doc["methods"]["gbdt"]
    assert SPEC_METHOD_KEYS - {"fit_seconds", "score_events_per_second"} <= set(m)
    assert m["auc"] == pytest.approx(roc_auc_score(src["label"] == "gamma", df["score"]))


def test_one_class_cli_fit_on_rare(tmp_path: Path, table: Path) -> None:
    model, scores = tmp_path / "m.rfm", tmp_path / "s.parquet"
    assert main(["train", "mahalanobis", "--data", str(table), "--out", str(model), "--fit-on", "rare", "-q"]) == 0
    assert main(["score", "--model", str(model), "--data", str(table), "--out", str(scores), "-q"]) == 0
    df = pd.read_parquet(scores)
    assert roc_auc_score(df["label"] == "gamma", df["score"]) > 0.9


def _config(tmp_path: Path, table: Path, **scenario) -> Path:
    cfg = {
        "name": "toy",
        "data": {"source": "table", "path": str(table), "rare_label": "gamma"},
        "scenario": {"kind": "rare", "test_rare_fraction": 0.01, "seeds": [0, 1], **scenario},
        "methods": ["gbdt", "mahalanobis", {"name": "iforest", "params": {"n_estimators": 50}}],
    }
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_compare_writes_every_output(tmp_path: Path, table: Path) -> None:
    out = tmp_path / "out"
    assert main(["compare", "--config", str(_config(tmp_path, table)), "--out", str(out), "-q"]) == 0
    for name in ("metrics.json", "scores.parquet", "report.html", "roc.png", "score_distributions.png", "q_factor.png"):
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["seeds"] == [0, 1] and set(doc["methods"]) == {"gbdt", "mahalanobis", "iforest"}
    for m in doc["methods"].values():
        assert SPEC_METHOD_KEYS <= set(m)
    assert set(doc["methods"]["gbdt"]["rare_efficiency_at_bulk_acceptance"]) == {"0.01", "0.02", "0.05", "0.1", "0.2"}
    # the scores behind the metrics: identical test rows for every method (same split per seed)
    s = pd.read_parquet(out / "scores.parquet")
    rows = {m: tuple(g.loc[g.seed == 0, "row"]) for m, g in s.groupby("method")}
    assert len(set(rows.values())) == 1
    w = s[(s.method == "gbdt") & (s.seed == 0)]
    assert w.loc[w.y == 1, "weight"].sum() / w["weight"].sum() == pytest.approx(0.01)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html and "http" not in html
    assert "Rare-event scenario" in html


def test_compare_is_deterministic(tmp_path: Path, table: Path) -> None:
    cfg = _config(tmp_path, table)
    for d in ("o1", "o2"):
        assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / d), "-q", "--seed", "5"]) == 0
    a = pd.read_parquet(tmp_path / "o1" / "scores.parquet")
    b = pd.read_parquet(tmp_path / "o2" / "scores.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_anomaly_compare_skips_supervised_and_says_why(tmp_path: Path, table: Path) -> None:
    out = tmp_path / "out"
    cfg = _config(tmp_path, table, kind="anomaly", fit_on="bulk")
    assert main(["compare", "--config", str(cfg), "--out", str(out), "-q"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert "gbdt" in doc["skipped"] and "gbdt" not in doc["methods"]
    assert "Anomaly scenario" in (out / "report.html").read_text()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rareflow", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["train", "gbdt", "--data", "{tmp}/missing.parquet"], "file not found"),
        (["train", "gbdt", "--data", "{table}", "--features", "a,zz"], "unknown feature column"),
        (["train", "gbdt", "--data", "{table}", "--rare-label", "electron"], "rare label 'electron' not present"),
        (["train", "gbdt", "--data", "{nolabel}"], "no 'label' column"),
        (["train", "mahalanobis", "--data", "{table}", "--fit-on", "both"], "fits on bulk or rare"),
        (["train", "gbdt", "--data", "{nan}"], "NaN/inf value"),
        (["train", "nosuch", "--data", "{table}"], "unknown method"),
        (["train", "gbdt", "--data", "{table}", "--param", "max_iter"], "expected key=value"),
    ],
)
def test_bad_input_one_line_error_no_output(
    tmp_path: Path, table: Path, args: list[str], pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nolabel = tmp_path / "nolabel.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(nolabel, index=False)
    nan = tmp_path / "nan.csv"
    df = toy_table()
    df.loc[3, "a"] = np.nan
    df.to_csv(nan, index=False)
    out = tmp_path / "model.rfm"
    filled = [a.format(tmp=tmp_path, table=table, nolabel=nolabel, nan=nan) for a in args]
    code = main([*filled, "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_bad_config_and_scores_errors(tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario:\n  kind: sideways\n")
    assert main(["compare", "--config", str(bad), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "scenario.kind" in capsys.readouterr().err and not (tmp_path / "o").exists()
    bad.write_text("methods: [gbdt]\nscenario: {kind: rare}\ndata: {source: table, path: x.csv}\nextra: 1\n")
    assert main(["compare", "--config", str(bad), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "extra" in capsys.readouterr().err
    assert main(["evaluate", "--scores", str(table), "--out", str(tmp_path / "m.json"), "-q"]) == 2
    assert "no 'score' column" in capsys.readouterr().err and not (tmp_path / "m.json").exists()


def test_help_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("simulate", "extract", "train", "score", "evaluate", "compare"):
        assert main([cmd, "--help"]) == 0
        assert "--seed" in capsys.readouterr().out, cmd
    assert main(["train"]) == 2


def test_console_entry_point_exit_codes(tmp_path: Path) -> None:
    """The real process: exit 0 for help, 2 and one stderr line for a RareflowError."""
    assert _run("--help").returncode == 0
    proc = _run("evaluate", "--scores", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "m.json"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "file not found" in proc.stderr
