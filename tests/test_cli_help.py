"""Help that finds methods and parameters: `rareflow methods`, `train METHOD --help`, typo hints."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from rareflow.cli import main
from rareflow.detectors import available, detector_class, get_detector
from rareflow.detectors.describe import param_docs, summary_line
from rareflow.errors import RareflowError


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at the terminal width; keep rows on one line


def test_methods_lists_every_method_with_kind_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in available():
        cls = detector_class(name)
        row = next(line for line in out.splitlines() if line.split("│")[1:2] and line.split("│")[1].strip() == name)
        assert cls.kind in row and summary_line(cls)[:20] in row
    assert "labels (rare + bulk)" in next(line for line in out.splitlines() if line.startswith("│ gbdt "))


def test_train_method_help_lists_parameters_defaults_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "flow", "--help"]) == 0
    out = capsys.readouterr().out
    assert "see SPEC" not in out
    sig = inspect.signature(detector_class("flow").__init__)
    for name, p in list(sig.parameters.items())[1:]:
        assert f" {name} " in out, name
    score_row = next(line for line in out.splitlines() if " score " in line and "nll" in line)
    assert "latent_norm" in score_row and "latent_mahalanobis" in score_row  # allowed values from SCORES
    assert "realnvp | maf | nsf" in out


def test_method_help_found_after_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", "x.parquet", "--out", "m.rfm", "gbdt", "--help"]) == 0
    out = capsys.readouterr().out
    assert "max_iter" in out and "number of boosting iterations" in out  # from gbdt's Parameters section
    assert main(["train", "--help"]) == 0  # no method: the generic help only
    assert "max_iter" not in capsys.readouterr().out


def test_flags_render_as_flags_and_fit_on_shows_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "<bool>" not in out
    assert "bulk for one-class methods, both otherwise" in out


def test_param_docs_match_signature_and_docstring() -> None:
    docs = {p.name: p for p in param_docs(detector_class("gbdt"))}
    assert docs["max_iter"].default == 300 and docs["max_iter"].help.startswith("number of boosting")
    assert docs["early_stopping"].allowed == "true | false"
    assert "bulk_acceptance" in docs["threshold"].help  # the shared glossary


def test_misspelt_parameter_suggests_the_right_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RareflowError) as err:
        get_detector("flow", scor="nll")
    msg = str(err.value)
    assert msg.startswith("unknown parameter 'scor' for flow; did you mean 'score'? parameters: fit_on, flow,")
    with pytest.raises(RareflowError, match="unknown parameter 'zzz' for mahalanobis; parameters: fit_on, ridge"):
        get_detector("mahalanobis", zzz=1)
    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n1,2,gamma\n2,3,hadron\n")
    code = main(["train", "gbdt", "--data", str(table), "--out", str(tmp_path / "m.rfm"), "-p", "max_iterr=3"])
    assert code == 2
    assert "did you mean 'max_iter'?" in capsys.readouterr().err
    assert not (tmp_path / "m.rfm").exists()


def test_misspelt_method_suggests_the_right_one() -> None:
    with pytest.raises(RareflowError, match="unknown method 'flw'; did you mean 'flow'?"):
        detector_class("flw")
