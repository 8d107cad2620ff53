"""Where and on how many threads torch runs: :func:`resolve_device` and :func:`torch_threads`."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

from rareflow.errors import RareflowError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``cpu`` by default; ``cuda`` when asked and present (else CPU with a warning); ``auto``."""
    name = str(device or "cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"device {name!r} asked for but torch sees no CUDA device; using cpu", stacklevel=2)
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise RareflowError(f"unknown torch device {name!r}; use cpu, cuda or auto") from None


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n_threads)`` (unchanged when None)."""
    if not n_threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
