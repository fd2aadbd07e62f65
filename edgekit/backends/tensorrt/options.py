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
        from ..._optional import hint

        return f"TensorRT is not installed: {hint('tensorrt')} (on a Jetson it comes with JetPack)"
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


def profile_refusal(onnx_model: str | None, dynamic_export: bool, batch_profile) -> str | None:
    """Why a TensorRT request cannot have the batch profile it names (or lacks), known before any work: a dynamic
    batch needs ``--batch-profile``; a fixed one takes none. ``onnx_model``: the user's ONNX file, whose first input
    says which it has (read here, header only); else ``dynamic_export`` says what the export will write."""
    dynamic = dynamic_export
    if onnx_model is not None:
        import onnx

        try:
            graph = onnx.load(onnx_model, load_external_data=False).graph
        except Exception:  # unreadable or absent: opening the model says why, with the file's name
            return None
        inits = {i.name for i in graph.initializer}
        first = next((v for v in graph.input if v.name not in inits), None)
        dims = first.type.tensor_type.shape.dim if first is not None else []
        dynamic = bool(dims) and not dims[0].HasField("dim_value")
    name = "the exported ONNX (--dynamic-batch)" if onnx_model is None else Path(onnx_model).name
    if dynamic and batch_profile is None:
        return (f"{name} has a dynamic batch and a TensorRT engine needs its optimization profile: add --batch-profile "
                "MIN,OPT,MAX (e.g. 1,8,32)" + ("" if onnx_model else ", or drop --dynamic-batch"))
    if not dynamic and batch_profile is not None:
        return f"--batch-profile needs a dynamic batch, and {name} has a fixed one: re-export it with a dynamic batch"
    return None


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        raise EdgekitError(f"cannot read a TensorRT version from {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp32"
    workspace_mb: int = 1024
    dynamic_batch: tuple[int, int, int] | None = None  # min, opt, max: the CLI's --batch-profile
    sparsity: bool = False
    dla_core: int | None = None
    builder_optimization_level: int | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EdgekitError(f"TensorRT precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.dynamic_batch is not None:
            lo, opt, hi = self.dynamic_batch
            if not 1 <= lo <= opt <= hi:
                raise EdgekitError(f"--batch-profile {lo},{opt},{hi}: need 1 <= min <= opt <= max")
            if self.dla_core is not None:
                raise EdgekitError("DLA needs static shapes: drop --batch-profile (and --dynamic-batch) or --dla-core")
        if self.dla_core is not None and self.precision == "fp32":
            raise EdgekitError("DLA runs FP16 or INT8 only: export with --fp16 or --int8 --target tensorrt")
        if self.builder_optimization_level is not None and not 0 <= self.builder_optimization_level <= 5:
            raise EdgekitError("--builder-optimization-level must lie in 0..5")


@dataclass(frozen=True)
class GraphFacts:
    """What the builder needs to know of the ONNX file (``onnx_rules.graph_facts`` reads it)."""

    precision: str  # fp32, fp16 (FP16 weights in the graph) or int8 (Q/DQ)
    qdq_nodes: int
    symmetric: bool  # no Q/DQ breaks TensorRT's parser rules (zero points 0 and int8, no uint8; onnx_rules.py)
    input_name: str
    input_shape: tuple  # with None for dynamic dims


def build_recipe(opts: BuildOptions, version: tuple[int, int, int], graph: GraphFacts) -> dict:
    """The TensorRT settings for ``opts`` on TensorRT ``version``: network flags, builder flags, device.

    TensorRT 11 removed implicit precision (BuilderFlag.FP16/INT8, calibrators): precision comes from the
    graph, in a strongly typed network. On 10.x, INT8 also comes only from Q/DQ (calibrators are deprecated
    since 10.1) and FP16 from BuilderFlag.FP16 on a float32 graph, or from an FP16 graph when strongly typed.
    A 10.x DLA build is weakly typed with precision flags, as trtexec 10.3 builds it (see ``dla_refusal``).
    """
    major = version[0]
    if major < 10:
        raise EdgekitError(f"TensorRT {'.'.join(map(str, version))} is too old: edgekit needs 10.x or 11.x")
    if opts.dla_core is not None:
        why = dla_refusal(version, opts.precision)
        if why:
            raise EdgekitError(f"--dla-core {opts.dla_core}: {why}")
    network_flags, builder_flags = _precision_flags(opts, major, graph)
    if major >= 11:
        network_flags = []  # always strongly typed; the flag is deprecated and ignored
    if opts.sparsity:
        builder_flags.append("SPARSE_WEIGHTS")
    device = "GPU"
    if opts.dla_core is not None:
        device = "DLA"
        builder_flags.append("GPU_FALLBACK")
        if major == 10:  # 10.x DLA: weakly typed, precision from the flag (what trtexec 10.3 does)
            network_flags = [f for f in network_flags if f != "STRONGLY_TYPED"]
            if opts.precision == "fp16" and "FP16" not in builder_flags:
                builder_flags.insert(0, "FP16")
    dynamic = any(d is None for d in graph.input_shape)
    if dynamic and opts.dynamic_batch is None:
        raise EdgekitError("the ONNX file has a dynamic batch: pass --batch-profile MIN,OPT,MAX for the engine's "
                           "optimization profile")
    if not dynamic and opts.dynamic_batch is not None:
        raise EdgekitError("--batch-profile needs an ONNX exported with a dynamic batch (--dynamic-batch)")
    profile = None
    if opts.dynamic_batch is not None:
        rest = tuple(graph.input_shape[1:])
        profile = {"input": graph.input_name, **{k: (b, *rest) for k, b in zip(("min", "opt", "max"),
                                                                                 opts.dynamic_batch)}}
    return {"network_flags": network_flags, "builder_flags": builder_flags, "device": device,
            "dla_core": opts.dla_core, "workspace_bytes": opts.workspace_mb << 20, "profile": profile,
            "builder_optimization_level": opts.builder_optimization_level}


def _precision_flags(opts: BuildOptions, major: int, graph: GraphFacts) -> tuple[list[str], list[str]]:
    if opts.precision == "int8":
        if graph.qdq_nodes == 0:
            raise EdgekitError("TensorRT builds INT8 only from Q/DQ nodes: export with --int8 --target tensorrt")
        if not graph.symmetric:
            raise EdgekitError("the Q/DQ graph breaks TensorRT's parser rules (uint8 or non-zero zero points): "
                               "export with --int8 --target tensorrt")
        return ["STRONGLY_TYPED"], []
    if opts.precision == "fp16":
        if graph.precision == "fp16":
            return ["STRONGLY_TYPED"], []
        if major >= 11:
            raise EdgekitError("TensorRT 11 takes FP16 from the graph only: export with --fp16 and build "
                               "model_fp16.onnx")
        return [], ["FP16"]
    if graph.precision != "fp32" or graph.qdq_nodes:
        raise EdgekitError(f"--precision fp32 asked for a {graph.precision} graph: build model.onnx, or ask "
                           f"for {graph.precision}")
    return ["STRONGLY_TYPED"], []


def dla_refusal(version: tuple[int, int, int], precision: str) -> str | None:
    """Why TensorRT ``version`` builds no DLA engine of ``precision``, or None.

    From NVIDIA's documentation: "TensorRT 10.7 was the last 10.x release that supported DLA" and "DLA was
    unavailable in TensorRT 11.0 through 11.3 ... TensorRT 11.4.0 supported DLA only on Windows on ARM" (TensorRT
    11.5.0 "Working with DLA"); 11.4.1 brings DLA to AGX Orin on JetPack 7.2.2+ with strongly typed networks
    ("Strongly typed networks for DLA", 11.4.1 release notes, a new feature there). On 10.x the DLA takes INT8 only
    by implicit quantization (a calibration cache), not from Q/DQ: "DLA still only supports IQ"
    (NVIDIA/Model-Optimizer#1661, 2026) and "DLA doesn't support QAT yet ... convert it to implicit quantization"
    (NVIDIA/TensorRT#2222). edgekit ships Q/DQ INT8, so an INT8 DLA engine needs TensorRT 11.4.1+.
    """
    v = tuple(version[:3])
    if (10, 8, 0) <= v < (11, 0, 0) or (11, 0, 0) <= v < (11, 4, 1):
        return no_dla_message(version)
    if v < (11, 0, 0) and precision == "int8":
        return (f"TensorRT {'.'.join(map(str, version))} runs INT8 on the DLA only from a calibration cache "
                "(implicit quantization), not from edgekit's Q/DQ file (NVIDIA/TensorRT#2222, "
                "NVIDIA/Model-Optimizer#1661): export with --fp16 for the DLA on JetPack 6, or build the INT8 file "
                "on TensorRT 11.4.1+ (JetPack 7.2.2+, AGX Orin)")
    return None


def no_dla_message(version: tuple[int, int, int]) -> str:
    """Why there is no DLA here, with the facts of TensorRT's DLA support per version and board."""
    v = ".".join(map(str, version))
    t = tuple(version[:3])
    if (10, 8, 0) <= t < (11, 0, 0):
        return (f"TensorRT {v} has no DLA support (10.7 was the last 10.x release with DLA; Orin on JetPack 6.x runs "
                "10.3, which has it): drop --dla-core")
    if (11, 0, 0) <= t < (11, 4, 1):
        return (f"TensorRT {v} has no DLA support (none in 11.0-11.3, 11.4.0 only on Windows on ARM; TensorRT 11 "
                "reaches Jetson from 11.4.1, on AGX Orin and Thor with JetPack 7.2.2+, DLA on AGX Orin; Orin on "
                "JetPack 6.x stays on TensorRT 10.3): drop --dla-core")
    return (f"this device has no DLA (TensorRT {v} counts 0 DLA cores; the Orin Nano has none, AGX Orin and Orin NX "
            "have them, under TensorRT 11 only from 11.4.1 on JetPack 7.2.2+): drop --dla-core")
