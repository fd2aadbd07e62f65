"""TensorRT 10.x and 11.x: engine_from_onnx (strongly typed, explicit Q/DQ INT8), its cache, and the inspector.

Everything that decides (version switches, flags, cache keys, trtexec lines) is a pure function testable
without a GPU; ``tensorrt``, ``cuda.bindings`` and ``torch.cuda`` are imported only inside the functions
that touch the device. A loader builds; ``runner.TensorRTRunner`` only runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from ...errors import EdgekitError, MissingDependencyError
from .layers import hidden_note, layer_summary, precision_failures
from .onnx_rules import check as check_parser_rules
from .onnx_rules import graph_facts
from .options import BuildOptions, build_recipe, no_dla_message, parse_version, require_gpu
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
    """Build (or reuse from ``cache_dir``) a serialized engine; returns what was built and how. A cached engine
    this TensorRT cannot deserialize (corrupt, or written by another version) is rebuilt, and the report says so."""
    trt = require_gpu()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    from ...fsutil import atomic_write_bytes, sha256_file

    check_parser_rules(onnx_path)
    version = trt.__version__
    gpu, cc = gpu_identity()
    graph = graph_facts(onnx_path)
    recipe = build_recipe(opts, parse_version(version), graph)
    key = cache_key(version, gpu, cc, opts, sha256_file(onnx_path))
    cached = Path(cache_dir) / f"{key}.engine" if cache_dir else None
    info = {"tensorrt": version, "gpu": gpu, "compute_capability": list(cc), "key": key, "recipe": recipe,
            "options": asdict(opts), "notes": []}
    if cached is not None and cached.exists():
        plan = cached.read_bytes()
        try:
            layers = _checked_layers(trt, plan, recipe, opts, f"cached engine {cached}")
        except StaleEngineError as exc:
            info["notes"].append(f"the cached engine was not usable and was rebuilt: {exc}")
        else:
            atomic_write_bytes(engine_path, plan)
            return {**info, "cache": "hit", "build_s": 0.0, **_layer_facts(layers, recipe, opts, info["notes"])}
    built, build_s, log = _build(trt, onnx_path, engine_path, opts, recipe)
    layers = _checked_layers(trt, built, recipe, opts, f"{engine_path.name} from {onnx_path.name}")
    atomic_write_bytes(engine_path, built)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, built)
    return {**info, "cache": "miss" if not info["notes"] else "rebuilt", "build_s": build_s,
            **_layer_facts(layers, recipe, opts, info["notes"]), "warnings": [m for _, m in log.messages][:20]}


def _build(trt, onnx_path: Path, engine_path: Path, opts: BuildOptions, recipe: dict):
    """The serialized plan, its build time and the logger (the plan is not yet checked)."""
    from ...fsutil import atomic_write_bytes

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
            raise EdgekitError(f"--dla-core {opts.dla_core}: {no_dla_message(parse_version(trt.__version__))}")
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
    if cache is None:  # a timing cache this TensorRT cannot read: start an empty one (it is only a speed-up)
        cache = config.create_timing_cache(b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.messages.append(("WARNING", f"the timing cache {timing_file.name} was not used"))
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        errs = "; ".join(m for _, m in log.messages[-3:])
        raise EdgekitError(f"TensorRT could not build an engine from {onnx_path.name} ({errs[:300]})")
    build_s = time.perf_counter() - t0
    kept = config.get_timing_cache()
    if kept is not None:  # none when TensorRT did not take the one given
        atomic_write_bytes(timing_file, bytes(kept.serialize()))
    return bytes(plan), build_s, log


class StaleEngineError(EdgekitError):
    """A serialized engine this TensorRT and GPU cannot load (deserialize_cuda_engine returned None)."""


def _checked_layers(trt, plan: bytes, recipe: dict, opts: BuildOptions, what: str) -> dict:
    """The plan's layer summary, or an error when it lacks the precision or device asked for."""
    layers = layer_summary(inspect_engine(trt, plan, recipe["profile"], recipe.get("dla_core")))
    failures = precision_failures(layers, opts.precision, recipe["device"])
    if failures:
        raise EdgekitError(f"{what}: {'; '.join(failures)}; the engine was not kept (check the Q/DQ or FP16 graph "
                           "with `edgekit profile`, and TensorRT's warnings)")
    return layers


def _layer_facts(layers: dict, recipe: dict, opts: BuildOptions | None = None, notes: list | None = None) -> dict:
    """The report's view: counts, and the layers that fell back to the GPU in a DLA build; a note when Myelin hides
    the precision asked for."""
    note = hidden_note(layers, opts.precision) if opts is not None else None
    if note and notes is not None:
        notes.append(note)
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


def inspect_engine(trt, plan: bytes, profile: dict | None, dla_core: int | None = None) -> dict:
    """The inspector's JSON for a plan built with DETAILED; dynamic shapes are set to the profile's opt first,
    else the formats read "N/A due to dynamic shapes"."""
    log = _logger(trt)
    runtime = trt.Runtime(log)
    if dla_core is not None:
        runtime.DLA_core = int(dla_core)
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        said = "; ".join(m for _, m in log.messages[-2:]) or "no message"
        raise StaleEngineError(f"TensorRT {trt.__version__} cannot deserialize it ({said[:240]})")
    inspector = engine.create_engine_inspector()
    if profile:
        ctx = engine.create_execution_context()
        if not ctx.set_input_shape(profile["input"], profile["opt"]):
            raise EdgekitError(f"TensorRT refused the profile's opt shape {profile['opt']} for {profile['input']}")
        inspector.execution_context = ctx
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
