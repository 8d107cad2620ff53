"""The thread policy: one number for torch, BLAS/OpenMP (threadpoolctl) and child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_info

from rareflow import threads
from rareflow.cli import main
from rareflow.errors import RareflowError

SRC = str(Path(threads.__file__).resolve().parents[1])


@pytest.fixture
def restore_threads():  # type: ignore[no-untyped-def]
    before_torch, before_env = torch.get_num_threads(), {v: os.environ.get(v) for v in threads.THREAD_ENV_VARS}
    yield
    threads.apply_thread_policy(1)
    torch.set_num_threads(before_torch)
    for var, value in before_env.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def test_default_is_capped_and_shrinks_under_load() -> None:
    assert threads.default_threads(cores=16, load=0.0) == 4
    assert threads.default_threads(cores=2, load=0.0) == 2
    assert threads.default_threads(cores=2, load=0.3) == 2  # a light load does not take a core
    assert threads.default_threads(cores=2, load=1.2) == 1
    assert threads.default_threads(cores=2, load=7.0) == 1  # never below one
    assert threads.default_threads(cores=8, load=5.0) == 3


def test_policy_sets_torch_threadpoolctl_and_env(restore_threads) -> None:  # type: ignore[no-untyped-def]
    assert threads.apply_thread_policy(2) == 2
    assert torch.get_num_threads() == 2
    pools = threadpool_info()
    assert pools and all(p["num_threads"] == 2 for p in pools)
    assert all(os.environ[v] == "2" for v in threads.THREAD_ENV_VARS)
    assert threads.apply_thread_policy(1) == 1
    assert torch.get_num_threads() == 1 and all(p["num_threads"] == 1 for p in threadpool_info())


def test_torch_imported_later_follows_the_policy() -> None:
    code = (
        "from rareflow.threads import apply_thread_policy; apply_thread_policy(1); "
        "import torch; from threadpoolctl import threadpool_info; "
        "print(torch.get_num_threads(), sorted({p['num_threads'] for p in threadpool_info()}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in threads.THREAD_ENV_VARS}
    env["PYTHONPATH"] = SRC
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "[1]"]


def test_threads_option_on_every_command(capsys) -> None:  # type: ignore[no-untyped-def]
    for cmd in ("simulate", "extract", "train", "score", "evaluate", "compare", "outliers", "methods"):
        assert main([cmd, "--help"]) == 0
        assert "--threads" in capsys.readouterr().out, cmd


def test_negative_threads_is_an_error() -> None:
    with pytest.raises(RareflowError, match="--threads -1"):
        threads.resolve_threads(-1)
