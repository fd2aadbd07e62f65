"""The TensorRT engine stage of an export: build on this GPU, check against FP32, time beside PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..measure.quality import run_batched
from ..measure.timing import TimingOptions
from ..stats import accuracy


def engine_stage(ctx, onnx_path: Path, precision: str, build: dict) -> dict:
    """Build the TensorRT engine from the exported ONNX (the Q/DQ or FP16 one when made), on this GPU, and
    measure it: accuracy or agreement with FP32 onnxruntime, then the side by side with PyTorch on CUDA."""
    from ..backends.onnxruntime import OnnxRuntimeRunner
    from ..backends.tensorrt.build import engine_from_onnx
    from ..backends.tensorrt.options import BuildOptions
    from ..backends.tensorrt.runner import TensorRTRunner
    from ..measure.gpu import engine_gpu_rows, relative_to, torch_cuda_rows
    from ..stats import agreement

    source, fp32_path, notes, progress = ctx.source, ctx.fp32_path, ctx.notes, ctx.progress
    x, y = ctx.images.array()  # the GPU side is reworked under issue #31; until then it reads the set at once
    timing = TimingOptions(warmup=20, repeats=100)  # a GPU settles slower than a CPU
    opts = BuildOptions(precision=precision, **build)
    engine_path = onnx_path.with_suffix(".engine")
    built = engine_from_onnx(onnx_path, engine_path, opts, cache_dir=Path.home() / ".cache" / "edgekit" / "engines")
    timing_cache = engine_path.with_suffix(".timing.cache")
    with OnnxRuntimeRunner(fp32_path) as r:
        ref = run_batched(r, x)
    with TensorRTRunner(engine_path) as r:
        logits = np.concatenate([r.infer(x[i:i + 1]) for i in range(len(x))])
        rows = engine_gpu_rows(r, x, timing, progress)
        max_batch = r.max_batch
        backend = r.describe()
    rows += torch_cuda_rows(source, onnx_path, x, max_batch, timing, progress, notes)
    quality = {"agreement_with_fp32": agreement(logits, ref)}
    if y is not None and source.pretrained:
        quality["accuracy"] = accuracy(logits, y)
    return {"file": engine_path.name, "timing_cache": timing_cache.name if timing_cache.exists() else None,
            "build": built, "backend": backend, **quality, "gpu_side_by_side": relative_to(rows, "torch fp32")}
