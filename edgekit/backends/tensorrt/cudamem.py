"""Device buffers, page-locked host memory, a stream and CUDA events for the TensorRT runner.

Three libraries can provide them; NVIDIA's samples use cuda-python (``cuda.bindings``), older code pycuda,
and a machine with PyTorch on CUDA already has torch. Each is a small class with the same methods (the pycuda and
torch ones in othermem.py), chosen by ``choose_library`` (a pure function) from what is installed; none is
imported at module level.
"""

from __future__ import annotations

import numpy as np

from ..._optional import available as installed
from ..._optional import hint
from ...errors import EdgekitError, MissingDependencyError
from .othermem import PycudaMemory, TorchMemory, nbytes_of

LIBRARIES = ("cuda-python", "pycuda", "torch")


def choose_library(available: set[str], preferred: str | None = None) -> str:
    """cuda-python first (NVIDIA's current choice), then pycuda, then torch; ``preferred`` must be installed."""
    if preferred is not None:
        if preferred not in LIBRARIES:
            raise EdgekitError(f"unknown CUDA buffer library {preferred!r}: choose one of {', '.join(LIBRARIES)}")
        if preferred not in available:
            module = {"cuda-python": "cuda.bindings", "pycuda": "pycuda", "torch": "torch"}[preferred]
            raise MissingDependencyError(f"{preferred} is not installed (or sees no GPU): {hint(module)}")
        return preferred
    for lib in LIBRARIES:
        if lib in available:
            return lib
    raise MissingDependencyError(f"no CUDA library for TensorRT's buffers: {hint('cuda.bindings')}, on a machine "
                                 "with an NVIDIA GPU")


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
    """Buffers, a stream and events from the library ``choose_library`` picks among those that see a GPU."""
    lib = choose_library(installed_libraries(), preferred)
    return {"cuda-python": CudaPythonMemory, "pycuda": PycudaMemory, "torch": TorchMemory}[lib]()


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError:
            raise MissingDependencyError(f"cuda-python is not installed: {hint('cuda.bindings')}") from None
    return cudart


def _call(result, what: str):
    """cuda-python returns (error, value...) and never raises for a CUDA error: raise on one, return the value(s)."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    code = int(getattr(err, "value", err))
    if code != 0:
        raise EdgekitError(f"CUDA call {what} failed: {getattr(err, 'name', 'error')} ({code})")
    return rest[0] if len(rest) == 1 else tuple(rest) or None



class CudaPythonMemory:
    """cuda-python (``cuda.bindings.runtime``): NVIDIA's samples' choice, and the one with CUDA graphs here."""

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
        """Page-locked host memory seen as a numpy array of any dtype (float16 included: numpy's ctypes bridge
        has no half type, so the view goes through bytes)."""
        import ctypes

        dtype, shape = np.dtype(dtype), tuple(int(d) for d in shape)
        nbytes = nbytes_of(shape, dtype)
        ptr = _call(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost")
        self._host.append(ptr)
        raw = (ctypes.c_ubyte * max(nbytes, 1)).from_address(int(ptr))
        return np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)

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

    def event_intervals(self, launch, n: int) -> list[float]:
        """Device milliseconds of each of ``n`` launches enqueued back to back, between events recorded between
        them (created once): the host waits once, at the end, as trtexec times its GPU compute."""
        events = [_call(self.rt.cudaEventCreate(), "cudaEventCreate") for _ in range(n + 1)]
        try:
            _call(self.rt.cudaEventRecord(events[0], self._stream), "cudaEventRecord")
            for i in range(n):
                launch()
                _call(self.rt.cudaEventRecord(events[i + 1], self._stream), "cudaEventRecord")
            _call(self.rt.cudaEventSynchronize(events[-1]), "cudaEventSynchronize")
            return [float(_call(self.rt.cudaEventElapsedTime(a, b), "cudaEventElapsedTime"))
                    for a, b in zip(events, events[1:])]
        finally:
            for e in events:
                self.rt.cudaEventDestroy(e)

    def capture(self, enqueue):
        """A CUDA graph of what ``enqueue()`` puts on the stream, as a launch function; raises EdgekitError when
        the work cannot be captured (the caller then enqueues directly)."""
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _call(self.rt.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        except BaseException:
            self.rt.cudaStreamEndCapture(self._stream)  # ends the (invalidated) capture: the first error is the news
            raise
        graph = _call(self.rt.cudaStreamEndCapture(self._stream), "cudaStreamEndCapture")
        try:
            graph_exec = _call(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            self.rt.cudaGraphDestroy(graph)
        self._graphs = [*getattr(self, "_graphs", []), graph_exec]
        return lambda: _call(self.rt.cudaGraphLaunch(graph_exec, self._stream), "cudaGraphLaunch")

    def free(self) -> None:
        """Device and host buffers and graphs; the stream stays for the next binding."""
        for g in getattr(self, "_graphs", []):
            self.rt.cudaGraphExecDestroy(g)
        for p in self._device:
            self.rt.cudaFree(p)
        for p in self._host:
            self.rt.cudaFreeHost(p)
        self._device, self._host, self._graphs = [], [], []

    def close(self) -> None:
        self.free()
        self.rt.cudaStreamDestroy(self._stream)
