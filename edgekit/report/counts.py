"""Figures on few images are said as counts: on 3 images one image moves a percentage by 33 points, so "2 of 3" is
what was seen and "66.67%" a false precision (and a drop on them, noise)."""

from __future__ import annotations

COUNTS_BELOW = 30  # on fewer images a figure is said as a count ("2 of 3"): one image would move it 3+ points


def share(pct: float | None, n: int | None, digits: int = 2) -> str:
    """``pct`` percent of ``n`` images: a percentage, or a count on fewer than COUNTS_BELOW images."""
    if pct is None:
        return "-"
    if n is not None and n < COUNTS_BELOW:
        return f"{round(pct * n / 100)} of {n}"
    return f"{pct:.{digits}f}%"


def few(n: int | None) -> bool:
    return n is not None and n < COUNTS_BELOW
