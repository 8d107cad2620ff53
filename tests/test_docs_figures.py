"""README truth: the tables come from commands (scripts/docs_figures.py), the install line matches
the Makefile, the demo is the default experiment."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("docs_figures", ROOT / "scripts" / "docs_figures.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["docs_figures"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_replace_block_touches_only_the_marked_block() -> None:
    df = _script()
    text = "a\n<!-- docs-figures: x -->\nold\n<!-- /docs-figures: x -->\nb\n<!-- docs-figures: y -->\nkeep\n<!-- /docs-figures: y -->\n"
    new = df.replace_block(text, "x", "| t |\n")
    assert new == text.replace("old", "| t |")
    with pytest.raises(SystemExit, match="no block"):
        df.replace_block(text, "z", "t")


def test_every_job_points_at_real_configs_scripts_and_markers() -> None:
    df = _script()
    for job in df.JOBS:
        for command in (*job.commands, job.table):
            argv = shlex.split(command)
            assert argv[0] in ("rareflow", "python"), command
            for i, arg in enumerate(argv):
                if argv[i - 1] == "--config" or arg.endswith(".py"):
                    assert (ROOT / arg).exists(), f"{job.name}: {arg} missing"
        if job.target:
            text = (ROOT / job.target).read_text()
            assert f"<!-- docs-figures: {job.name} -->" in text and f"<!-- /docs-figures: {job.name} -->" in text
    demo = next(j for j in df.JOBS if j.name == "demo")
    make = (ROOT / "Makefile").read_text()
    assert "rareflow compare --out out/demo" in make and demo.commands == ("rareflow compare --out out/demo",)
    assert "scripts/docs_figures.py" in make


def test_readme_install_line_matches_the_makefile_extras() -> None:
    extras = re.search(r"^EXTRAS \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    readme = (ROOT / "README.md").read_text()
    installs = re.findall(r'pip install -e "?\.\[([a-z,]+)\]', readme)
    assert installs and all(i == extras for i in installs), (installs, extras)
