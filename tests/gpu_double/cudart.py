"""A fake ``cuda.bindings.runtime`` (cuda-python) over a ``FakeGpu``.

Built from the real module's signatures (cuda-bindings 13.5, the one torch brings here; the names edgekit calls are
also checked against it by tools/check_tensorrt_api.py): every call returns a tuple whose first item is a
``cudaError_t`` and never raises for a CUDA error; a failed call's value is ``None``, as cuda-python returns it.
The enum values are the real ones (cudaSuccess 0, cudaErrorInsufficientDriver 35, cudaErrorNotReady 600 ...).

Where it may differ: the real handles (``cudaStream_t``, ``cudaEvent_t``, ``cudaGraph_t``) are objects that also
accept ``int``; here they are ints wrapped in small classes with ``__int__``. Arguments are not type-checked as
strictly as the Cython layer does (it raises TypeError for a float size, for instance).
"""

from __future__ import annotations

import enum
import importlib.machinery
import types

from .device import CudaFault, FakeGpu


class cudaError_t(enum.IntEnum):  # noqa: N801  the real name
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInitializationError = 3
    cudaErrorInvalidDevicePointer = 17
    cudaErrorInvalidMemcpyDirection = 21
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorIllegalState = 401
    cudaErrorNotReady = 600
    cudaErrorIllegalAddress = 700
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaMemoryType(enum.IntEnum):  # noqa: N801
    cudaMemoryTypeUnregistered = 0
    cudaMemoryTypeHost = 1
    cudaMemoryTypeDevice = 2
    cudaMemoryTypeManaged = 3


class cudaStreamCaptureMode(enum.IntEnum):  # noqa: N801
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


MESSAGES = {
    "cudaErrorInsufficientDriver": b"CUDA driver version is insufficient for CUDA runtime version",
    "cudaErrorNoDevice": b"no CUDA-capable device is detected",
    "cudaErrorInvalidValue": b"invalid argument",
    "cudaErrorNotReady": b"device not ready",
}


class _Handle:
    """cudaStream_t, cudaEvent_t, cudaGraph_t, cudaGraphExec_t: an opaque pointer that ``int()`` reads."""

    def __init__(self, value: int) -> None:
        self._v = int(value)

    def __int__(self) -> int:
        return self._v

    def getPtr(self) -> int:  # noqa: N802  the real method
        return self._v

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._v:#x}>"


class cudaStream_t(_Handle):  # noqa: N801
    pass


class cudaEvent_t(_Handle):  # noqa: N801
    pass


class cudaGraph_t(_Handle):  # noqa: N801
    pass


class cudaGraphExec_t(_Handle):  # noqa: N801
    pass


class cudaDeviceProp:  # noqa: N801
    def __init__(self, gpu: FakeGpu) -> None:
        self.name = gpu.name.encode().ljust(256, b"\0")  # a char[256] comes back as bytes, NUL-padded
        self.major, self.minor = gpu.cc
        self.totalGlobalMem = gpu.memory
        self.multiProcessorCount = 132


def size_t(n) -> int:
    """A size_t argument as the Cython layer converts it: a negative int raises OverflowError before any call."""
    n = int(n)
    if n < 0:
        raise OverflowError("can't convert negative int to unsigned")
    return n


