"""The Jetson bundle stage of an export: the low-precision file and what the board must reproduce."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..measure.quality import run_batched
from ..report import document as report_mod
from .engine_check import SAMPLES, spread_indices


def board_samples(ctx, n: int = SAMPLES) -> tuple[np.ndarray, np.ndarray | None]:
    """Up to ``n`` evaluation images spread over the classes (by index, from the image set's labels), read and
    preprocessed as for evaluation, and their labels when accuracy means something.

    It picks indices, then reads only those images (a bounded sample of the streamed evaluation set).
    """
    images = ctx.images
    idx = spread_indices(images.labels, n, len(images))
    x, y = images.subset(idx).array()
    return x, (y if (y is not None and ctx.source.pretrained) else None)


def bundle_stage(ctx, lowp: Path, precision: str, build: dict, budgets: dict | None) -> dict:
    """The bundle for the board: the low-precision file (checked against TensorRT's parser rules), its build
    options, and the logits the board must reproduce (FP32 and low-precision) on ``board_samples``."""
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from .jetson import BundleModel, BundleSamples, write_bundle

    source, tmp, fp32_path, threads = ctx.source, ctx.tmp, ctx.fp32_path, ctx.threads
    xs, labels = board_samples(ctx)
    with OnnxRuntimeRunner(fp32_path, threads=threads) as r:
        ref = run_batched(r, xs)
    with OnnxRuntimeRunner(lowp, threads=threads) as r:
        got = run_batched(r, xs)
    model = BundleModel(source.name, lowp, precision, source.preprocess.to_dict(), source.categories,
                        source.num_classes)
    manifest = write_bundle(tmp / "bundle", model, BundleSamples(xs, labels, ref, got), build, budgets,
                            report_mod.environment(threads))
    return {"folder": "bundle", "expected": manifest["expected"], "tolerance": manifest["tolerance"],
            "trtexec": manifest["trtexec"]}
