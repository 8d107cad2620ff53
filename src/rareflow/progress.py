"""Progress in one place: rich bars on a terminal, plain lines in logs, nothing when asked.

* stderr is a terminal (and not under ``CI``): rich progress bars, as before.
* stderr is *not* a terminal (a log file, ``make demo | tee``, a batch job) and the command line
  asked for progress (the CLI calls :func:`set_enabled` with ``True`` unless ``--quiet``): one
  plain line per step of the *outermost* progress only (e.g. ``compare`` tasks, not the epochs of
  each fit inside them), at most one every :data:`LINE_INTERVAL_S` seconds plus the first and the
  last, each with the elapsed and an estimated remaining time.
* library use (nobody called :func:`set_enabled`) without a terminal, or ``--quiet``: nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

_DISABLED = False
_LINES = False  # plain progress lines without a terminal: only when the command line asked for progress
_DEPTH = 0  # open line-mode progress displays: only the outermost one prints
LINE_INTERVAL_S = 5.0


def set_enabled(enabled: bool) -> None:
    """Turn progress on or off for the whole process (the CLI's ``--quiet``); ``True`` also allows
    plain progress lines when stderr is not a terminal."""
    global _DISABLED, _LINES
    _DISABLED, _LINES = not enabled, bool(enabled)


def enabled() -> bool:
    """Bars show only on an interactive stderr, never under CI or when disabled."""
    return not _DISABLED and sys.stderr.isatty() and not os.environ.get("CI")


def lines_enabled() -> bool:
    """Plain lines instead of bars: progress asked for, but no interactive terminal for bars."""
    return _LINES and not _DISABLED and not enabled()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LineProgress:
    """The part of rich's ``Progress`` API the code uses (``add_task``, ``update``, ``advance``),
    written as plain lines on stderr: ``[0:00:42] compare 4/18 seed 1 · flow (~0:02:25 left)``."""

    def __init__(self, interval: float | None = None) -> None:
        self.interval = LINE_INTERVAL_S if interval is None else interval
        self.tasks: list[dict[str, Any]] = []
        self.outer = False

    def __enter__(self) -> "LineProgress":
        global _DEPTH
        self.outer, _DEPTH = _DEPTH == 0, _DEPTH + 1
        return self

    def __exit__(self, *exc: object) -> None:
        global _DEPTH
        _DEPTH -= 1

    def add_task(self, description: str, total: float | None = None, info: str = "", visible: bool = True, **_: Any) -> int:
        now = time.monotonic()
        self.tasks.append(dict(description=description, total=total, completed=0, info=info, visible=visible,
                               start=now, last=None))  # fmt: skip
        return len(self.tasks) - 1

    def update(
        self, task: int, *, advance: float | None = None, completed: float | None = None, info: str | None = None,
        visible: bool | None = None, **_: Any,
    ) -> None:  # fmt: skip
        t = self.tasks[task]
        t["completed"] = completed if completed is not None else t["completed"] + (advance or 0)
        if info is not None:
            t["info"] = info
        if visible is not None:
            t["visible"] = visible
        self._maybe_print(t, with_info=info is not None)

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def _maybe_print(self, t: dict[str, Any], with_info: bool) -> None:
        if not (self.outer and t["visible"]):
            return
        now = time.monotonic()
        done = t["total"] is not None and t["completed"] >= t["total"]
        if t["last"] is not None and not done and now - t["last"] < self.interval:
            return
        t["last"] = now
        print(self._line(t, now, with_info), file=sys.stderr, flush=True)

    @staticmethod
    def _line(t: dict[str, Any], now: float, with_info: bool = True) -> str:
        """The info names the step starting now (``update(info=...)``); a bare advance prints the count."""
        elapsed = now - t["start"]
        count = f" {t['completed']:g}/{t['total']:g}" if t["total"] else ""
        left = ""
        if t["total"] and 0 < t["completed"] < t["total"]:
            left = f" (~{_clock(elapsed / t['completed'] * (t['total'] - t['completed']))} left)"
        info = f" {t['info']}" if t["info"] and with_info else ""
        return f"[{_clock(elapsed)}] {t['description']}{count}{info}{left}"


def make_progress(transient: bool = True) -> Progress | LineProgress:
    """A rich Progress with description, bar, count, elapsed and remaining time, and extra fields;
    a :class:`LineProgress` when progress was asked for but stderr is not a terminal."""
    if lines_enabled():
        return LineProgress()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=transient,
        disable=not enabled(),
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (shown only when :func:`enabled`)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)
