"""The build half of the fake TensorRT: logger, network, ONNX parser, builder config, builder, the plan.

Signatures follow the real bindings (10.3.0 and 11.4.0.106, read from their docstrings): ``parse_from_file`` and
``set_timing_cache`` return bool, ``build_serialized_network`` returns an ``IHostMemory`` or None after logging an
error through the logger, ``get_error(i)`` returns an error whose ``str()`` names the node. Nothing raises where the
real API returns a failure value.

Where it may differ from TensorRT:
- The parser checks only the Q/DQ assertions of onnx-tensorrt's ``QuantDequantLinearHelper`` (written here
  independently of edgekit's own rule check, from the same source) and refuses an int32 DequantizeLinear input
  with the message TensorRT's ``addDequantize`` gives ("only activation types allowed as input to this layer",
  onnx/onnx-tensorrt#850). Any other op is accepted; the real parser refuses some.
- The builder's refusals are modelled on the documentation, and their wording is the double's: precision flags
  on a strongly typed network (TensorRT 10 "Strongly Typed Networks"); a 10.x DLA build that is strongly typed
  (trtexec 10.3 always builds DLA weakly typed with kPREFER_PRECISION_CONSTRAINTS, and strongly typed DLA is new in
  11.4.1's release notes); DLA in 11.0-11.4.0; a dynamic input without a profile; a profile outside its rules.
- The plan is this double's own format (a header and the ONNX), so an engine "built" here runs the ONNX file
  through onnxruntime on the CPU, at a modelled device time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PLAN_MAGIC = b"EDGEKIT-DOUBLE-PLAN\0"
CACHE_MAGIC = b"EDGEKIT-DOUBLE-TIMING-CACHE\0"
DLA_OPS = {"Conv", "Relu", "Clip", "Add", "MaxPool", "AveragePool", "BatchNormalization", "Concat", "Mul"}
COMPUTE_OPS = {"Conv", "Gemm", "MatMul", "Relu", "Clip", "Add", "MaxPool", "AveragePool", "GlobalAveragePool",
               "Mul", "Sigmoid", "HardSwish", "HardSigmoid", "Concat", "Softmax", "Flatten", "Reshape"}


class HostMemory(bytes):
    """IHostMemory: a buffer (bytes here) with ``nbytes``."""

    @property
    def nbytes(self) -> int:
        return len(self)


def log(logger, trt, severity: str, msg: str) -> None:
    logger.log(getattr(trt.ILogger.Severity, severity), msg)


class ParserError:
    def __init__(self, node: int, name: str, op: str, desc: str) -> None:
        self._node, self._name, self._op, self._desc = node, name, op, desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def desc(self) -> str:
        return self._desc

    def __str__(self) -> str:
        return (f"In node {self._node} with name: {self._name} and operator: {self._op} "
                f"(importDequantizeLinear): INVALID_NODE: {self._desc}")


def qdq_errors(model) -> list[ParserError]:
    """The parser's Q/DQ assertions (onnx/onnx-tensorrt onnxOpImporters.cpp, QuantDequantLinearHelper)."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for i, n in enumerate(model.graph.node):
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue

        def err(desc: str):
            out.append(ParserError(i, n.name, n.op_type, desc))

        data = inits.get(n.input[0])
        if n.op_type == "DequantizeLinear" and data is not None and data.data_type == TensorProto.INT32:
            err(f"{n.name}: only activation types allowed as input to this layer.")
            continue
        if n.op_type == "DequantizeLinear" and data is not None and data.data_type == TensorProto.UINT8:
            err("Assertion failed: UINT8 is an invalid input type")
            continue
        scale = inits.get(n.input[1]) if len(n.input) > 1 else None
        if scale is not None and not (numpy_helper.to_array(scale) > 0).all():
            err("Assertion failed: Scale coefficients must all be positive")
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is not None and zp.data_type == TensorProto.UINT8:
            err("Assertion failed: UINT8 is an invalid input type")
        elif zp is not None and numpy_helper.to_array(zp).any():
            err("Assertion failed: Non-zero zero point is not supported.")
    return out


class OnnxParser:
    def __init__(self, network, logger) -> None:
        self.network, self.logger, self._errors = network, logger, []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors = []

    def parse_from_file(self, model: str) -> bool:
        import onnx

        try:
            m = onnx.load(str(model))
        except Exception as exc:  # the real parser reports an unreadable file as a parse failure
            self._errors = [ParserError(-1, "", "", f"Failed to parse ONNX model from file: {model} ({exc})")]
            return False
        self._errors = qdq_errors(m) + [
            ParserError(i, n.name, n.op_type, f"No importer registered for op: {n.op_type}. Attempting to import as "
                        f"plugin. Plugin not found: {n.op_type}")
            for i, n in enumerate(m.graph.node) if n.domain not in ("", "ai.onnx")]
        if self._errors:
            return False
        self.network.model, self.network.path = m, Path(model)
        return True


class INetworkDefinition:
    def __init__(self, flags: int, strongly_typed_bit: int | None) -> None:
        self.flags, self.model, self.path = int(flags), None, None
        self.strongly_typed = strongly_typed_bit is None or bool(flags & (1 << strongly_typed_bit))

    @property
    def num_inputs(self) -> int:
        return 0 if self.model is None else len(self.model.graph.input)


class IOptimizationProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, input: str, min, opt, max) -> None:  # noqa: A002  the real keyword
        self.shapes[input] = (tuple(min), tuple(opt), tuple(max))


class ITimingCache:
    def __init__(self, entries: int = 0) -> None:
        self.entries = entries

    def serialize(self) -> HostMemory:
        return HostMemory(CACHE_MAGIC + json.dumps({"entries": self.entries}).encode())