def make_runtime(gpu: FakeGpu) -> types.ModuleType:
    """The module object, to be installed as ``cuda.bindings.runtime``."""
    rt = types.ModuleType("cuda.bindings.runtime")
    rt.__spec__ = importlib.machinery.ModuleSpec("cuda.bindings.runtime", None)
    for e in (cudaError_t, cudaMemcpyKind, cudaMemoryType, cudaStreamCaptureMode, cudaStream_t, cudaEvent_t,
              cudaDeviceProp):
        setattr(rt, e.__name__, e)

    def call(name, fn, *args, value=True):
        gpu.calls.append(name)
        if not gpu.driver:
            err = cudaError_t.cudaErrorInsufficientDriver
            return (err, None) if value else (err,)
        try:
            out = fn(*args)
        except CudaFault as exc:
            return (cudaError_t[exc.code], None) if value else (cudaError_t[exc.code],)
        return (cudaError_t.cudaSuccess, out) if value else (cudaError_t.cudaSuccess,)

    def kind_of(kind) -> str:
        k = cudaMemcpyKind(int(kind))
        return {cudaMemcpyKind.cudaMemcpyHostToDevice: "htod", cudaMemcpyKind.cudaMemcpyDeviceToHost: "dtoh",
                cudaMemcpyKind.cudaMemcpyDeviceToDevice: "dtod"}.get(k, k.name)

    def new_event():
        h = gpu.handle()
        from .device import Event

        gpu.events[h] = Event(h)
        return cudaEvent_t(h)

    def new_stream():
        h = gpu.handle()
        from .device import Stream

        gpu.streams[h] = Stream(h)
        return cudaStream_t(h)

    def destroy_stream(s):
        gpu.stream(s).destroyed = True

    def destroy_event(e):
        if gpu.events.pop(int(e), None) is None:
            raise CudaFault("cudaErrorInvalidResourceHandle", "event not created")

    def properties(dev):
        if int(dev) != 0:
            raise CudaFault("cudaErrorInvalidDevice", f"no device {dev}")
        return cudaDeviceProp(gpu)

    rt.cudaGetDeviceCount = lambda: ((cudaError_t.cudaSuccess, 1) if gpu.driver else
                                     (cudaError_t.cudaErrorInsufficientDriver, None))
    rt.cudaGetDeviceProperties = lambda dev: call("cudaGetDeviceProperties", properties, dev)
    def attributes(ptr):
        kind = (cudaMemoryType.cudaMemoryTypeDevice if gpu.is_device(ptr) else cudaMemoryType.cudaMemoryTypeHost
                if gpu.is_pinned(ptr, 1) else cudaMemoryType.cudaMemoryTypeUnregistered)
        return types.SimpleNamespace(type=kind, devicePointer=int(ptr), hostPointer=int(ptr), device=0)

    rt.cudaPointerGetAttributes = lambda ptr: call("cudaPointerGetAttributes", attributes, int(ptr))
    rt.cudaGetErrorString = lambda err: (cudaError_t.cudaSuccess,
                                         MESSAGES.get(cudaError_t(int(err)).name, b"unknown error"))
    rt.cudaRuntimeGetVersion = lambda: (cudaError_t.cudaSuccess, 12060)  # answers without a driver, as it does
    rt.cudaDriverGetVersion = lambda: (cudaError_t.cudaSuccess, 12080 if gpu.driver else 0)
    rt.cudaStreamCreate = lambda: call("cudaStreamCreate", new_stream)
    rt.cudaStreamDestroy = lambda s: call("cudaStreamDestroy", destroy_stream, s, value=False)
    rt.cudaStreamSynchronize = lambda s: call("cudaStreamSynchronize", gpu.synchronize, s, value=False)
    rt.cudaDeviceSynchronize = lambda: call("cudaDeviceSynchronize", gpu.device_synchronize, value=False)
    rt.cudaMalloc = lambda n: call("cudaMalloc", gpu.malloc, size_t(n))
    rt.cudaFree = lambda p: call("cudaFree", gpu.free, p, value=False)
    rt.cudaMallocHost = lambda n: call("cudaMallocHost", gpu.malloc_host, size_t(n))
    rt.cudaFreeHost = lambda p: call("cudaFreeHost", gpu.free_host, p, value=False)
    rt.cudaMemcpyAsync = lambda dst, src, n, kind, s: call(
        "cudaMemcpyAsync", lambda: gpu.copy(int(dst), int(src), int(n), kind_of(kind), s), value=False)
    rt.cudaEventCreate = lambda: call("cudaEventCreate", new_event)
    rt.cudaEventDestroy = lambda e: call("cudaEventDestroy", destroy_event, e, value=False)
    rt.cudaEventRecord = lambda e, s: call("cudaEventRecord", gpu.record, e, s, value=False)
    rt.cudaEventSynchronize = lambda e: call("cudaEventSynchronize", gpu.event_synchronize, e, value=False)
    rt.cudaEventElapsedTime = lambda a, b: call("cudaEventElapsedTime", gpu.elapsed, a, b)
    rt.cudaStreamBeginCapture = lambda s, mode: call("cudaStreamBeginCapture", gpu.begin_capture, s, value=False)
    rt.cudaStreamEndCapture = lambda s: call("cudaStreamEndCapture", lambda: cudaGraph_t(gpu.end_capture(s)))
    rt.cudaGraphInstantiate = lambda g, flags: call("cudaGraphInstantiate",
                                                    lambda: cudaGraphExec_t(gpu.instantiate(g)))
    rt.cudaGraphLaunch = lambda ge, s: call("cudaGraphLaunch", gpu.launch, ge, s, value=False)
    rt.cudaGraphExecDestroy = lambda ge: call("cudaGraphExecDestroy", lambda: gpu.execs.pop(int(ge), None),
                                              value=False)
    rt.cudaGraphDestroy = lambda g: call("cudaGraphDestroy", lambda: gpu.graphs.pop(int(g), None), value=False)
    if gpu.faults.get("cudaGetDeviceProperties"):  # a driver that counts a device yet cannot describe it
        rt.cudaGetDeviceProperties = lambda dev: (cudaError_t[gpu.faults["cudaGetDeviceProperties"]], None)
    if gpu.faults.get("raise_versions"):  # a binding that raises instead of returning (err, value)
        def broken():
            raise RuntimeError(gpu.faults["raise_versions"])

        rt.cudaRuntimeGetVersion = rt.cudaDriverGetVersion = broken
    return rt


def package(name: str, **children) -> types.ModuleType:
    """An importable parent package (``cuda``, ``cuda.bindings``) with a spec, as importlib expects."""
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    m.__path__ = []
    for k, v in children.items():
        setattr(m, k, v)
    return m
