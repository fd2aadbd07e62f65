"""Device buffers, page-locked host memory, a stream and CUDA events for the TensorRT runner.

Three libraries can provide them; NVIDIA's samples use cuda-python (``cuda.bindings``), older code pycuda,
and a machine with PyTorch on CUDA already has torch. Each is a small class with the same methods, chosen by
``choose_library`` (a pure function) from what is installed; none is imported at module level.
"""

from __future__ import annotations

import numpy as np

from ..._optional import available as installed
from ...errors import EdgekitError, MissingDependencyError

LIBRARIES = ("cuda-python", "pycuda", "torch")


def choose_library(available: set[str], preferred: str | None = None) -> str:
    """cuda-python first (NVIDIA's current choice), then pycuda, then torch; ``preferred`` must be installed."""
    if preferred is not None:
        if preferred not in LIBRARIES:
            raise EdgekitError(f"unknown CUDA buffer library {preferred!r}: choose one of {', '.join(LIBRARIES)}")
        if preferred not in available:
            raise MissingDependencyError(f"{preferred} is not installed (or sees no GPU): pip install "
                                         f"{'cuda-python' if preferred == 'cuda-python' else preferred}")
        return preferred
    for lib in LIBRARIES:
        if lib in available:
            return lib
    raise MissingDependencyError("no CUDA library for TensorRT's buffers: pip install 'edgekit[tensorrt]' "
                                 "(brings cuda-python) on a machine with an NVIDIA GPU")


def probe_devices() -> dict[str, tuple[int, str | None]]:
    """Per installed CUDA library: (devices it sees, why none). A library that imports is not a GPU: with no
    driver, cuda-python imports and ``cudaGetDeviceCount`` answers ``cudaErrorInsufficientDriver``."""
    found: dict[str, tuple[int, str | None]] = {}
    if installed("cuda"):
        try:
            rt = _cudart()
            err, count = rt.cudaGetDeviceCount()
            found["cuda-python"] = (int(count or 0), None) if int(err) == 0 else (0, _cuda_error(rt, err))
        except MissingDependencyError as exc:
            found["cuda-python"] = (0, str(exc))
    if installed("pycuda"):
        try:
            import pycuda.driver as drv

            drv.init()
            found["pycuda"] = (int(drv.Device.count()), None)
        except Exception as exc:  # pycuda raises its own RuntimeError subclasses, or a bare RuntimeError
            found["pycuda"] = (0, f"{type(exc).__name__}: {str(exc).strip()[:120]}")
    if installed("torch"):
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        found["torch"] = (n, None if n else f"torch {torch.__version__} sees no CUDA device (built for "
                          f"{'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU only'})")
    return {k: (n, None if n else why or "0 devices") for k, (n, why) in found.items()}


def _cuda_error(rt, err) -> str:
    """``cudaErrorInsufficientDriver (35): CUDA driver version is insufficient ...`` from a cudaError_t."""
    name = getattr(err, "name", str(err))
    try:
        _, text = rt.cudaGetErrorString(err)
        text = text.decode() if isinstance(text, bytes) else str(text)
    except Exception:  # the message is a courtesy; the name already says it
        text = ""
    return f"{name} ({int(err)}){': ' + text if text else ''}"


def no_device_reason(probes: dict[str, tuple[int, str | None]]) -> str | None:
    """None when some library sees a GPU, else one line saying what each library answered."""
    if any(n > 0 for n, _ in probes.values()):
        return None
    if not probes:
        return "no CUDA library is installed (cuda-python, pycuda or torch with CUDA)"
    return "; ".join(f"{lib}: {why}" for lib, (_, why) in probes.items())


def installed_libraries() -> set[str]:
    """The CUDA libraries that are installed and see at least one device."""
    return {lib for lib, (n, _) in probe_devices().items() if n > 0}


def open_memory(preferred: str | None = None):
    lib = choose_library(installed_libraries(), preferred)
    return {"cuda-python": CudaPythonMemory, "pycuda": PycudaMemory, "torch": TorchMemory}[lib]()


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            raise MissingDependencyError("cuda-python is not installed: pip install cuda-python") from None
    return cudart


