"""The Jetson bundle stage of an export: the low-precision file and what the board must reproduce."""

from __future__ import annotations

from pathlib import Path

from ..errors import EdgekitError
from ..measure.quality import run_batched
from ..models.source import ModelSource
from ..report import document as report_mod


def _bundle_stage(tmp: Path, source: ModelSource, fp32_path: Path, extra: dict, x, y, build: dict,
                  threads) -> dict:
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from .jetson import BundleModel, BundleSamples, write_bundle

    build = dict(build)
    budgets = build.pop("budgets", None)  # a recipe's latency budget, for the board to check
    precision = "int8" if "int8" in extra else "fp16" if "fp16" in extra else None
    if precision is None:
        raise EdgekitError("a Jetson bundle carries an INT8 or FP16 model: add --int8 or --fp16")
    if precision == "int8" and extra["int8"]["config"]["target"] != "tensorrt":
        raise EdgekitError("a Jetson bundle needs TensorRT's symmetric Q/DQ: use --target jetson")
    lowp = tmp / extra[precision]["file"]
    xs = x[:256]
    with OnnxRuntimeRunner(fp32_path, threads=threads) as r:
        ref = run_batched(r, xs)
    with OnnxRuntimeRunner(lowp, threads=threads) as r:
        got = run_batched(r, xs)
    labels = y[:256] if (y is not None and source.pretrained) else None
    model = BundleModel(source.name, lowp, precision, source.preprocess.to_dict(), source.categories,
                        source.num_classes)
    manifest = write_bundle(tmp / "bundle", model, BundleSamples(xs, labels, ref, got), build, budgets,
                            report_mod.environment(threads))
    return {"folder": "bundle", "expected": manifest["expected"], "trtexec": manifest["trtexec"]}
