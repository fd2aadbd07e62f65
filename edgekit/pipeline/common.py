"""Small steps every job shares: the evaluation images and their notes, ONNX loading."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import ImageSet, builtin_photos, scan
from ..measure.timing import TimingOptions
from ..models.source import ModelSource


def images_for(source: ModelSource, eval_data: str | os.PathLike | None, max_images: int | None,
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


def image_notes(images: ImageSet, notes: list[str]) -> None:
    if images.skipped:
        notes.append(f"skipped {len(images.skipped)} non-image files in {images.root} "
                     f"(e.g. {images.skipped[0].name})")
    if images.converted:
        notes.append("converted to RGB: " + ", ".join(f"{n} {mode}" for mode, n in images.converted.items()))


def read_onnx_meta(path: Path) -> dict:
    from ..graph.info import load_checked, read_meta

    return read_meta(load_checked(path))


def load_onnx(path: Path):
    from ..graph.info import load_checked

    return load_checked(path)


def stream_summary(stream) -> dict:
    """The report's ``images`` section: the set, and where its decoded copy was kept when it was read again."""
    doc = stream.images.summary()
    cache = stream.describe_cache()
    if cache is not None:
        doc["decoded_copy"] = {"bytes": cache["bytes"], "kept_in": "memory" if cache["where"] == "memory"
                               else "a temporary file (removed)"}
    return doc


@dataclass
class StageContext:
    """What the stages of one export share: the opened model, the staging folder with the verified FP32 file,
    the evaluation images (an ``ImageStream``: read in batches, never held whole), the notes for the report, the
    progress display, how to time, and the FP32 file's top-1 class per evaluation image."""

    source: ModelSource
    tmp: Path
    fp32_path: Path
    images: Any  # an edgekit.data.stream.ImageStream
    notes: list[str]
    progress: Any
    threads: int | None = None
    timing: TimingOptions = field(default_factory=lambda: TimingOptions(warmup=10, repeats=50))
    fp32_top1: np.ndarray | None = None

    @property
    def labelled(self) -> bool:
        """Accuracy means something: labels, and weights that were trained."""
        return self.images.labelled and self.source.pretrained

    def sample(self, n: int = 1) -> np.ndarray:
        """The first ``n`` evaluation images, preprocessed: a bounded sample for timing and spot checks."""
        return self.images.head(n)
