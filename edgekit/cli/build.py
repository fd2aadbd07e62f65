"""`edgekit build BUNDLE` (on the Jetson or GPU machine): engine, profile, accuracy check vs the host."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("build")(build)


def build(
    bundle: Path = typer.Argument(..., help="Folder written by `edgekit export ... --target jetson`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default BUNDLE/build)."),
    repeats: int = typer.Option(200, "--repeats", min=3, help="Timed runs."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output folder."),
) -> None:
    """Build the TensorRT engine on this device, profile it, and fail (exit 1) if it disagrees with the host."""
    from ..jetson import build_bundle
    from ..report import print_table

    rep = build_bundle(bundle, out, repeats, force)
    print_table(rep)
