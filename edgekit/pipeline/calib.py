"""Where calibration images come from: a folder, preprocessed tensors, a user's reader, or the built-in photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.images import builtin_photos
from ..errors import EdgekitError
from ..models.source import ModelSource
from ..progress import console


@dataclass
class CalibOptions:
    # folder of images, .npy/.npz of preprocessed tensors, or (from Python) a reader with get_next() or an
    # iterable of preprocessed batches, read once (up to ``size`` samples, in its order)
    data: object | None = None
    size: int = 512
    seed: int = 0
    cache: str | None = None  # cache file; default calibration/cache/<model>-<key>.json


def calibration_set(source: ModelSource, opts: CalibOptions, notes: list[str], progress=None):
    from ..data import calibration

    if opts.size < 1:
        raise EdgekitError(f"--calib-size {opts.size}: need at least 1 image")
    if opts.data is None:
        cal = calibration.from_folder(builtin_photos(), source.preprocess, opts.size, opts.seed, kind="builtin",
                                      progress=progress)
        cal.warnings.insert(0, f"calibrated on edgekit's {len(cal)} built-in photos, a small fallback: pass "
                               "--calib-data with a few hundred images of your own domain")
    elif not isinstance(opts.data, (str, Path)):
        cal = calibration.from_reader(opts.data, opts.size)
    elif str(opts.data).endswith((".npy", ".npz")):
        cal = calibration.from_tensors(opts.data, source.input_shape, opts.size, opts.seed)
    else:
        cal = calibration.from_folder(opts.data, source.preprocess, opts.size, opts.seed, progress=progress)
    if list(cal.shape) != list(source.input_shape[1:]):
        raise EdgekitError(f"calibration reader gave samples of shape {list(cal.shape)}; the model needs "
                           f"{source.input_shape[1:]}: preprocess them to the model's input")
    notes.extend(cal.warnings)
    for w in cal.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    return cal
