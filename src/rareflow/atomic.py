"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or a validation error half-way never leaves a partial output file behind; SIGTERM and
SIGHUP (like Ctrl-C) raise :class:`Terminated` while a temporary file exists, so it is removed
too. Only ``kill -9`` (SIGKILL, which no process can catch) can leave a hidden
``.<name>.<random>.tmp`` beside the target; it is never renamed onto the target.
:func:`refuse_same_file` stops an output from overwriting one of the command's inputs and
:func:`atomic_dir` gives a whole output folder the same all-or-nothing guarantee.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from rareflow.errors import RareflowError


class Terminated(BaseException):
    """SIGTERM / SIGHUP received: unwinds like KeyboardInterrupt so ``finally`` blocks clean up."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` (main thread, default handlers only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    old = {n: signal.getsignal(getattr(signal, n)) for n in names}
    for n in names:
        if old[n] in (signal.SIG_DFL, None):
            signal.signal(getattr(signal, n), _raise_terminated)
    try:
        yield
    finally:
        for n in names:
            if old[n] in (signal.SIG_DFL, None):
                signal.signal(getattr(signal, n), old[n] or signal.SIG_DFL)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    The parent folder is created if needed. On any exception the temporary file is removed and
    ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    with signals_raise():
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"))


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (symlinks, ``..``, hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_same_file(out: str | os.PathLike[str], inputs: dict[str, object], option: str = "--out") -> None:
    """Refuse to write ``out`` when it is one of the ``inputs`` (``{"--data": path, ...}``; None skipped)."""
    out_path = Path(out)
    for name, value in inputs.items():
        for p in value if isinstance(value, (list, tuple)) else [value]:
            if p is not None and _same(out_path, Path(p)):
                raise RareflowError(
                    f"{option} {out_path} is the same file as {name} {p}; writing it would destroy the input: "
                    "choose another output path"
                )


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike[str], replaceable: frozenset[str] = frozenset(), inputs: dict[str, object] | None = None
) -> Iterator[Path]:
    """Yield a hidden temporary folder beside ``target``; it replaces ``target`` only on success.

    A failure (or SIGTERM/SIGHUP) half-way removes the temporary folder and leaves ``target`` as it
    was. An existing ``target`` is replaced only when it is empty or holds nothing but names matching the
    glob patterns ``replaceable`` (a previous result), and never when one of ``inputs`` lies inside it.
    """
    target = Path(target)
    check_replaceable(target, replaceable, inputs or {})
    target.parent.mkdir(parents=True, exist_ok=True)
    with signals_raise():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        old = None
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
            if target.exists():
                old = target.with_name(f"{tmp.name}.old")
                os.replace(target, old)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def check_replaceable(target: Path, replaceable: frozenset[str], inputs: dict[str, object]) -> None:
    if target.exists() and not target.is_dir():
        raise RareflowError(f"--out {target} is a file; compare writes a folder: choose a new folder name")
    for name, p in inputs.items():
        if p is not None and target.exists() and _inside(Path(p), target):
            raise RareflowError(f"{name} {p} lies inside --out {target}, which would be replaced: choose another --out")
    if target.is_dir():
        foreign = sorted(c.name for c in target.iterdir() if not any(fnmatch.fnmatch(c.name, pat) for pat in replaceable))
        if foreign:
            raise RareflowError(
                f"--out {target} holds files that are not a rareflow result (e.g. {foreign[0][:60]}); "
                "choose a new or empty folder"
            )
