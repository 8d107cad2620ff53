"""Configs and --param values: YAML alias bombs refused at parse time, user values never
formatted unbounded into a message (issue 16, §1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rareflow.cli import main
from rareflow.config import load_config
from rareflow.errors import RareflowError, short_repr
from rareflow.detectors.thresholds import parse_rule
from tests.conftest import toy_table

LAUGHS = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 10)]
)


def test_config_alias_bomb_refused_fast(tmp_path: Path) -> None:
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(LAUGHS + "\nthreshold: *a9\n")
    t0 = time.perf_counter()
    with pytest.raises(RareflowError, match="aliases") as info:
        load_config(cfg)
    assert time.perf_counter() - t0 < 1.0 and str(cfg) in str(info.value) and "line 2" in str(info.value)


def test_param_alias_bomb_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "t.parquet"
    toy_table(100, 50).to_parquet(data)
    flow = "{" + LAUGHS.replace("\n", ", ") + ", b: *a9}"
    t0 = time.perf_counter()
    code = main(["train", "gbdt", "--data", str(data), "--out", str(tmp_path / "m.rfm"), "-q", "--param", f"threshold={flow}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "aliases" in lines[0] and "--param 'threshold'" in lines[0]
    assert time.perf_counter() - t0 < 5.0 and not (tmp_path / "m.rfm").exists()


def test_anchor_without_alias_is_fine(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("name: &n toy\nscenario: {kind: rare}\n")
    assert load_config(cfg).name == "toy"


def test_deeply_nested_config_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(RareflowError, match="nested deeper"):
        load_config(cfg)


def test_threshold_message_is_bounded() -> None:
    huge = {"rule": "quantile", "bulk_acceptance": [[0.5] * 1000] * 1000}
    with pytest.raises(RareflowError) as info:
        parse_rule(huge)
    assert len(str(info.value)) < 500


def test_short_repr_bounds() -> None:
    assert "..." in short_repr("x" * 10**6) and len(short_repr("x" * 10**6)) <= 80
    assert "digits" in short_repr(10**100_000)  # repr() would raise ValueError (int digit limit)
    assert len(short_repr(list(range(10**6)))) <= 80
    assert short_repr("abc") == "'abc'" and short_repr(3) == "3"
