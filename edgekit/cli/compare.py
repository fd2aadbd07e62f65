"""`edgekit compare REPORT... --plot pareto.png`: all variants side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


def compare(
    reports: list[Path] = typer.Argument(..., help="report.json files (export or profile)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the latency/accuracy chart (PNG) here."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the table as JSON here."),
) -> None:
    """A table of every variant, and optionally the Pareto chart of latency against accuracy."""
    from rich.table import Table

    from ..fsutil import atomic_write_text
    from ..progress import stdout_console
    from ..report.check import read_report
    from ..report.compare import mixed_image_sets, variant_rows
    from ..report.compare import plot as draw

    loaded = {}
    for p in reports:
        label = p.parent.name if p.name == "report.json" else p.stem
        while label in loaded:
            label += "'"
        loaded[label] = read_report(p)
    rows = variant_rows(loaded)
    warning = mixed_image_sets(rows)
    if plot:
        pareto = {r["variant"] for r in draw(rows, plot, warning) if r["pareto"]}
        for r in rows:
            r["pareto"] = r["variant"] in pareto
    t = Table(title="edgekit compare")
    cols = ("variant", "model", "precision", "size MB", "latency ms", "top-1 %") + (("image set",) if warning else ())
    for col in cols + (("pareto",) if plot else ()):
        t.add_column(col)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for r in rows:
        t.add_row(r["variant"], str(r["model"]), str(r["precision"]), fmt(r["size_mb"]), fmt(r["latency_ms"]),
                  fmt(r["accuracy"]), *(((r["eval_set"] or "unknown")[:8],) if warning else ()),
                  *(("yes" if r["pareto"] else "",) if plot else ()))
    stdout_console().print(t)
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    if json_out:
        atomic_write_text(json_out, json.dumps(rows, indent=2) + "\n")
    if plot:
        typer.echo(f"wrote {plot}")
