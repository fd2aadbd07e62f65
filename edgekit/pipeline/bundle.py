"""The Jetson bundle stage of an export: the low-precision file and what the board must reproduce."""

from __future__ import annotations

from pathlib import Path

from ..measure.quality import run_batched
from ..report import document as report_mod


def bundle_stage(ctx, lowp: Path, precision: str, build: dict, budgets: dict | None) -> dict:
    """The bundle for the board: the low-precision file, its build options, and the logits the board must
    reproduce (FP32 and low-precision, on up to 256 of the evaluation images)."""
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from .jetson import BundleModel, BundleSamples, write_bundle

    source, tmp, fp32_path, threads = ctx.source, ctx.tmp, ctx.fp32_path, ctx.threads
    xs, y = ctx.images.subset(range(min(256, len(ctx.images)))).array()  # a bounded sample
    with OnnxRuntimeRunner(fp32_path, threads=threads) as r:
        ref = run_batched(r, xs)
    with OnnxRuntimeRunner(lowp, threads=threads) as r:
        got = run_batched(r, xs)
    labels = y if (y is not None and source.pretrained) else None
    model = BundleModel(source.name, lowp, precision, source.preprocess.to_dict(), source.categories,
                        source.num_classes)
    manifest = write_bundle(tmp / "bundle", model, BundleSamples(xs, labels, ref, got), build, budgets,
                            report_mod.environment(threads))
    return {"folder": "bundle", "expected": manifest["expected"], "trtexec": manifest["trtexec"]}
