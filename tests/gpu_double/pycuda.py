"""A fake ``pycuda.driver`` (and ``pycuda.autoprimaryctx``) over the same ``FakeGpu``.

pycuda reports CUDA errors by raising (``pycuda.driver.LogicError``, ``RuntimeError``, ``MemoryError``, all
subclasses of ``pycuda.driver.Error``), not by return codes; so does this double. Page-locked arrays are numpy
arrays over memory the device registers as pinned, so copies from them are asynchronous.

Where it may differ: real pycuda needs a current context (``autoprimaryctx`` makes the primary one current on
import); here importing it only records that it was imported, and a call before that fails as pycuda does with
"invalid device context".
"""

from __future__ import annotations

import importlib.machinery
import types

import numpy as np

from .device import CudaFault, FakeGpu


def make_pycuda(gpu: FakeGpu):
    """The modules to install as ``pycuda`` and ``pycuda.driver``, and the finder for ``pycuda.autoprimaryctx``."""
    drv = types.ModuleType("pycuda.driver")
    drv.__spec__ = importlib.machinery.ModuleSpec("pycuda.driver", None)
    state = {"context": False}

    class Error(Exception):
        pass

    class LogicError(Error):
        pass

    class RuntimeError_(Error):
        pass

    class MemoryError_(Error):
        pass

    def guard(what, fn, *args):
        if not gpu.driver:
            raise RuntimeError_(f"{what} failed: CUDA driver version is insufficient for CUDA runtime version")
        if not state["context"] and what != "cuInit":
            raise LogicError(f"{what} failed: invalid device context")
        try:
            return fn(*args)
        except CudaFault as exc:
            kind = MemoryError_ if exc.code == "cudaErrorMemoryAllocation" else LogicError
            raise kind(f"{what} failed: {exc}") from None

    def init(flags: int = 0) -> None:
        guard("cuInit", lambda: None)

    class Device:
        def __init__(self, i: int) -> None:
            if i != 0:
                raise LogicError("cuDeviceGet failed: invalid device ordinal")

        @staticmethod
        def count() -> int:
            if not gpu.driver:
                raise RuntimeError_("cuDeviceGetCount failed: initialization error")
            return 1

        def name(self) -> str:
            return gpu.name

        def compute_capability(self) -> tuple[int, int]:
            return tuple(gpu.cc)

    class Stream:
        def __init__(self, flags: int = 0) -> None:
            from .device import Stream as S

            self.handle = guard("cuStreamCreate", gpu.handle)
            gpu.streams[self.handle] = S(self.handle)

        def synchronize(self) -> None:
            guard("cuStreamSynchronize", gpu.synchronize, self.handle)

    class DeviceAllocation:
        def __init__(self, nbytes: int) -> None:
            self.ptr = guard("cuMemAlloc", gpu.malloc, nbytes)

        def __int__(self) -> int:
            return self.ptr

        def free(self) -> None:
            guard("cuMemFree", gpu.free, self.ptr)

    def mem_alloc(nbytes: int) -> DeviceAllocation:
        return DeviceAllocation(int(nbytes))

    def pagelocked_empty(shape, dtype, order="C", mem_flags=0) -> np.ndarray:
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        ptr = guard("cuMemHostAlloc", gpu.malloc_host, n)
        return gpu.pinned[ptr][:n].view(dtype).reshape(shape)

    def _stream(stream):
        return 0 if stream is None else stream.handle

    def memcpy_htod_async(dest, src: np.ndarray, stream=None) -> None:
        guard("cuMemcpyHtoDAsync", gpu.copy, int(dest), src.ctypes.data, src.nbytes, "htod", _stream(stream))

    def memcpy_dtoh_async(dest: np.ndarray, src, stream=None) -> None:
        guard("cuMemcpyDtoHAsync", gpu.copy, dest.ctypes.data, int(src), dest.nbytes, "dtoh", _stream(stream))

    class Event:
        def __init__(self, flags: int = 0) -> None:
            from .device import Event as E

            self.handle = guard("cuEventCreate", gpu.handle)
            gpu.events[self.handle] = E(self.handle)

        def record(self, stream=None) -> "Event":
            guard("cuEventRecord", gpu.record, self.handle, _stream(stream))
            return self

        def synchronize(self) -> "Event":
            guard("cuEventSynchronize", gpu.event_synchronize, self.handle)
            return self

        def time_till(self, end: "Event") -> float:
            return guard("cuEventElapsedTime", gpu.elapsed, self.handle, end.handle)

        def time_since(self, start: "Event") -> float:
            return start.time_till(self)

    for obj in (init, Device, Stream, mem_alloc, pagelocked_empty, memcpy_htod_async, memcpy_dtoh_async, Event,
                Error, LogicError, DeviceAllocation):
        setattr(drv, obj.__name__, obj)
    drv.RuntimeError, drv.MemoryError = RuntimeError_, MemoryError_

    pkg = types.ModuleType("pycuda")
    pkg.__spec__ = importlib.machinery.ModuleSpec("pycuda", None, is_package=True)
    pkg.__path__ = []
    pkg.driver = drv
    return {"pycuda": pkg, "pycuda.driver": drv}, ContextFinder(state)


class ContextFinder:
    """Imports ``pycuda.autoprimaryctx``: running it makes the primary context current, as the real module does."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def find_spec(self, name, path=None, target=None):
        if name != "pycuda.autoprimaryctx":
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        self.state["context"] = True
