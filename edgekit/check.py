"""The CI gate: a report's figures against absolute budgets and/or a baseline report.

Pure functions decide; the CLI reads files, prints, and sets the exit code (0 pass, 1 regression,
2 bad input).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import EdgekitError


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


def metrics(rep: dict) -> dict:
    """The figures a gate compares, from any edgekit report; None where the report has none."""
    m = {"size_mb": None, "latency_ms": None, "accuracy": None, "accuracy_drop": None, "device": None,
         "artifact": None, "precision": rep.get("precision")}
    env = rep.get("environment", {})
    q = rep.get("int8")
    art = (q or {}).get("artifact") or rep.get("artifact") or {}
    m["size_mb"], m["artifact"] = art.get("size_mb"), art.get("file")
    if rep.get("latency"):
        m["latency_ms"] = rep["latency"]["batch1"]["median_ms"]
    elif q:
        m["latency_ms"] = q["latency"]["int8"]["median_ms"]
    elif rep.get("latency_compare"):
        m["latency_ms"] = rep["latency_compare"]["pruned"]["median_ms"]
    acc = rep.get("accuracy") or {}
    if q and q.get("metric") is not None and q.get("judged_by", "").startswith("top-1 on"):
        m["accuracy"], m["accuracy_drop"] = q["metric"], q["drop"]
    else:
        for v in acc.values():
            if isinstance(v, dict) and "top1" in v:
                m["accuracy"] = v["top1"]
    stages = rep.get("stages") or {}
    if "unpruned" in stages and stages["unpruned"].get("quality", {}).get("basis") == "labels":
        last = list(stages.values())[-1]["quality"]["top1"]
        m["accuracy"], m["accuracy_drop"] = last, stages["unpruned"]["quality"]["top1"] - last
    backend = rep.get("backend") or {}
    threads = backend.get("threads", env.get("threads"))
    m["device"] = {"cpu": env.get("cpu"), "gpu": backend.get("gpu"), "backend": backend.get("backend", "onnxruntime"),
                   "device": backend.get("device", "cpu"), "threads": threads}
    return m


@dataclass
class Row:
    metric: str
    limit: str
    value: str
    verdict: str  # pass, FAIL, missing


def _row(name: str, limit_text: str, value, ok: bool | None) -> Row:
    shown = "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
    return Row(name, limit_text, shown, "missing" if ok is None else ("pass" if ok else "FAIL"))


def gate(current: dict, budget: Budget | None = None, baseline: dict | None = None,
         relative: Relative | None = None, allow_device_mismatch: bool = False) -> list[Row]:
    """Rows of metric, limit, value and verdict. A limit whose metric is missing from the report fails."""
    rows: list[Row] = []
    b = budget or Budget()
    if b.max_size_mb is not None:
        v = current["size_mb"]
        rows.append(_row("size MB", f"<= {b.max_size_mb}", v, None if v is None else v <= b.max_size_mb))
    if b.max_latency_ms is not None:
        v = current["latency_ms"]
        rows.append(_row("latency ms", f"<= {b.max_latency_ms}", v, None if v is None else v <= b.max_latency_ms))
    if b.min_accuracy is not None:
        v = current["accuracy"]
        rows.append(_row("top-1 %", f">= {b.min_accuracy}", v, None if v is None else v >= b.min_accuracy))
    if b.max_accuracy_drop is not None:
        v = current["accuracy_drop"]
        rows.append(_row("top-1 drop", f"<= {b.max_accuracy_drop}", v, None if v is None else v <= b.max_accuracy_drop))
    r = relative or Relative()
    if baseline is not None:
        if r.max_size_growth is not None:
            rows.append(_growth("size MB", current["size_mb"], baseline["size_mb"], r.max_size_growth))
        if r.max_latency_growth is not None:
            if current["device"] != baseline["device"] and not allow_device_mismatch:
                raise EdgekitError(f"latency was measured on another machine or setting (baseline "
                                   f"{baseline['device']}, "
                                   f"now {current['device']}): compare on the same device, or pass "
                                   "--allow-device-mismatch knowingly")
            rows.append(_growth("latency ms", current["latency_ms"], baseline["latency_ms"], r.max_latency_growth))
        if r.max_accuracy_drop is not None:
            cur, base = current["accuracy"], baseline["accuracy"]
            ok = None if cur is None or base is None else base - cur <= r.max_accuracy_drop
            rows.append(_row("top-1 % vs baseline", f">= {base} - {r.max_accuracy_drop}", cur, ok))
    if not rows:
        raise EdgekitError("no limit to check: pass --budget FILE and/or --baseline REPORT with --max-*-growth "
                           "or --max-accuracy-drop")
    return rows


def _growth(name: str, cur, base, pct: float) -> Row:
    if cur is None or base is None:
        return _row(f"{name} vs baseline", f"+{pct}%", cur, None)
    limit = base * (1 + pct / 100)
    return _row(f"{name} vs baseline", f"<= {limit:.3f} ({base:.3f} +{pct}%)", cur, cur <= limit)


def passed(rows: list[Row]) -> bool:
    return all(r.verdict == "pass" for r in rows)


def markdown(rows: list[Row], title: str) -> str:
    lines = [f"### {title}: {'pass' if passed(rows) else 'REGRESSION'}", "", "| metric | limit | value | verdict |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {r.metric} | {r.limit} | {r.value} | {r.verdict} |" for r in rows]
    return "\n".join(lines) + "\n"


def junit(rows: list[Row], name: str) -> str:
    from xml.sax.saxutils import escape, quoteattr

    failures = sum(r.verdict != "pass" for r in rows)
    cases = []
    for r in rows:
        body = "" if r.verdict == "pass" else (
            f"<failure message={quoteattr(f'{r.metric}: {r.value} vs {r.limit} ({r.verdict})')}>"
            f"{escape(r.verdict)}</failure>")
        cases.append(f'  <testcase classname={quoteattr(name)} name={quoteattr(r.metric)}>{body}</testcase>')
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("edgekit check " + name)} '
            f'tests="{len(rows)}" failures="{failures}">\n' + "\n".join(cases) + "\n</testsuite>\n")
