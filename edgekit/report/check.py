"""The CI gate: a report's figures against absolute budgets and/or a baseline report.

Pure functions decide; the CLI reads files, prints, and sets the exit code (0 pass, 1 regression,
2 bad input).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekitError


@dataclass(frozen=True)
class Budget:
    max_size_mb: float | None = None
    max_latency_ms: float | None = None
    min_accuracy: float | None = None  # top-1 %
    max_accuracy_drop: float | None = None  # top-1 points lost to INT8 (or pruning) within the report

    def __post_init__(self) -> None:
        for k, v in vars(self).items():
            if v is not None and v < 0:
                raise EdgekitError(f"{k} must not be negative (got {v})")


@dataclass(frozen=True)
class Relative:
    max_size_growth: float | None = None  # %
    max_latency_growth: float | None = None  # %
    max_accuracy_drop: float | None = None  # top-1 points vs the baseline


def parse_percent(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise EdgekitError(f"{what} {text!r}: give a percentage such as 2% or 10") from None
    if value < 0:
        raise EdgekitError(f"{what} {text!r} must not be negative")
    return value


def read_report(path: str | Path) -> dict:
    path = Path(path)
    try:
        rep = json.loads(path.read_text())
    except OSError as exc:
        raise EdgekitError(f"cannot read {path} ({exc.strerror}): pass a report.json written by edgekit") from None
    except ValueError as exc:
        raise EdgekitError(f"{path} is not valid JSON ({exc}): pass a report.json written by edgekit") from None
    if not isinstance(rep, dict) or "command" not in rep or "schema" not in rep:
        raise EdgekitError(f"{path} is not an edgekit report (no schema/command): pass a report.json written "
                           "by edgekit")
    return rep


# What a user runs to get a figure a report lacks (said when a limit needs it).
HOW_TO_GET = {
    "size_mb": "re-run the export or profile that wrote it",
    "latency_ms": "profile the artifact: edgekit profile MODEL.onnx (an export measures latency only with --int8 "
                  "or --optimize)",
    "accuracy": "pass --eval-data FOLDER with one sub-folder of images per class (and real, not random, weights)",
    "accuracy_drop": "export with --int8 (or prune) and --eval-data FOLDER with one sub-folder per class",
}
LABELS = {"size_mb": "size", "latency_ms": "latency", "accuracy": "top-1 accuracy", "accuracy_drop": "top-1 drop"}
# `check NEW --baseline OLD` with no limit means "no regression" within these (stated on screen, in the README).
DEFAULT_RELATIVE = Relative(max_size_growth=1.0, max_latency_growth=10.0, max_accuracy_drop=0.5)


def metrics(rep: dict, path: str | Path | None = None) -> dict:
    """The figures a gate compares: the report's headline (see schema.py), and where the report came from."""
    from dataclasses import asdict

    from .schema import Headline

    return {**asdict(Headline.read(rep)), "report": str(path or "the report")}


@dataclass
class Row:
    metric: str
    limit: str
    value: str
    verdict: str  # pass, FAIL, skipped


def _shown(value) -> str:
    return "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def _row(name: str, limit_text: str, value, ok: bool) -> Row:
    return Row(name, limit_text, _shown(value), "pass" if ok else "FAIL")


def _where(device: dict | None) -> str:
    d = device or {}
    return ", ".join(str(v) for v in (d.get("cpu"), d.get("gpu"), d.get("backend"), d.get("device"),
                                      f"{d.get('threads')} threads" if d.get("threads") else None) if v)


def _held_out(key: str, rep: dict) -> str:
    """Say that an accuracy figure is the held-out one when the report also has a selection figure."""
    if not key.startswith("accuracy") or rep.get("selection_accuracy") is None:
        return ""
    n = rep.get("accuracy_images")
    return f" (held-out{f', {n} images' if n else ''})"


def _lacking(key: str, *reports: dict) -> str | None:
    """One line saying which report lacks ``key`` and how to get it; None when all have it."""
    who = [r["report"] for r in reports if r[key] is None]
    if not who:
        return None
    return f"{' and '.join(who)} {'has' if len(who) == 1 else 'have'} no {LABELS[key]}: {HOW_TO_GET[key]}"


def _need(key: str, flag: str, *reports: dict) -> None:
    """An explicit limit on a figure a report lacks is bad input (exit 2), not a regression."""
    why = _lacking(key, *reports)
    if why:
        raise EdgekitError(f"cannot check {flag}: {why}")


def _same_images(current: dict, baseline: dict) -> None:
    a, b = current["eval_set"], baseline["eval_set"]
    if a and b and a != b:
        raise EdgekitError(f"top-1 of {current['report']} and {baseline['report']} were measured on different "
                           f"image sets (fingerprints {a[:12]} vs {b[:12]}): evaluate both on the same --eval-data")


