"""Where calibration images come from: a folder, preprocessed tensors, or the built-in photos."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.images import builtin_photos
from ..errors import EdgekitError
from ..models.source import ModelSource
from ..progress import console


@dataclass
class CalibOptions:
    data: str | None = None  # folder of images, or .npy/.npz of preprocessed tensors
    size: int = 512
    seed: int = 0
    cache: str | None = None  # cache file; default calibration/cache/<model>-<key>.json


def calibration_set(source: ModelSource, opts: CalibOptions, notes: list[str]):
    from ..data import calibration

    if opts.size < 1:
        raise EdgekitError(f"--calib-size {opts.size}: need at least 1 image")
    if opts.data is None:
        cal = calibration.from_folder(builtin_photos(), source.preprocess, opts.size, opts.seed, kind="builtin")
        cal.warnings.insert(0, f"calibrated on edgekit's {len(cal.x)} built-in photos, a small fallback: pass "
                               "--calib-data with a few hundred images of your own domain")
    elif str(opts.data).endswith((".npy", ".npz")):
        cal = calibration.from_tensors(opts.data, source.input_shape, opts.size, opts.seed)
    else:
        cal = calibration.from_folder(opts.data, source.preprocess, opts.size, opts.seed)
    notes.extend(cal.warnings)
    for w in cal.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    return cal
