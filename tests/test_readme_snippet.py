"""The README's Python API block runs as written (on simulated events, in a temporary folder)."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_block() -> str:
    text = README.read_text()
    start = text.index("Python API (")
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert match, "README has no ```python block after 'Python API'"
    return match.group(1)


def test_readme_python_snippet_runs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = python_api_block()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    finally:
        os.chdir(cwd)
    assert (tmp_path / "model.rfm").exists() and (tmp_path / "events.parquet").exists()
    assert set(namespace["labels"]) <= {0, 1} and len(namespace["scores"]) == len(namespace["X_test"])
    assert "predict: score >" in capsys.readouterr().out  # print(det) shows the working point
