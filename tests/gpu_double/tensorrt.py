"""A fake ``tensorrt`` module: Builder, Runtime, engine, execution context, inspector, over a ``FakeGpu``.

The runtime half keeps the rules edgekit's runner depends on, with the real return conventions (bindings 10.3.0
and 11.4.0.106 docstrings):

- ``deserialize_cuda_engine`` returns None (and logs an error) for a plan it cannot read: another TensorRT
  version, another compute capability, a truncated or foreign file.
- ``set_input_shape`` returns False (and logs an error) for a shape outside the optimization profile, of the wrong
  rank, or that changes a static dimension; the context keeps its previous shape, so a caller that ignores the
  False reads ``-1`` dimensions from ``get_tensor_shape`` until a valid shape is set.
- ``set_tensor_address`` returns False for an unknown name; ``execute_async_v3`` returns False when an input shape
  or a tensor address is missing, and otherwise queues the inference on the stream: it reads the input bytes at the
  input address when the stream reaches it and writes the output bytes at the output address; an address too
  small for the tensor faults like an illegal access, reported at the next synchronization.
- A DLA engine runs on ``Runtime.DLA_core`` as it was at deserialization (the double records it in
  ``engine.dla_core_used``; the real runtime's behaviour with the core unset is not documented: the double assumes
  core 0).

Where it may differ: the inference is onnxruntime on the CPU, so numbers are onnxruntime's, not TensorRT's kernels'
(no TF32, no INT8 rounding differences); device time is modelled (``Costs``), not measured; nothing is checked for
thread safety.
"""

from __future__ import annotations

import importlib.machinery
import types

import numpy as np

from . import trt_build as tb
from .device import CudaFault, FakeGpu
from .trt_enums import enums
from .trt_inspect import engine_information


class Dims(tuple):
    """trt.Dims: a sequence of ints with -1 for dynamic dimensions."""