class IBuilderConfig:
    def __init__(self, trt) -> None:
        self._trt = trt
        self.flags_set: set[str] = set()
        self.default_device_type = trt.DeviceType.GPU
        self.DLA_core = -1
        self.builder_optimization_level = 3
        self.profiling_verbosity = trt.ProfilingVerbosity.LAYER_NAMES_ONLY
        self.profiles: list[IOptimizationProfile] = []
        self.pools: dict = {}
        self._cache: ITimingCache | None = None

    def set_flag(self, flag) -> None:
        self.flags_set.add(self._trt.BuilderFlag(int(flag)).name)

    def get_flag(self, flag) -> bool:
        return self._trt.BuilderFlag(int(flag)).name in self.flags_set

    def set_memory_pool_limit(self, pool, pool_size: int) -> None:
        self.pools[int(pool)] = int(pool_size)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def create_timing_cache(self, serialized_timing_cache) -> ITimingCache | None:
        blob = bytes(serialized_timing_cache)
        if not blob:
            return ITimingCache()
        if not blob.startswith(CACHE_MAGIC):
            return None  # a foreign or corrupt blob: the real call fails too (it may log instead of returning None)
        return ITimingCache(json.loads(blob[len(CACHE_MAGIC):])["entries"])

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if not isinstance(cache, ITimingCache):
            raise TypeError("set_timing_cache(): incompatible function arguments")  # what pybind11 raises
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._cache


def io_of(model) -> list[dict]:
    """The network's I/O tensors: name, mode, ONNX element type, shape with -1 for symbolic dims."""
    inits = {i.name for i in model.graph.initializer}
    out = []
    for mode, values in (("INPUT", model.graph.input), ("OUTPUT", model.graph.output)):
        for v in values:
            if v.name in inits:
                continue
            t = v.type.tensor_type
            out.append({"name": v.name, "mode": mode, "elem": int(t.elem_type),
                        "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]})
    return out


def precision_of(model, flags: set[str], strongly_typed: bool) -> str:
    """What TensorRT would run the graph's layers in: Q/DQ means INT8, FP16 weights FP16, else what the flags
    allow on a weakly typed network (10.x)."""
    from onnx import TensorProto

    ops = {n.op_type for n in model.graph.node}
    if "QuantizeLinear" in ops or "DequantizeLinear" in ops:
        return "int8"
    if any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer):
        return "fp16"
    if not strongly_typed and "FP16" in flags:
        return "fp16"
    return "fp32"


def check_build(network, config, builder, version: tuple[int, int, int]) -> tuple[str | None, dict]:
    """(the error TensorRT would log, or None; the plan header)."""
    if network.model is None:
        return "Network must have at least one output", {}
    flags = config.flags_set
    bad = sorted(flags & set(("FP16", "INT8", "BF16", "FP8", "INT4", "OBEY_PRECISION_CONSTRAINTS",
                              "PREFER_PRECISION_CONSTRAINTS")))
    if network.strongly_typed and bad:
        return f"BuilderFlag::k{bad[0]} is not allowed on a strongly typed network", {}
    io = io_of(network.model)
    inputs = [t for t in io if t["mode"] == "INPUT"]
    profile = None
    if any(-1 in t["shape"] for t in inputs):
        if not config.profiles:
            return "Network has dynamic or shape inputs, but no optimization profile has been defined.", {}
        shapes = config.profiles[0].shapes
        for t in inputs:
            lo, opt, hi = shapes.get(t["name"], (None, None, None))
            if lo is None or len(lo) != len(t["shape"]):
                return f"{t['name']}: the optimization profile does not set its shape", {}
            fixed_ok = all(d == -1 or d == a == b == c for d, a, b, c in zip(t["shape"], lo, opt, hi))
            if not fixed_ok or not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
                return f"{t['name']}: profile min {lo} opt {opt} max {hi} breaks min <= opt <= max or a fixed dim", {}
        profile = {t["name"]: [list(s) for s in shapes[t["name"]]] for t in inputs}
    dla = int(config.default_device_type) == 1
    if dla:
        if builder.num_DLA_cores == 0:
            return "DLA is not available on this device (0 DLA cores)", {}
        if (11, 0, 0) <= version < (11, 4, 1):
            return f"TensorRT {'.'.join(map(str, version))} does not support DLA", {}
        if version[0] == 10 and network.strongly_typed:
            return "a strongly typed network cannot be built for DLA on TensorRT 10.x", {}
        if not 0 <= config.DLA_core < builder.num_DLA_cores:
            return f"DLA core {config.DLA_core} is out of range [0, {builder.num_DLA_cores})", {}
        if profile is not None:
            return "DLA does not support dynamic shapes", {}
    header = {"io": io, "profile": profile, "precision": precision_of(network.model, flags, network.strongly_typed),
              "device": "DLA" if dla else "GPU", "dla_core": config.DLA_core if dla else None,
              "gpu_fallback": "GPU_FALLBACK" in flags, "verbosity": int(config.profiling_verbosity),
              "nodes": [[n.name or f"node_{i}", n.op_type] for i, n in enumerate(network.model.graph.node)]}
    return None, header


def serialize_plan(header: dict, onnx_bytes: bytes) -> HostMemory:
    head = json.dumps(header).encode()
    return HostMemory(PLAN_MAGIC + len(head).to_bytes(8, "little") + head + onnx_bytes)


def deserialize_plan(blob: bytes) -> tuple[dict, bytes] | None:
    if not blob.startswith(PLAN_MAGIC):
        return None
    rest = blob[len(PLAN_MAGIC):]
    n = int.from_bytes(rest[:8], "little")
    try:
        header = json.loads(rest[8:8 + n])
    except ValueError:
        return None
    model = rest[8 + n:]
    return (header, model) if model else None


def elem_dtype(elem: int):
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem))
