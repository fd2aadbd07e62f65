"""Where the mobile-formats stage gets its images: the export's streamed evaluation set (``ctx.images``), the INT8
guard's selection and held-out halves (``pipeline/int8.py``'s ``Judge``) and the calibration set, each as a *batch
source* (a function that returns a fresh iterable of ``(x, y or None)`` batches), plus small bounded arrays where a
few images are enough (timing, the on-device samples). No set is ever held whole in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

Batches = Callable[[], Iterable[tuple[np.ndarray, "np.ndarray | None"]]]


def _batches_of(images, labelled: bool = True) -> Batches:
    """A batch source over an ``ImageStream``; without ``labelled``, the labels are left out."""
    def gen():
        for x, y in images.batches():
            yield x, (y if labelled else None)
    return gen


def eval_batches(ctx) -> Batches:
    """The evaluation images in batches, labels only where accuracy means something."""
    return _batches_of(ctx.images, ctx.labelled)


def few_images(ctx, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The first ``n`` evaluation images (and their labels), for timing and the on-device samples."""
    x, y = ctx.images.subset(range(min(n, len(ctx.images)))).array()
    return np.ascontiguousarray(x), y


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
    """The same selection/held-out split the ONNX guard uses (``int8.judge_images``)."""
    from .int8 import judge_images

    j = judge_images(ctx, cal)
    return JudgeSets(_batches_of(j.sel, j.labelled), _batches_of(j.held, j.labelled), len(j.sel), len(j.held),
                     j.labelled, j.basis, np.ascontiguousarray(j.sel.head(64)))


def calibration_batches(cal) -> Callable[[], Iterable[np.ndarray]]:
    """The calibration samples (bounded by --calib-size) in batches of 32, for PT2E's observers: the batches of
    slicing one array of them, in the same order."""
    return lambda: cal.batches(32)
