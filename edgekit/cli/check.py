"""`edgekit check REPORT --budget budget.yaml | --baseline BASELINE`: the CI gate (exit 0/1/2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(
    report: Path = typer.Argument(..., help="report.json of the model under test."),
    budget: Optional[Path] = typer.Option(None, "--budget", help="YAML of absolute limits: max_size_mb, "
                                          "max_latency_ms, min_accuracy, max_accuracy_drop."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="report.json to compare against; alone it "
                                            "means no regression: size +1%, latency +10%, top-1 -0.5 points."),
    max_size_growth: Optional[str] = typer.Option(None, "--max-size-growth", help="e.g. 2%"),
    max_latency_growth: Optional[str] = typer.Option(None, "--max-latency-growth", help="e.g. 10%"),
    max_accuracy_drop: Optional[float] = typer.Option(None, "--max-accuracy-drop", help="top-1 points vs baseline."),
    allow_device_mismatch: bool = typer.Option(False, "--allow-device-mismatch",
                                               help="Compare latency measured on different machines anyway."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Also write JUnit XML here."),
) -> None:
    """Fail (exit 1) when the model grew, slowed or lost accuracy; exit 2 on bad input."""
    from rich.table import Table

    from ..errors import BudgetExceededError, EdgekitError
    from ..fsutil import atomic_write_text
    from ..progress import stdout_console
    from ..recipe.schema import load_yaml
    from ..report import check as chk

    cur = chk.metrics(chk.read_report(report), report)
    base = chk.metrics(chk.read_report(baseline), baseline) if baseline else None
    rel = chk.Relative(chk.parse_percent(max_size_growth, "--max-size-growth"),
                       chk.parse_percent(max_latency_growth, "--max-latency-growth"), max_accuracy_drop)
    if base is None and any(v is not None for v in vars(rel).values()):
        raise EdgekitError("--max-*-growth and --max-accuracy-drop compare with a baseline: add --baseline REPORT")
    bud = load_yaml(budget, chk.Budget) if budget else None
    notes: list[str] = []
    rows = chk.gate(cur, bud, base, rel, allow_device_mismatch, notes)
    t = Table(title=f"edgekit check {report}")
    for col in ("metric", "limit", "value", "verdict"):
        t.add_column(col)
    for r in rows:
        style = {"pass": "green", "FAIL": "bold red", "missing": "bold red", "skipped": "yellow"}[r.verdict]
        t.add_row(r.metric, r.limit, r.value, f"[{style}]{r.verdict}[/]")
    stdout_console().print(t)
    for note in notes:
        typer.echo(f"note: {note}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(chk.markdown(rows, f"edgekit check {report.name}") + "".join(f"\n{n}\n" for n in notes))
    if junit:
        atomic_write_text(junit, chk.junit(rows, str(report)))
    if not chk.passed(rows):
        bad = ", ".join(r.metric for r in rows if r.verdict not in ("pass", "skipped"))
        raise BudgetExceededError(f"regression in {report}: {bad}")
    typer.echo("pass")
