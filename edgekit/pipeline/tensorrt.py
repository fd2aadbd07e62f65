"""The TensorRT engine stage of an export: build on this GPU, check it against its ONNX file, time beside PyTorch.

An engine that computes something else than its file fails the export (exit 1) with a one-line reason: the check
compares the engine's top-1 with onnxruntime's on the same file, image by image, under ``engine_check``'s rule.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BudgetExceededError
from ..measure.quality import run_batched
from ..measure.timing import TimingOptions
from ..stats import accuracy
from .bundle import board_samples


def engine_stage(ctx, onnx_path: Path, precision: str, build: dict) -> dict:
    """Build the TensorRT engine from the exported ONNX (the Q/DQ or FP16 one when made), on this GPU, and
    measure it on ``board_samples``: flips against onnxruntime on the same file, agreement with FP32 (and
    accuracy), then the side by side with PyTorch on CUDA."""
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..backends.tensorrt.build import engine_from_onnx
    from ..backends.tensorrt.options import BuildOptions
    from ..backends.tensorrt.runner import TensorRTRunner
    from ..measure.gpu import engine_gpu_rows, relative_to, torch_cuda_rows
    from ..stats import agreement
    from .board import _logits
    from .engine_check import flip_failure, flips, tolerance

    source, fp32_path, notes, progress = ctx.source, ctx.fp32_path, ctx.notes, ctx.progress
    x, y = board_samples(ctx)
    timing = TimingOptions(warmup=20, repeats=100)  # a GPU settles slower than a CPU
    opts = BuildOptions(precision=precision, **build)
    engine_path = onnx_path.with_suffix(".engine")
    built = engine_from_onnx(onnx_path, engine_path, opts, cache_dir=Path.home() / ".cache" / "edgekit" / "engines")
    notes += built.get("notes", [])
    timing_cache = engine_path.with_suffix(".timing.cache")
    with OnnxRuntimeRunner(fp32_path) as r:
        ref = run_batched(r, x)
    with OnnxRuntimeRunner(onnx_path) as r:
        same_file = run_batched(r, x)
    with TensorRTRunner(engine_path, dla_core=opts.dla_core) as r:
        logits = _logits(r, x)
        failure = flip_failure(logits, same_file, f"the engine {engine_path.name} disagrees with {onnx_path.name}")
        if failure:
            raise BudgetExceededError(failure)
        rows = engine_gpu_rows(r, x, timing, progress)
        max_batch = r.max_batch
        backend = r.describe()
    rows += torch_cuda_rows(source, onnx_path, x, max_batch, timing, progress, notes)
    quality = {"agreement_with_fp32": agreement(logits, ref), "flips_vs_onnx": flips(logits, same_file),
               "tolerance": tolerance(len(x))}
    if y is not None:
        quality["accuracy"] = accuracy(logits, y)
    return {"file": engine_path.name, "timing_cache": timing_cache.name if timing_cache.exists() else None,
            "build": built, "backend": backend, **quality, "gpu_side_by_side": relative_to(rows, "torch fp32")}
