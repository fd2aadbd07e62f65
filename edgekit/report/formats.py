"""The one table of every format an export wrote: format, precision, status, size, agreement with torch, accuracy,
latency here; a failed format is a row with its reason. On screen, in report.md, and as points for the Pareto
chart (``report.compare.plot``)."""

from __future__ import annotations

from .counts import few, share

COLUMNS = ("format", "precision", "status", "file", "size MB", "max |diff|", "agree", "top-1", "ms (median)", "note")


def cells(r: dict) -> tuple[str, ...]:
    chk, lat = r.get("check") or {}, r.get("latency") or {}
    ms = "-" if "median_ms" not in lat else f"{lat['median_ms']:.3f} ±{lat.get('spread_ms', 0) / 2:.3f}"
    if "error" in lat:
        ms = "timing failed"
    note = r.get("reason") or ""
    q = r.get("int8")
    if q:
        held = q["held_out"]
        budget = q["budget"]["max_drop"]
        floated = f"{len(q['float_layers'])} layer(s) float"
        if few(held["images"]):  # counts, and no drop: too few images to judge INT8 by
            note = (f"INT8: {share(held['metric'], held['images'])} held-out images vs FP32's "
                    f"{share(held['baseline'], held['images'])}: too few to judge; pass --eval-data; {floated}")
        else:
            note = (f"INT8 drop {held['drop']:.2f} on {held['images']} held-out images (budget "
                    f"{'none' if budget is None else f'{budget:g}'}), {floated}")
    if "error" in lat:
        note = (note + "; " if note else "") + lat["error"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    return (r["format"], r["precision"], r["status"], r.get("file") or "-",
            fmt(r["bytes"] / 1e6 if r.get("bytes") else None, ".3f"), fmt(chk.get("max_abs_diff"), ".2e"),
            share(chk.get("top1_agreement"), chk.get("n"), 1), share(chk.get("top1"), chk.get("n")), ms, note)


def print_formats(section: dict, console=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..progress import stdout_console

    console = console or stdout_console()
    t = Table(title=f"edgekit formats (checked against torch on {section['judged_on']}; latency batch 1 here)",
              header_style="bold")
    for c in COLUMNS:
        t.add_column(c, overflow="fold")
    style = {"checked": "green", "failed": "bold red", "over budget": "bold red"}
    for r in section["rows"]:
        row = [escape(c) for c in cells(r)]
        row[2] = f"[{style.get(r['status'], 'yellow')}]{row[2]}[/]"
        t.add_row(*row)
    console.print(t)


def markdown(section: dict) -> list[str]:
    lines = ["", "## Formats", "", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells(r)) + " |" for r in section["rows"]]
    return lines


def points(section: dict, labelled: bool) -> list[dict]:
    """Rows with a latency, as ``report.compare.plot`` draws them (accuracy, or agreement when unlabelled)."""
    out = []
    for r in section["rows"]:
        lat, chk = r.get("latency") or {}, r.get("check") or {}
        if "median_ms" in lat and chk:
            out.append({"variant": f"{r['format']} {r['precision']}", "precision": r["precision"],
                        "latency_ms": lat["median_ms"], "size_mb": r["bytes"] / 1e6 if r.get("bytes") else None,
                        "accuracy": chk.get("top1") if labelled else chk.get("top1_agreement")})
    return out


def failures(section: dict) -> list[str]:
    return [f"{r['format']} {r['precision']}: {r.get('reason') or r['status']}" for r in section["rows"]
            if r["status"] in ("failed", "over budget")]
