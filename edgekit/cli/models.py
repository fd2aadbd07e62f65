"""`edgekit models`: the zoo, with the figures torchvision publishes for each model."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    app.command("models")(models)


def models(all_: bool = typer.Option(False, "--all", help="Include the heavyweight comparison models."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the supported models and their published ImageNet-1k figures (n/a where the authors publish none)."""
    from rich.table import Table

    from ..models.registry import ALIASES, get_card, list_models
    from ..progress import stdout_console

    names = list_models(edge_only=not all_)
    rows = []
    for n in names:
        c = get_card(n)
        ref, pre = c.reference, c.preprocess
        rows.append({"name": n, "family": c.family, "aliases": sorted(a for a, t in ALIASES.items() if t == n),
                     "params_m": ref["params"] / 1e6, "gmacs": ref["gmacs"], "acc1": ref["acc1"],
                     "acc5": ref["acc5"], "file_mb": ref["file_size_mb"],
                     "input": f"{pre.resize_size}->{pre.crop_size} {pre.interpolation}"})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table(title="edgekit models (published ImageNet-1k figures of the default weights)")
    for col in ("model", "alias", "params (M)", "GMACs", "acc@1", "acc@5", "file (MB)", "preprocess"):
        t.add_column(col, justify="right" if col[0] in "pGaf" and col not in ("alias",) else "left")
    for r in rows:
        t.add_row(r["name"], ", ".join(r["aliases"]), f"{r['params_m']:.2f}", _fmt(r["gmacs"], 3),
                  _fmt(r["acc1"], 2), _fmt(r["acc5"], 2), _fmt(r["file_mb"], 1), r["input"])
    stdout_console().print(t)


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