def make_tensorrt(gpu: FakeGpu, version: str = "10.3.0", myelin: bool = False) -> types.ModuleType:
    """The module, as TensorRT ``version`` would present it. ``myelin``: the inspector shows one Myelin
    ForeignNode for the whole network (what 10.x engines of Myelin-compiled graphs show)."""
    parts = tuple(int(p) for p in version.split(".")[:3])
    major = parts[0]
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    for name, cls in enums(str(major)).items():
        if name != "Severity":
            setattr(trt, name, cls)
    severity = enums(str(major))["Severity"]

    class ILogger:
        Severity = severity

        def __init__(self) -> None:
            pass

        def log(self, severity, msg) -> None:  # pragma: no cover  subclasses implement it
            raise NotImplementedError

    class Logger(ILogger):
        def __init__(self, min_severity=severity.WARNING) -> None:
            self.min_severity, self.messages = min_severity, []

        def log(self, severity, msg) -> None:
            self.messages.append((severity, msg))

    trt.ILogger, trt.Logger = ILogger, Logger
    trt.OnnxParser = tb.OnnxParser

    def nptype(dtype):
        table = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
                 "UINT8": np.uint8, "INT64": np.int64}
        name = trt.DataType(int(dtype)).name
        if name not in table:
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return table[name]

    trt.nptype = nptype

    class Builder:
        def __init__(self, logger) -> None:
            self.logger = logger
            self.num_DLA_cores = gpu.dla_cores
            self.max_DLA_batch_size = 4096 if gpu.dla_cores else 1

        def create_network(self, flags: int = 0):
            bit = int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if major < 11 else None
            return tb.INetworkDefinition(flags, bit)

        def create_builder_config(self):
            return tb.IBuilderConfig(trt)

        def create_optimization_profile(self):
            return tb.IOptimizationProfile()

        def build_serialized_network(self, network, config):
            err, header = tb.check_build(network, config, self, parts)
            if err is not None:
                tb.log(self.logger, trt, "ERROR", f"[network.cpp::validate] Error Code 4: {err}")
                return None
            header.update(version=version, cc=list(gpu.cc), gpu=gpu.name)
            return tb.serialize_plan(header, network.path.read_bytes())

    trt.Builder = Builder

    class Runtime:
        def __init__(self, logger) -> None:
            self.logger, self.DLA_core, self.num_DLA_cores = logger, -1, gpu.dla_cores

        def deserialize_cuda_engine(self, serialized_engine):
            gpu.calls.append(f"deserialize_cuda_engine DLA_core={self.DLA_core}")
            got = tb.deserialize_plan(bytes(serialized_engine))
            if got is None:
                tb.log(self.logger, trt, "ERROR", "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                       "(Serialization assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")
                return None
            header, model = got
            if header["version"] != version:
                tb.log(self.logger, trt, "ERROR", "Serialization assertion stdVersionRead == kSERIALIZATION_VERSION "
                       f"failed.Version tag does not match. The current Version: {version}, Serialized Engine "
                       f"Version: {header['version']}")
                return None
            if tuple(header["cc"]) != tuple(gpu.cc):
                tb.log(self.logger, trt, "ERROR", "The engine plan file is generated on an incompatible device, "
                       f"expecting compute {header['cc'][0]}.{header['cc'][1]} got compute {gpu.cc[0]}.{gpu.cc[1]}")
                return None
            return ICudaEngine(header, model, self.DLA_core if self.DLA_core >= 0 else 0, self.logger)

    trt.Runtime = Runtime

    class ICudaEngine:
        def __init__(self, header: dict, model: bytes, dla_core: int, logger) -> None:
            import onnxruntime as ort

            self.header, self.model, self.logger = header, model, logger
            self.io = header["io"]
            self.dla_core_used = dla_core if header["device"] == "DLA" else None
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            self.num_io_tensors = len(self.io)
            self.profiling_verbosity = trt.ProfilingVerbosity(header["verbosity"])
            self.num_layers = len(header["nodes"])

        def _t(self, name: str) -> dict:
            for t in self.io:
                if t["name"] == name:
                    return t
            raise RuntimeError(f"no tensor named {name!r}")  # the real call logs an error and returns garbage

        def get_tensor_name(self, index: int) -> str:
            return self.io[index]["name"]

        def get_tensor_mode(self, name: str):
            return getattr(trt.TensorIOMode, self._t(name)["mode"])

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self._t(name)["shape"])

        def get_tensor_dtype(self, name: str):
            elem = self._t(name)["elem"]
            return trt.DataType.FLOAT if elem == 1 else trt.DataType.HALF if elem == 10 else trt.DataType.INT32

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
            prof = (self.header["profile"] or {}).get(name)
            if prof is None or profile_index != 0:
                return []  # the real call logs an error; an output or a static engine has no profile shapes
            return [Dims(s) for s in prof]

        def create_execution_context(self):
            return IExecutionContext(self)

        def create_engine_inspector(self):
            return EngineInspector(self)

    class IExecutionContext:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine, self.shapes, self.addresses = engine, {}, {}
            for t in engine.io:
                if t["mode"] == "INPUT" and -1 not in t["shape"]:
                    self.shapes[t["name"]] = list(t["shape"])

        def _error(self, msg: str) -> bool:
            gpu.calls.append(f"trt error: {msg}")
            tb.log(self.engine.logger, trt, "ERROR", msg)  # TensorRT reports through the runtime's logger
            return False

        def set_input_shape(self, name: str, shape) -> bool:
            shape = [int(d) for d in shape]
            t = self.engine._t(name)
            if t["mode"] != "INPUT" or len(shape) != len(t["shape"]):
                return self._error(f"{name}: wrong rank {shape}")
            if any(d != -1 and d != s for d, s in zip(t["shape"], shape)):
                return self._error(f"{name}: {shape} changes a static dimension of {t['shape']}")
            prof = (self.engine.header["profile"] or {}).get(name)
            if prof is not None and not all(lo <= s <= hi for lo, s, hi in zip(prof[0], shape, prof[2])):
                return self._error(f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Parameter "
                                   f"check failed, condition: satisfyProfile. {shape} is outside the profile)")
            self.shapes[name] = shape
            return True

        def get_tensor_shape(self, name: str) -> Dims:
            t = self.engine._t(name)
            if t["mode"] == "INPUT":
                return Dims(self.shapes.get(name, t["shape"]))
            inp = next(x for x in self.engine.io if x["mode"] == "INPUT")
            batch = self.shapes.get(inp["name"], inp["shape"])[0]
            return Dims([batch if d == -1 else d for d in t["shape"]])

        def set_tensor_address(self, name: str, memory: int) -> bool:
            if not any(t["name"] == name for t in self.engine.io):
                return self._error(f"no tensor named {name}")
            self.addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            if gpu.faults.get("enqueue"):
                return self._error("IExecutionContext::enqueueV3: Error Code 1: (the double's injected failure)")
            io = self.engine.io
            inputs = [t for t in io if t["mode"] == "INPUT"]
            if any(t["name"] not in self.shapes for t in inputs):
                return self._error("not all input shapes are specified")
            if any(t["name"] not in self.addresses for t in io):
                return self._error("not all tensor addresses are set")
            plan = {t["name"]: (self.addresses[t["name"]], list(self.get_tensor_shape(t["name"])),
                                tb.elem_dtype(t["elem"])) for t in io}
            batch = plan[inputs[0]["name"]][1][0]
            session = self.engine.session

            def run():
                feeds = {}
                for t in inputs:
                    ptr, shape, dt = plan[t["name"]]
                    raw = gpu.view(ptr, int(np.prod(shape)) * dt.itemsize)
                    feeds[t["name"]] = raw.view(dt).reshape(shape).copy()
                outs = session.run([t["name"] for t in io if t["mode"] == "OUTPUT"], feeds)
                for t, value in zip([t for t in io if t["mode"] == "OUTPUT"], outs):
                    if gpu.faults.get("tamper"):
                        value = gpu.faults["tamper"](value)
                    ptr, shape, dt = plan[t["name"]]
                    gpu.view(ptr, int(np.prod(shape)) * dt.itemsize)[:] = np.ascontiguousarray(
                        value.astype(dt)).view(np.uint8).reshape(-1)

            ms = gpu.costs.kernel_base + gpu.costs.kernel_per_image * batch
            try:
                gpu.enqueue(stream_handle, ms, run, host_ms=gpu.costs.enqueue_kernel)
            except CudaFault as exc:
                return self._error(str(exc))
            return True

    class EngineInspector:
        def __init__(self, engine: ICudaEngine) -> None:
            self.engine, self.execution_context = engine, None

        def get_engine_information(self, format) -> str:  # noqa: A002  the real keyword
            ctx = self.execution_context
            shapes = None if ctx is None else dict(ctx.shapes)
            return engine_information(self.engine.header, major, shapes, myelin)

    trt.ICudaEngine, trt.IExecutionContext, trt.EngineInspector = ICudaEngine, IExecutionContext, EngineInspector
    return trt
