"""TensorRT 10.x and 11.x: engine_from_onnx (strongly typed, explicit Q/DQ INT8) and a tensor-name runner.

Everything that decides (version switches, flags, cache keys, trtexec lines) is a pure function testable
without a GPU; ``tensorrt``, ``cuda.bindings`` and ``torch.cuda`` are imported only inside the functions
that touch the device.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgekitError, MissingDependencyError
from .base import Runner
from .engine_layers import layer_summary, precision_failures  # noqa: F401  (pure; re-exported for callers)

PRECISIONS = ("fp32", "fp16", "int8")


def require_tensorrt():
    """The tensorrt module, or one line saying what is missing: the package, or a native library it loads."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(missing_tensorrt_message(exc)) from None
    return trt


def missing_tensorrt_message(exc: ImportError) -> str:
    """Tell "not installed" from "installed, but a native library (a .so) is missing" (pure, for tests)."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "tensorrt":
        return ("TensorRT is not installed: pip install 'edgekit[tensorrt]' (CUDA 12 wheels; 'edgekit[tensorrt-cu13]' "
                "for CUDA 13, driver 580.65+) on a machine with an NVIDIA GPU (on Jetson it comes with JetPack)")
    so = re.search(r"(lib[\w.+-]+\.so[\w.]*)", str(exc))
    what = f"its native library {so.group(1)} cannot be loaded" if so else f"it fails to import ({exc})"
    return (f"TensorRT's Python package is installed but {what}: install the matching TensorRT libraries "
            "(pip install tensorrt-cu12-libs / tensorrt-cu13-libs, or JetPack's TensorRT on a Jetson) or add "
            "their folder to LD_LIBRARY_PATH")


def require_gpu():
    """TensorRT and at least one CUDA device, or one line saying what is missing.

    A GPU exists when some library counts a device (``cudaGetDeviceCount`` > 0), not when a CUDA library
    imports: cuda-python imports fine on a machine without a driver.
    """
    trt = require_tensorrt()
    from .cudamem import no_device_reason, probe_devices

    why = no_device_reason(probe_devices())
    if why is not None:
        raise MissingDependencyError(f"TensorRT is installed but no NVIDIA GPU is reachable ({why}): run on the "
                                     "GPU machine or the Jetson")
    return trt


def parse_batch_profile(text: str) -> tuple[int, int, int]:
    """``--batch-profile 1,8,32``: the optimization profile's min, opt and max batch."""
    parts = [p.strip() for p in (text or "").split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise EdgekitError(f"--batch-profile {text!r}: give min,opt,max batch sizes, e.g. 1,8,32")
    lo, opt, hi = (int(p) for p in parts)
    if not 1 <= lo <= opt <= hi:
        raise EdgekitError(f"--batch-profile {text}: need 1 <= min <= opt <= max")
    return lo, opt, hi


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        raise EdgekitError(f"cannot read a TensorRT version from {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"
    workspace_mb: int = 1024
    dynamic_batch: tuple[int, int, int] | None = None  # min, opt, max
    sparsity: bool = False
    dla_core: int | None = None
    builder_optimization_level: int | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EdgekitError(f"TensorRT precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.dynamic_batch is not None:
            lo, opt, hi = self.dynamic_batch
            if not 1 <= lo <= opt <= hi:
                raise EdgekitError(f"--dynamic-batch {lo},{opt},{hi}: need 1 <= min <= opt <= max")
            if self.dla_core is not None:
                raise EdgekitError("DLA needs static shapes: drop --dynamic-batch or --dla-core")
        if self.dla_core is not None and self.precision == "fp32":
            raise EdgekitError("DLA runs FP16 or INT8 only: export with --fp16 or --int8 --target tensorrt")
        if self.builder_optimization_level is not None and not 0 <= self.builder_optimization_level <= 5:
            raise EdgekitError("--builder-optimization-level must lie in 0..5")


@dataclass(frozen=True)
class GraphFacts:
    """What the builder needs to know of the ONNX file (from edgekit.onnxinfo)."""

    precision: str  # fp32, fp16 (FP16 weights in the graph) or int8 (Q/DQ)
    qdq_nodes: int
    symmetric: bool  # every Q/DQ zero point is 0 and int8
    input_name: str
    input_shape: tuple  # with None for dynamic dims


def build_recipe(opts: BuildOptions, version: tuple[int, int, int], graph: GraphFacts) -> dict:
    """The TensorRT settings for ``opts`` on TensorRT ``version``: network flags, builder flags, device.

    TensorRT 11 removed implicit precision (BuilderFlag.FP16/INT8, calibrators): precision comes from the
    graph, in a strongly typed network. On 10.x, INT8 also comes only from Q/DQ (calibrators are deprecated
    since 10.1) and FP16 from BuilderFlag.FP16 on a float32 graph, or from an FP16 graph when strongly typed.
    """
    major = version[0]
    if major < 10:
        raise EdgekitError(f"TensorRT {'.'.join(map(str, version))} is too old: edgekit needs 10.x or 11.x")
    network_flags, builder_flags = [], []
    if opts.precision == "int8":
        if graph.qdq_nodes == 0:
            raise EdgekitError("TensorRT builds INT8 only from Q/DQ nodes: export with --int8 --target tensorrt")
        if not graph.symmetric:
            raise EdgekitError("the Q/DQ graph has asymmetric (uint8) activations, which TensorRT rejects: export "
                               "with --int8 --target tensorrt")
        network_flags.append("STRONGLY_TYPED")
    elif opts.precision == "fp16":
        if graph.precision == "fp16":
            network_flags.append("STRONGLY_TYPED")
        elif major >= 11:
            raise EdgekitError("TensorRT 11 takes FP16 from the graph only: export with --fp16 and build "
                               "model_fp16.onnx")
        else:
            builder_flags.append("FP16")
    else:
        if graph.precision != "fp32" or graph.qdq_nodes:
            raise EdgekitError(f"--precision fp32 asked for a {graph.precision} graph: build model.onnx, or ask "
                               f"for {graph.precision}")
        network_flags.append("STRONGLY_TYPED")
    if major >= 11:
        network_flags = []  # always strongly typed; the flag is deprecated and ignored
    if opts.sparsity:
        builder_flags.append("SPARSE_WEIGHTS")
    device = "GPU"
    if opts.dla_core is not None:
        if (11, 0) <= tuple(version[:2]) < (11, 4):
            raise EdgekitError(f"--dla-core: {no_dla_message(version)}")
        device = "DLA"
        builder_flags.append("GPU_FALLBACK")
    dynamic = any(d is None for d in graph.input_shape)
    if dynamic and opts.dynamic_batch is None:
        raise EdgekitError("the ONNX file has a dynamic batch: pass --dynamic-batch MIN,OPT,MAX for the engine's "
                           "optimization profile")
    if not dynamic and opts.dynamic_batch is not None:
        raise EdgekitError("--dynamic-batch needs an ONNX exported with --dynamic-batch")
    profile = None
    if opts.dynamic_batch is not None:
        rest = tuple(graph.input_shape[1:])
        profile = {"input": graph.input_name, **{k: (b, *rest) for k, b in zip(("min", "opt", "max"),
                                                                                 opts.dynamic_batch)}}
    return {"network_flags": network_flags, "builder_flags": builder_flags, "device": device,
            "dla_core": opts.dla_core, "workspace_bytes": opts.workspace_mb << 20, "profile": profile,
            "builder_optimization_level": opts.builder_optimization_level}


def no_dla_message(version: tuple[int, int, int]) -> str:
    """Why there is no DLA here, with the facts of TensorRT's DLA support per version and board."""
    v = ".".join(map(str, version))
    if (11, 0) <= tuple(version[:2]) < (11, 4):
        return (f"TensorRT {v} has no DLA support (none in 11.0-11.3; TensorRT 11 reaches Jetson from 11.4.1, on "
                "AGX Orin and Thor with JetPack 7.2.2+, DLA on AGX Orin; Orin on JetPack 6.x stays on TensorRT "
                "10.3): drop --dla-core")
    return (f"this device has no DLA (TensorRT {v} counts 0 DLA cores; the Orin Nano has none, AGX Orin and Orin NX "
            "have them, under TensorRT 11 only from 11.4.1 on JetPack 7.2.2+): drop --dla-core")


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


def graph_facts(onnx_path: Path) -> GraphFacts:
    import onnx
    from onnx import numpy_helper

    from ..onnxinfo import io_shapes, load_checked, read_meta

    m = load_checked(onnx_path)
    inits = {i.name: i for i in m.graph.initializer}
    q = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    symmetric = True
    for n in q:
        if len(n.input) > 2 and n.input[2] in inits:
            z = inits[n.input[2]]
            # int8 activations and weights; int32 for biases
            if z.data_type not in (onnx.TensorProto.INT8, onnx.TensorProto.INT32) or numpy_helper.to_array(z).any():
                symmetric = False
    name, shape, _, _ = io_shapes(m)
    precision = read_meta(m).get("precision") or ("int8" if q else "fp32")
    return GraphFacts(precision, len(q), symmetric, name, tuple(shape))


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
    from ..fsutil import atomic_write_bytes, sha256_file

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


def throughput(batch: int, median_ms: float) -> float:
    """Images per second at ``batch`` from the median time of one call."""
    return batch / median_ms * 1e3 if median_ms > 0 else float("nan")


class TensorRTRunner(Runner):
    """Deserialises an engine and runs it by tensor name with ``execute_async_v3``.

    Device buffers, page-locked host buffers, the stream and the events come from cuda-python, pycuda or
    torch, whichever is installed (``buffers`` picks one); see ``edgekit.backends.cudamem``.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, batch: int | None = None, buffers: str | None = None) -> None:
        super().__init__()
        self.engine_path, self.device, self.batch, self.buffers = Path(engine_path), "cuda", batch, buffers

    def activate_impl(self) -> None:
        from .cudamem import open_memory

        trt = require_tensorrt()
        self._trt = trt
        self.mem = open_memory(self.buffers)
        self.runtime = trt.Runtime(_logger(trt))
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EdgekitError(f"{self.engine_path} was built by another TensorRT version or for another GPU: "
                               "rebuild it here with edgekit build")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1:
            raise EdgekitError(f"edgekit runs single-input classifiers; this engine has {len(self.inputs)} inputs")
        shape = list(self.engine.get_tensor_shape(self.inputs[0]))
        self.input_shape = [None if d < 0 else d for d in shape]
        self._bound: int | None = None

    @property
    def max_batch(self) -> int:
        """The optimization profile's max batch (the engine's batch when it is static)."""
        if self.input_shape[0] is not None:
            return int(self.input_shape[0])
        _, _, hi = self.engine.get_tensor_profile_shape(self.inputs[0], 0)
        return int(hi[0])

    def _bind(self, batch: int) -> None:
        if self._bound == batch:
            return
        trt = self._trt
        self.mem.free()
        self.context.set_input_shape(self.inputs[0], [batch, *[int(d) for d in self.input_shape[1:]]])
        self._dev, self._host = {}, {}
        for n in self.inputs + self.outputs:
            shp = tuple(self.context.get_tensor_shape(n))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            self._host[n] = self.mem.host(shp, dtype)
            self._dev[n] = self.mem.device(self._host[n].nbytes)
            self.context.set_tensor_address(n, self._dev[n])
        self._bound = batch

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        """End to end: into page-locked memory, host -> device, execute, device -> host."""
        self._bind(len(x))
        inp, out = self.inputs[0], self.outputs[0]
        np.copyto(self._host[inp], x, casting="same_kind")
        self.mem.to_device(self._dev[inp], self._host[inp])
        if not self.context.execute_async_v3(self.mem.stream):
            raise EdgekitError(f"TensorRT failed to run {self.engine_path.name}")
        self.mem.to_host(self._host[out], self._dev[out])
        self.mem.synchronize()
        return self._host[out].astype(np.float32, copy=True)

    def compute_ms(self, batch: int, repeats: int = 100, warmup: int = 20) -> list[float]:
        """GPU compute time per call with CUDA events, inputs already on the device (no copies)."""
        self._bind(batch)

        def run():
            self.context.execute_async_v3(self.mem.stream)

        times = [self.mem.timed(run) for _ in range(warmup + repeats)]
        return times[warmup:]

    def deactivate_impl(self) -> None:
        if getattr(self, "mem", None) is not None:
            self.mem.close()
        self.mem, self.context, self.engine, self.runtime, self._bound = None, None, None, None, None

    def describe(self) -> dict:
        gpu, cc = gpu_identity()
        return {"backend": self.name, "device": "cuda", "gpu": gpu, "compute_capability": list(cc),
                "tensorrt": self._trt.__version__ if hasattr(self, "_trt") else None, "threads": None,
                "buffers": self.mem.name if getattr(self, "mem", None) is not None else self.buffers}
