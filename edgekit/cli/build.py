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
    from ..errors import BudgetExceededError
    from ..pipeline.board import build_bundle
    from ..report.table import print_table

    try:
        rep = build_bundle(bundle, out, repeats, force)
    except BudgetExceededError as exc:  # the engine was built and measured: show what it did, then the reason
        if getattr(exc, "report", None):
            print_table(exc.report)
            typer.echo(layer_line(exc.report.get("build", {})))
        raise
    print_table(rep)
    typer.echo(layer_line(rep.get("build", {})))


def layer_line(build: dict) -> str:
    """What the engine inspector saw: layers per precision and per device, and the DLA's GPU fallback."""
    layers = build.get("layers") or {}
    if not layers.get("detailed"):
        return "engine layers: not inspected"
    prec = ", ".join(f"{k} {v}" for k, v in layers["precision"].items())
    dev = ", ".join(f"{k} {v}" for k, v in layers["device"].items())
    fallback = build.get("dla_gpu_fallback_layers") or []
    more = f"; {len(fallback)} fell back from the DLA to the GPU: {', '.join(fallback[:5])}" if fallback else ""
    hidden = layers.get("opaque") or []
    more += f"; {len(hidden)} Myelin ForeignNode layer(s) hide their precision" if hidden else ""
    return f"engine layers: {prec or 'none visible'} (plus {layers['bookkeeping']} reformat/no-op); on {dev}{more}"
