"""Progress: bars on a terminal, plain lines in logs (outermost only), nothing with --quiet."""

from __future__ import annotations

import pytest
import yaml

from rareflow import progress


@pytest.fixture(autouse=True)
def _restore(monkeypatch):  # the process-wide switches come back as they were after each test
    monkeypatch.setattr(progress, "_LINES", progress._LINES)
    monkeypatch.setattr(progress, "_DISABLED", progress._DISABLED)


def test_lines_without_a_terminal_only_for_the_outermost_progress(capsys, monkeypatch) -> None:
    progress.set_enabled(True)  # what the CLI does without --quiet; pytest's stderr is no terminal
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.0)
    with progress.make_progress() as outer:
        assert isinstance(outer, progress.LineProgress)
        task = outer.add_task("compare", total=3, info="")
        for k in range(3):
            outer.update(task, info=f"step {k}")
            with progress.make_progress() as inner:  # e.g. the epochs of a fit: silent
                t = inner.add_task("epochs", total=2, info="")
                inner.update(t, advance=2, info="loss 1.0")
            outer.advance(task)
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("compare 0/3 step 0") and err[-1].endswith("compare 3/3")
    assert any("compare 1/3 step 1 (~" in line for line in err)  # the step starting now, then the time left
    assert any("left)" in line for line in err) and not any("epochs" in line for line in err)


def test_rate_limit_and_quiet(capsys, monkeypatch) -> None:
    progress.set_enabled(True)
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 3600.0)
    with progress.make_progress() as p:
        task = p.add_task("score", total=100, info="")
        for _ in range(100):
            p.advance(task)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[-1].endswith("score 100/100")  # the first and the last line only
    progress.set_enabled(False)
    assert not isinstance(progress.make_progress(), progress.LineProgress)


def test_compare_prints_progress_lines_to_a_log(tmp_path, capsys) -> None:
    from rareflow.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"simulate": {"n_events": 600}}, "scenario": {"seeds": [0, 1]},
                                   "methods": ["gbdt", "mahalanobis"]}))  # fmt: skip
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "compare 0/4 seed 0 · gbdt" in err and "compare 4/4" in err
