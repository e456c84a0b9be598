"""Rich progress bars with rate and ETA, quiet when the output is not a terminal or progress is disabled."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator


def interactive() -> bool:
    """Whether progress is drawn as a live bar: stderr is a terminal, or MMTRAIN_PROGRESS=1 asks for it."""
    return sys.stderr.isatty() or os.environ.get("MMTRAIN_PROGRESS") == "1"


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows a bar with count, rate and ETA on a terminal (or with MMTRAIN_PROGRESS=1)."""
    show = interactive() and total > 0
    if not show:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[progress.percentage]{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:.0f} img/s" if speed else "")

        yield advance
