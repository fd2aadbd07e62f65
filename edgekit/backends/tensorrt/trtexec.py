"""The trtexec line that reproduces a build, and the engine cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from .options import BuildOptions, GraphFacts, build_recipe


def cache_key(trt_version: str, gpu_name: str, compute_capability: tuple[int, int], opts: BuildOptions,
              onnx_sha256: str) -> str:
    """Engines are not portable across TensorRT versions or GPUs: all of these go into the key."""
    fields = {"trt": trt_version, "gpu": gpu_name, "cc": list(compute_capability), "opts": asdict(opts),
              "onnx": onnx_sha256}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


# trtexec's timing, pinned so that 10.x and 11.x measure the same thing: GPU compute with no host<->device
# copies, CUDA graphs, spin wait (11.x's defaults, whose flags 11.x keeps as deprecated no-ops); --warmUp is
# milliseconds, --iterations a minimum count of timed runs. edgekit's own build report has both end-to-end
# (with copies) and GPU compute time.
TRTEXEC_WARMUP_MS = 500
TRTEXEC_ITERATIONS = 500


def timing_cache_path(engine: str | Path) -> Path:
    """The timing cache beside an engine, one name for the Python build and the trtexec line."""
    return Path(engine).with_suffix(".timing.cache")


def trtexec_command(onnx: str, engine: str, opts: BuildOptions, version: int | tuple, graph: GraphFacts) -> str:
    """The trtexec line that builds and times what engine_from_onnx builds, for TensorRT ``version`` (a tuple,
    or a major meaning its .0 release)."""
    version = (version, 0, 0) if isinstance(version, int) else tuple(version)
    major = version[0]
    recipe = build_recipe(opts, version, graph)
    parts = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}", f"--memPoolSize=workspace:{opts.workspace_mb}M",
             f"--timingCacheFile={timing_cache_path(engine).as_posix()}"]
    if "STRONGLY_TYPED" in recipe["network_flags"]:  # 10.x only: 11.x is always strongly typed
        parts.append("--stronglyTyped")
    if "FP16" in recipe["builder_flags"]:
        parts.append("--fp16")
    if opts.sparsity:
        parts.append("--sparsity=enable")
    if opts.dla_core is not None:
        parts += [f"--useDLACore={opts.dla_core}", "--allowGPUFallback"]
    if opts.builder_optimization_level is not None:
        parts.append(f"--builderOptimizationLevel={opts.builder_optimization_level}")
    if recipe["profile"]:
        p = recipe["profile"]
        shape = lambda s: "x".join(map(str, s))  # noqa: E731
        parts += [f"--minShapes={p['input']}:{shape(p['min'])}", f"--optShapes={p['input']}:{shape(p['opt'])}",
                  f"--maxShapes={p['input']}:{shape(p['max'])}"]
    parts += [f"--warmUp={TRTEXEC_WARMUP_MS}", f"--iterations={TRTEXEC_ITERATIONS}", "--percentile=90,99",
              "--profilingVerbosity=detailed"]
    if major < 11:  # say on 10.x what 11.x does by default; 11.x turns CUDA graphs off with --useDLACore
        parts += ["--noDataTransfers", "--useSpinWait"]
        if opts.dla_core is None:
            parts.append("--useCudaGraph")
    return " ".join(parts)