def gate(current: dict, budget: Budget | None = None, baseline: dict | None = None,
         relative: Relative | None = None, allow_device_mismatch: bool = False,
         notes: list[str] | None = None) -> list[Row]:
    """Rows of metric, limit, value and verdict.

    A limit the user set on a figure a report lacks is bad input (EdgekitError, exit 2). With a baseline and
    no relative limit, ``DEFAULT_RELATIVE`` applies; a default row whose figure a report lacks, or whose
    latency was measured elsewhere, is skipped with a line in ``notes``.
    """
    rows: list[Row] = []
    notes = notes if notes is not None else []
    b = budget or Budget()
    for key, limit, flag, cmp, sign in (("size_mb", b.max_size_mb, "max_size_mb", "<=", 1),
                                        ("latency_ms", b.max_latency_ms, "max_latency_ms", "<=", 1),
                                        ("accuracy", b.min_accuracy, "min_accuracy", ">=", -1),
                                        ("accuracy_drop", b.max_accuracy_drop, "max_accuracy_drop", "<=", 1)):
        if limit is None:
            continue
        _need(key, f"{flag} {limit}", current)
        v = current[key]
        name = {"size_mb": "size MB", "latency_ms": "latency ms", "accuracy": "top-1 %",
                "accuracy_drop": "top-1 drop"}[key] + _held_out(key, current)
        row = _row(name, f"{cmp} {limit}", v, sign * v <= sign * limit)
        beside = current.get("selection_" + key.replace("accuracy_", "")) if key.startswith("accuracy") else None
        if beside is not None:  # the figure the choice was fitted to, for reading, never for the verdict
            row.value += f" (selection: {beside:.3f})"
        rows.append(row)
    if baseline is None:
        if not rows:
            raise EdgekitError("no limit to check: pass --budget FILE and/or --baseline REPORT (alone it means "
                               "no regression within the default tolerances)")
        return rows
    r = relative or Relative()
    default = all(v is None for v in vars(r).values())
    if default:
        r = DEFAULT_RELATIVE
        notes.append(f"no tolerance given: checked against the baseline with the defaults size +{r.max_size_growth}%,"
                     f" latency +{r.max_latency_growth}%, top-1 -{r.max_accuracy_drop} points (set "
                     "--max-size-growth, --max-latency-growth, --max-accuracy-drop to change them)")
    for key, tol, flag in (("size_mb", r.max_size_growth, "--max-size-growth"),
                           ("latency_ms", r.max_latency_growth, "--max-latency-growth"),
                           ("accuracy", r.max_accuracy_drop, "--max-accuracy-drop")):
        if tol is None:
            continue
        if default and _lacking(key, current, baseline):
            notes.append(f"{LABELS[key]} not compared: {_lacking(key, current, baseline)}")
            continue
        if key == "latency_ms" and current["device"] != baseline["device"] and not allow_device_mismatch:
            # a shared CI runner is a different CPU from run to run: a latency gate there would fail on the
            # machine, not the model; the row is skipped, and the note says where each figure came from
            notes.append(f"latency not compared: measured on another machine or setting (baseline "
                         f"{_where(baseline['device'])}, now {_where(current['device'])}); make the baseline on "
                         "this kind of machine, or pass --allow-device-mismatch to compare anyway")
            if not default:
                rows.append(Row("latency ms vs baseline", f"+{tol}% on the same machine", _shown(current[key]),
                                "skipped"))
            continue
        _need(key, flag, current, baseline)
        if key == "accuracy":
            _same_images(current, baseline)
            cur, base = current["accuracy"], baseline["accuracy"]
            rows.append(_row("top-1 % vs baseline", f">= {base:.3f} - {tol}", cur, base - cur <= tol))
        else:
            rows.append(_growth(f"{'size MB' if key == 'size_mb' else 'latency ms'}", current[key], baseline[key],
                                tol))
    if not rows:
        raise EdgekitError(f"nothing to check: {'; '.join(notes[1:])}")
    return rows


def _growth(name: str, cur, base, pct: float) -> Row:
    limit = base * (1 + pct / 100)
    return _row(f"{name} vs baseline", f"<= {limit:.3f} ({base:.3f} +{pct}%)", cur, cur <= limit)


def passed(rows: list[Row]) -> bool:
    """No row failed (a skipped row, latency from another machine, says so in the notes and does not fail)."""
    return all(r.verdict in ("pass", "skipped") for r in rows)


def markdown(rows: list[Row], title: str) -> str:
    lines = [f"### {title}: {'pass' if passed(rows) else 'REGRESSION'}", "", "| metric | limit | value | verdict |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {r.metric} | {r.limit} | {r.value} | {r.verdict} |" for r in rows]
    return "\n".join(lines) + "\n"


def junit(rows: list[Row], name: str) -> str:
    from xml.sax.saxutils import escape, quoteattr

    failures = sum(r.verdict not in ("pass", "skipped") for r in rows)
    cases = []
    for r in rows:
        body = "" if r.verdict == "pass" else "<skipped/>" if r.verdict == "skipped" else (
            f"<failure message={quoteattr(f'{r.metric}: {r.value} vs {r.limit} ({r.verdict})')}>"
            f"{escape(r.verdict)}</failure>")
        cases.append(f'  <testcase classname={quoteattr(name)} name={quoteattr(r.metric)}>{body}</testcase>')
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("edgekit check " + name)} '
            f'tests="{len(rows)}" failures="{failures}">\n' + "\n".join(cases) + "\n</testsuite>\n")
