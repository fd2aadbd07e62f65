"""ADAPTERS: the only places the mobile-formats stage reads the export's evaluation arrays.

Everything else in ``formats.py`` and ``mobile_int8.py`` takes a *batch source*: a function that returns a fresh
iterable of ``(x, y or None)`` batches, plus small bounded arrays where a few images are enough (timing, the
on-device samples). When the evaluation data becomes streamed, index-based image sets (issue #28), only the four
functions below change: ``eval_batches``, ``few_images``, ``judge_sets`` (which reads ``pipeline/int8.py``'s
``Judge`` arrays) and ``calibration_array`` (bounded by --calib-size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

Batches = Callable[[], Iterable[tuple[np.ndarray, "np.ndarray | None"]]]


def _batches_of(x: np.ndarray, y: np.ndarray | None, size: int = 32) -> Batches:
    def gen():
        for i in range(0, len(x), size):
            yield x[i:i + size], None if y is None else y[i:i + size]
    return gen


def eval_batches(ctx) -> Batches:
    """ADAPTER (ctx.x, ctx.y): the evaluation images in batches, labels only where accuracy means something."""
    return _batches_of(ctx.x, ctx.y if ctx.labelled else None)


def few_images(ctx, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """ADAPTER (ctx.x, ctx.y): the first ``n`` evaluation images, for timing and the on-device samples."""
    return np.ascontiguousarray(ctx.x[:n]), (None if ctx.y is None else ctx.y[:n])


@dataclass
class JudgeSets:
    """The INT8 guard's images: it chooses on ``selection`` and reports ``held_out`` (labelled or not)."""

    selection: Batches
    held_out: Batches
    n_selection: int
    n_held_out: int
    labelled: bool
    basis: str
    subset: np.ndarray  # a few selection images for the per-layer ranking (bounded: 64)


def judge_sets(ctx, cal) -> JudgeSets:
    """ADAPTER (pipeline/int8.py's Judge arrays): the same selection/held-out split the ONNX guard uses."""
    from .int8 import judge_images

    j = judge_images(ctx.source, ctx.x, ctx.y, ctx.images, cal, ctx.progress)
    return JudgeSets(_batches_of(j.sel_x, j.sel_y), _batches_of(j.held_x, j.held_y), len(j.sel_x), len(j.held_x),
                     j.labelled, j.basis, np.ascontiguousarray(j.sel_x[:64]))


def calibration_array(cal) -> np.ndarray:
    """ADAPTER (CalibrationSet.x, bounded by --calib-size): PT2E observes these images in batches."""
    return cal.x
