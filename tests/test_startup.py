"""Start-up stays light: the CLI module, --help and input errors import no heavy library.

No timed assertion (the machine may be loaded); what is imported is what costs the seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import rareflow

SRC = str(Path(rareflow.__file__).resolve().parents[1])
HEAVY = ("torch", "matplotlib", "dask", "ctapipe", "zuko")

PROBE = """
import json, sys, runpy
sys.argv = ["rareflow", *json.loads(sys.argv[1])]
try:
    runpy.run_module("rareflow", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
""" % (HEAVY,)


def _run(args: list[str], cwd: Path) -> tuple[int, list[str], str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd, env=env, capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    doc = json.loads(last)
    return doc["code"], doc["loaded"], proc.stderr


def test_import_cli_is_light() -> None:
    code = f"import sys, rareflow, rareflow.cli; print([m for m in {HEAVY!r} + ('sklearn', 'pandas') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    code, loaded, _ = _run(["--help"], tmp_path)
    assert code == 0 and loaded == []


def test_missing_input_fails_before_heavy_imports(tmp_path: Path) -> None:
    for args in (
        ["train", "flow", "--data", "missing.parquet", "--out", "m.rfm"],
        ["score", "--model", "missing.rfm", "--data", "missing.parquet", "--out", "s.parquet"],
        ["evaluate", "--scores", "missing.parquet", "--out", "m.json"],
    ):
        code, loaded, err = _run(args, tmp_path)
        assert code == 2, err
        assert "missing." in err and "file not found" in err
        assert loaded == [], args
    assert not list(tmp_path.iterdir())  # no partial output


def test_a_method_loads_only_its_own_module() -> None:
    code = (
        "import sys; from rareflow.detectors import detector_class, get_detector; "
        "get_detector('gbdt', max_iter=5); detector_class('mahalanobis'); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
