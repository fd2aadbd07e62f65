"""`edgekit run RECIPE [--set key=value ...]`: run a whole pipeline from one YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    recipe: Path = typer.Argument(..., help="Recipe YAML (see recipes/)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a key, e.g. quantize.precision=int8 "
                                             "(repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and list the steps; run nothing."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: the recipe's out)."),
    force: bool = typer.Option(False, "--force", help="Replace existing output folders."),
) -> None:
    """Validate RECIPE and run its steps: prune, fine-tune, export, quantize, profile, check budgets."""
    from ..errors import EdgekitError
    from ..recipe import run as rr
    from ..recipe import spec as rc
    from ..report.table import print_table

    r = rc.load(recipe, set_)
    target = out or rc.out_dir(r, recipe)
    if dry_run:
        problems = rr.dry_run(r)
        typer.echo(f"{recipe}: valid; steps: {' -> '.join(rr.steps(r))}; output {target}")
        for p in problems:
            typer.echo(f"  would fail: {p}")
        if problems:
            raise EdgekitError(f"{recipe}: {len(problems)} problem(s) would stop the run (listed above)")
        return
    reports = rr.run(r, target, force)
    if not reports:  # a torchrun process other than rank 0: it fine-tuned alongside, rank 0 writes
        return
    for step, rep in reports.items():
        if isinstance(rep, dict):
            print_table(rep)
    rc.save(r, target / "recipe.yaml")
    typer.echo(f"wrote {target}/ ({', '.join(reports)}) and {target}/recipe.yaml")
