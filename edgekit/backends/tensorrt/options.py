"""TensorRT build options and the facts of a graph that decide them (no TensorRT import)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import EdgekitError, MissingDependencyError

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


def graph_facts(onnx_path: Path) -> GraphFacts:
    import onnx
    from onnx import numpy_helper

    from ...graph.info import io_shapes, load_checked, read_meta

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
