"""The ``edgekit`` command: one file per subcommand, each a thin call into the library."""

from __future__ import annotations

import sys

import typer

from . import benchmark as _benchmark
from . import build as _build
from . import check as _check
from . import compare as _compare
from . import doctor as _doctor
from . import export as _export
from . import models as _models
from . import profile as _profile
from . import prune as _prune
from . import run as _run

app = typer.Typer(name="edgekit", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Take a trained image classifier to the edge: export, quantize, prune, profile.")
for _mod in (_models, _export, _profile, _prune, _run, _check, _compare, _build, _doctor, _benchmark):
    _mod.register(app)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        from .. import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Entry point: edgekit's own errors become one line on stderr and their exit code."""
    from ..errors import EdgekitError
    from ..progress import console

    terminated = _terminate_as_interrupt()
    try:
        rv = app(standalone_mode=False)
    except EdgekitError as exc:
        from rich.markup import escape

        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        rv = 130
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors from Typer's click
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if rv == 130 and terminated:  # SIGTERM: cleaned up like Ctrl-C, and the shell's code for it
        console.print("[bold red]terminated[/]: nothing was written", highlight=False)
        rv = 143
    elif rv == 130:  # Typer turns Ctrl-C into exit code 130
        console.print("[bold red]interrupted[/]: nothing was written", highlight=False)
    if isinstance(rv, int) and rv:
        sys.exit(rv)


def _terminate_as_interrupt() -> list[int]:
    """SIGTERM (`kill`, a CI runner's timeout, a scheduler, torchrun stopping a worker) unwinds like Ctrl-C, so
    the staging folder and temporary files are removed instead of left behind; the list it returns records it.
    Left alone where SIGTERM is not at its default (a caller that handles it), and under torchrun, which stops
    the other processes with SIGTERM when one fails: a process blocked in a collective must die at once there."""
    import os
    import signal

    seen: list[int] = []
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and "TORCHELASTIC_RUN_ID" not in os.environ:
        def stop(signum, frame):
            seen.append(signum)
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
    return seen
