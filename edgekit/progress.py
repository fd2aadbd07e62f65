"""Rich progress bars for every loop over images or timed runs."""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second for a task added with a ``unit`` field (``add_task(..., unit="img")``, and ``per=64`` when
    each step of the task is 64 of them): a reading of images shows how fast they come, which says whether decoding
    or the model is the bottleneck."""

    def render(self, task) -> Text:
        unit = task.fields.get("unit")
        if not unit or not task.speed:
            return Text("")
        return Text(f"{task.speed * task.fields.get('per', 1):,.0f} {unit}/s", style="progress.data.speed")


def make_progress(show: bool = True) -> Progress:
    """Bars on a terminal; ``show=False`` for a process whose bars would only repeat another's (torchrun)."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    transient=True, disable=not (show and sys.stderr.isatty()))


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
