"""Shared by the benchmark scripts: a printed table and a JSON file, from a list of row dicts."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table


def parser(doc: str, models: list[str], json_default: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; a script adds its own."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=models)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--sweeps", type=int, default=3)
    ap.add_argument("--json", default=json_default)
    return ap


def spread(values: list[float]) -> dict:
    """Median of the sweep repeats and their relative spread ((max - min) / median)."""
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values),
            "spread": (max(values) - min(values)) / med if med else 0.0, "repeats": values}


def emit(title: str, rows: list[dict], columns: list[tuple[str, str]], path: str | Path, meta: dict) -> None:
    t = Table(title=title)
    for _, head in columns:
        t.add_column(head, justify="right")
    for r in rows:
        t.add_row(*[(f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, ""))) for k, _ in columns])
    Console(width=160).print(t)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # atomic: a reader never sees half a file
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
