"""Small steps every job shares: the evaluation images and their notes, ONNX loading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.images import ImageSet, builtin_photos, scan
from ..models.source import ModelSource


def _images(source: ModelSource, eval_data: str | os.PathLike | None, max_images: int | None,
            notes: list[str]) -> ImageSet:
    if eval_data is None:
        images = scan(builtin_photos())
        notes.append(f"checked on edgekit's {len(images)} built-in photos; pass --eval-data for your own images")
    else:
        images = scan(eval_data, source.categories, source.num_classes)
    if max_images and len(images) > max_images:
        # an even spread over the sorted list keeps every class folder represented
        idx = np.linspace(0, len(images) - 1, max_images).round().astype(int)
        images = images.subset(sorted(set(idx.tolist())))
    return images


def _image_notes(images: ImageSet, notes: list[str]) -> None:
    if images.skipped:
        notes.append(f"skipped {len(images.skipped)} non-image files in {images.root} "
                     f"(e.g. {images.skipped[0].name})")
    if images.converted:
        notes.append("converted to RGB: " + ", ".join(f"{n} {mode}" for mode, n in images.converted.items()))


def _read_meta(path: Path) -> dict:
    from ..graph.info import load_checked, read_meta

    return read_meta(load_checked(path))


def _load(path: Path):
    from ..graph.info import load_checked

    return load_checked(path)