def _call(result, what: str):
    """cuda-python returns (error, value...); raise on an error, return the value(s)."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(getattr(err, "value", err)) != 0:
        raise EdgekitError(f"CUDA call {what} failed: {err}")
    return rest[0] if len(rest) == 1 else tuple(rest) or None


class CudaPythonMemory:
    name = "cuda-python"

    def __init__(self) -> None:
        self.rt = _cudart()
        self._stream = _call(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        self._device: list = []
        self._host: list = []

    @property
    def stream(self) -> int:
        return int(self._stream)

    def device(self, nbytes: int) -> int:
        ptr = _call(self.rt.cudaMalloc(nbytes), "cudaMalloc")
        self._device.append(ptr)
        return int(ptr)

    def host(self, shape, dtype) -> np.ndarray:
        """Page-locked host memory seen as a numpy array (what TensorRT's samples do)."""
        import ctypes

        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = _call(self.rt.cudaMallocHost(nbytes), "cudaMallocHost")
        self._host.append(ptr)
        buf = ctypes.cast(int(ptr), ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype)))
        return np.ctypeslib.as_array(buf, (int(np.prod(shape)),)).reshape(shape)

    def to_device(self, dst: int, src: np.ndarray) -> None:
        _call(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes,
                                      self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self._stream),
              "cudaMemcpyAsync to device")

    def to_host(self, dst: np.ndarray, src: int) -> None:
        _call(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes,
                                      self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self._stream),
              "cudaMemcpyAsync to host")

    def synchronize(self) -> None:
        _call(self.rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def timed(self, fn) -> float:
        """Milliseconds between CUDA events recorded on the stream around ``fn()``."""
        start, end = (_call(self.rt.cudaEventCreate(), "cudaEventCreate") for _ in range(2))
        try:
            _call(self.rt.cudaEventRecord(start, self._stream), "cudaEventRecord")
            fn()
            _call(self.rt.cudaEventRecord(end, self._stream), "cudaEventRecord")
            _call(self.rt.cudaEventSynchronize(end), "cudaEventSynchronize")
            return float(_call(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))
        finally:
            self.rt.cudaEventDestroy(start)
            self.rt.cudaEventDestroy(end)

    def free(self) -> None:
        """Device and host buffers; the stream stays for the next binding."""
        for p in self._device:
            self.rt.cudaFree(p)
        for p in self._host:
            self.rt.cudaFreeHost(p)
        self._device, self._host = [], []

    def close(self) -> None:
        self.free()
        self.rt.cudaStreamDestroy(self._stream)


class PycudaMemory:
    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.autoprimaryctx  # noqa: F401  the primary context, which TensorRT's runtime also uses
        import pycuda.driver as cuda

        self.cuda = cuda
        self._stream = cuda.Stream()
        self._device: list = []

    @property
    def stream(self) -> int:
        return int(self._stream.handle)

    def device(self, nbytes: int) -> int:
        d = self.cuda.mem_alloc(nbytes)
        self._device.append(d)
        return int(d)

    def host(self, shape, dtype) -> np.ndarray:
        return self.cuda.pagelocked_empty(tuple(shape), np.dtype(dtype))

    def to_device(self, dst: int, src: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(dst, src, self._stream)

    def to_host(self, dst: np.ndarray, src: int) -> None:
        self.cuda.memcpy_dtoh_async(dst, src, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def timed(self, fn) -> float:
        start, end = self.cuda.Event(), self.cuda.Event()
        start.record(self._stream)
        fn()
        end.record(self._stream)
        end.synchronize()
        return float(start.time_till(end))

    def free(self) -> None:
        for d in self._device:
            d.free()
        self._device = []

    def close(self) -> None:
        self.free()


class TorchMemory:
    name = "torch"

    def __init__(self) -> None:
        import torch

        if not torch.cuda.is_available():
            raise EdgekitError("TensorRT needs an NVIDIA GPU, and torch sees none")
        self.torch = torch
        self._stream = torch.cuda.Stream()
        self._keep: list = []

    @property
    def stream(self) -> int:
        return int(self._stream.cuda_stream)

    def device(self, nbytes: int) -> int:
        t = self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda")
        self._keep.append(t)
        return int(t.data_ptr())

    def host(self, shape, dtype) -> np.ndarray:
        t = self.torch.from_numpy(np.empty(tuple(shape), np.dtype(dtype))).pin_memory()
        self._keep.append(t)
        return t.numpy()

    def _view(self, ptr: int, nbytes: int):
        for t in self._keep:
            if t.is_cuda and t.data_ptr() == ptr:
                return t[:nbytes]
        raise EdgekitError("device pointer not allocated by this TorchMemory")

    def to_device(self, dst: int, src: np.ndarray) -> None:
        with self.torch.cuda.stream(self._stream):
            self._view(dst, src.nbytes).copy_(self.torch.from_numpy(src.reshape(-1).view(np.uint8)),
                                              non_blocking=True)

    def to_host(self, dst: np.ndarray, src: int) -> None:
        with self.torch.cuda.stream(self._stream):
            self.torch.from_numpy(dst.reshape(-1).view(np.uint8)).copy_(self._view(src, dst.nbytes),
                                                                        non_blocking=True)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def timed(self, fn) -> float:
        start = self.torch.cuda.Event(enable_timing=True)
        end = self.torch.cuda.Event(enable_timing=True)
        start.record(self._stream)
        fn()
        end.record(self._stream)
        end.synchronize()
        return float(start.elapsed_time(end))

    def free(self) -> None:
        self._keep = []

    def close(self) -> None:
        self.free()
