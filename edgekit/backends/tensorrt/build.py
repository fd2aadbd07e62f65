"""TensorRT 10.x and 11.x: engine_from_onnx (strongly typed, explicit Q/DQ INT8) and a tensor-name runner.

Everything that decides (version switches, flags, cache keys, trtexec lines) is a pure function testable
without a GPU; ``tensorrt``, ``cuda.bindings`` and ``torch.cuda`` are imported only inside the functions
that touch the device.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from ...errors import EdgekitError, MissingDependencyError
from .layers import layer_summary, precision_failures
from .options import BuildOptions, build_recipe, graph_facts, no_dla_message, parse_version, require_gpu
from .trtexec import cache_key, timing_cache_path


def _logger(trt):
    """A TensorRT logger that keeps warnings and errors (defined here: it subclasses a TensorRT type)."""

    class _Log(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.WARNING:
                self.messages.append((str(severity), msg))

    return _Log()


def engine_from_onnx(onnx_path: str | Path, engine_path: str | Path, opts: BuildOptions,
                     cache_dir: str | Path | None = None) -> dict:
    """Build (or reuse from ``cache_dir``) a serialized engine; returns what was built and how."""
    trt = require_gpu()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    from ...fsutil import atomic_write_bytes, sha256_file

    version = trt.__version__
    gpu, cc = gpu_identity()
    graph = graph_facts(onnx_path)
    recipe = build_recipe(opts, parse_version(version), graph)
    key = cache_key(version, gpu, cc, opts, sha256_file(onnx_path))
    cached = Path(cache_dir) / f"{key}.engine" if cache_dir else None
    info = {"tensorrt": version, "gpu": gpu, "compute_capability": list(cc), "key": key, "recipe": recipe,
            "options": asdict(opts)}
    if cached is not None and cached.exists():
        plan = cached.read_bytes()
        layers = _checked_layers(trt, plan, recipe, opts, f"cached engine {cached}")
        atomic_write_bytes(engine_path, plan)
        return {**info, "cache": "hit", "build_s": 0.0, **_layer_facts(layers, recipe)}
    log = _logger(trt)
    builder = trt.Builder(log)
    flags = 0
    for f in recipe["network_flags"]:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, f))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EdgekitError(f"TensorRT cannot parse {onnx_path}: {' | '.join(errors)[:400]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, recipe["workspace_bytes"])
    for f in recipe["builder_flags"]:
        config.set_flag(getattr(trt.BuilderFlag, f))
    if recipe["device"] == "DLA":
        if builder.num_DLA_cores == 0:
            raise EdgekitError(f"--dla-core {opts.dla_core}: {no_dla_message(parse_version(version))}")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = opts.dla_core
    if recipe["builder_optimization_level"] is not None:
        config.builder_optimization_level = recipe["builder_optimization_level"]
    if recipe["profile"]:
        p = recipe["profile"]
        prof = builder.create_optimization_profile()
        prof.set_shape(p["input"], p["min"], p["opt"], p["max"])
        config.add_optimization_profile(prof)
    # per-layer precision and device in the inspector (names only otherwise: DLA fallback would be invisible)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    timing_file = timing_cache_path(engine_path)
    cache = config.create_timing_cache(timing_file.read_bytes() if timing_file.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        errs = "; ".join(m for _, m in log.messages[-3:])
        raise EdgekitError(f"TensorRT could not build an engine from {onnx_path.name} ({errs[:300]})")
    build_s = time.perf_counter() - t0
    layers = _checked_layers(trt, bytes(plan), recipe, opts, f"{engine_path.name} from {onnx_path.name}")
    atomic_write_bytes(engine_path, bytes(plan))
    atomic_write_bytes(timing_file, bytes(config.get_timing_cache().serialize()))
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, bytes(plan))
    return {**info, "cache": "miss", "build_s": build_s, **_layer_facts(layers, recipe),
            "warnings": [m for _, m in log.messages][:20]}


def _checked_layers(trt, plan: bytes, recipe: dict, opts: BuildOptions, what: str) -> dict:
    """The plan's layer summary, or an error when it lacks the precision or device asked for."""
    layers = layer_summary(inspect_engine(trt, plan, recipe["profile"]))
    failures = precision_failures(layers, opts.precision, recipe["device"])
    if failures:
        raise EdgekitError(f"{what}: {'; '.join(failures)}; the engine was not kept (check the Q/DQ or FP16 graph "
                           "with `edgekit profile`, and TensorRT's warnings)")
    return layers


def _layer_facts(layers: dict, recipe: dict) -> dict:
    """The report's view: counts, and the layers that fell back to the GPU in a DLA build."""
    counts = {k: v for k, v in layers.items() if k != "gpu_layers"}
    return {"layers": counts, "dla_gpu_fallback_layers": layers["gpu_layers"] if recipe["device"] == "DLA" else []}


def gpu_identity() -> tuple[str, tuple[int, int]]:
    """Device 0's name and compute capability, from whichever CUDA library sees it."""
    from .cudamem import installed_libraries

    libs = installed_libraries()
    if "cuda-python" in libs:
        from .cudamem import _call, _cudart

        prop = _call(_cudart().cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
        name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        return name.strip("\x00").strip(), (int(prop.major), int(prop.minor))
    if "pycuda" in libs:
        import pycuda.driver as drv

        drv.init()
        dev = drv.Device(0)
        return dev.name(), tuple(dev.compute_capability())
    if "torch" in libs:
        import torch

        return torch.cuda.get_device_name(0), tuple(torch.cuda.get_device_capability(0))
    raise MissingDependencyError("no CUDA library sees a GPU here: run `edgekit doctor` for what each one answered")


def inspect_engine(trt, plan: bytes, profile: dict | None) -> dict:
    """The inspector's JSON for a plan built with DETAILED; dynamic shapes are set to the profile's opt first,
    else the formats read "N/A due to dynamic shapes"."""
    engine = trt.Runtime(_logger(trt)).deserialize_cuda_engine(plan)
    inspector = engine.create_engine_inspector()
    if profile:
        ctx = engine.create_execution_context()
        ctx.set_input_shape(profile["input"], profile["opt"])
        inspector.execution_context = ctx
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
