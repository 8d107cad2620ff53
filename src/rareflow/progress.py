"""Progress bars in one place (rich), quiet when output is not a terminal or when asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

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


def set_enabled(enabled: bool) -> None:
    """Turn progress bars on or off for the whole process (the CLI's ``--quiet``)."""
    global _DISABLED
    _DISABLED = not enabled


def enabled() -> bool:
    """Bars show only on an interactive stderr, never under CI or when disabled."""
    return not _DISABLED and sys.stderr.isatty() and not os.environ.get("CI")


def make_progress(transient: bool = True) -> Progress:
    """A rich Progress with description, bar, count, elapsed and remaining time, and extra fields."""
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
