"""`edgekit doctor`: versions, the GPU, the Jetson's power state, and a round trip through every backend."""

from __future__ import annotations

import json
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    backend: Optional[List[str]] = typer.Option(None, "--backend", "-b",
                                                help="Backend that must run here (repeat, or comma-separate): "
                                                     "exit 1 with the reason when it cannot. Default: check all."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON on stdout."),
) -> None:
    """What is installed, which GPU is here, and a tiny model through every backend that claims to work."""
    from ..pipeline.doctor import BACKENDS, BackendUnavailableError, diagnose, unavailable
    from ..progress import stdout_console

    named = tuple(n.strip() for b in (backend or []) for n in b.split(",") if n.strip())
    doc = diagnose(tuple(dict.fromkeys(named)) if named else BACKENDS)
    missing = unavailable(doc, named)
    doc["ok"] = not missing and not any(r["verdict"] == "fail" for r in doc["round_trip"])
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print(doc, stdout_console())
    if missing:
        raise BackendUnavailableError(f"cannot run here: {' | '.join(missing)}")
    if not doc["ok"]:
        raise BackendUnavailableError("a backend that claims to be installed failed its round trip (see above)")


def _print(doc: dict, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    for title, key in (("versions", "versions"), ("GPU", "gpu"), ("Jetson", "jetson")):
        t = Table(title=title, show_header=False, title_justify="left")
        for k, v in doc[key].items():
            t.add_row(k, escape(", ".join(f"{a}: {b}" for a, b in v.items()) if isinstance(v, dict) else str(v)))
        console.print(t)
    t = Table(title="round trip (tiny model: export, build, infer, compare)", title_justify="left")
    for col in ("backend", "device", "verdict", "max |diff|", "top-1 agree", "detail / fix"):
        t.add_column(col)
    style = {"pass": "green", "fail": "bold red", "n/a": "yellow"}
    for r in doc["round_trip"]:
        diff = f"{r['max_abs_diff']:.2e}" if "max_abs_diff" in r else "-"
        agree = f"{r['top1_agreement']:.0f}%" if "top1_agreement" in r else "-"
        note = r["detail"] + (f"\nfix: {r['fix']}" if r["fix"] else "")
        t.add_row(r["backend"], r["device"], f"[{style[r['verdict']]}]{r['verdict']}[/]", diff, agree, escape(note))
    console.print(t)
