"""Rich progress bars for every loop over images or timed runs."""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def make_progress(show: bool = True) -> Progress:
    """Bars on a terminal; ``show=False`` for a process whose bars would only repeat another's (torchrun)."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
                    disable=not (show and sys.stderr.isatty()))


@contextlib.contextmanager
def track_progress(progress: Progress | None = None):
    """Reuse the caller's progress display, or open one for the duration of the block."""
    if progress is not None:
        yield progress
        return
    with make_progress() as p:
        yield p


def stdout_console() -> Console:
    """Tables go to stdout; wide enough for the report tables when piped to a file or CI log."""
    return Console(width=None if sys.stdout.isatty() else 140)
