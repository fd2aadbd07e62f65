"""TensorRT's buffers through pycuda (older code) or torch (a machine, or a JetPack board, with only PyTorch on
CUDA): the same methods as ``cudamem.CudaPythonMemory``. Neither captures CUDA graphs here: GPU compute time is then
timed over back-to-back enqueues, and the report says which."""

from __future__ import annotations

import numpy as np

from ...errors import EdgekitError

NO_GRAPHS = "{lib} buffers: edgekit captures CUDA graphs through cuda-python only"


def nbytes_of(shape, dtype) -> int:
    """Bytes of a host buffer (for every library); a shape with a negative (dynamic, unset) dimension is a
    caller's bug, said now rather than as a negative size deep in a CUDA call."""
    if any(int(d) < 0 for d in shape):
        raise EdgekitError(f"buffer shape {list(shape)} has an unset dimension: the tensor shape was not set")
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


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
        nbytes_of(shape, dtype)
        return self.cuda.pagelocked_empty(tuple(int(d) for d in shape), np.dtype(dtype))

    def to_device(self, dst: int, src: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(dst, src, self._stream)

    def to_host(self, dst: np.ndarray, src: int) -> None:
        self.cuda.memcpy_dtoh_async(dst, src, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def event_intervals(self, launch, n: int) -> list[float]:
        events = [self.cuda.Event() for _ in range(n + 1)]
        events[0].record(self._stream)
        for e in events[1:]:
            launch()
            e.record(self._stream)
        events[-1].synchronize()
        return [float(a.time_till(b)) for a, b in zip(events, events[1:])]

    def capture(self, enqueue):
        raise EdgekitError(NO_GRAPHS.format(lib=self.name))

    def free(self) -> None:
        for d in self._device:
            d.free()
        self._device = []

    def close(self) -> None:
        self.free()


class TorchMemory:
    name = "torch"

    def __init__(self, torch_module=None) -> None:
        if torch_module is None:
            import torch as torch_module
        if not torch_module.cuda.is_available():
            raise EdgekitError("TensorRT needs an NVIDIA GPU, and torch sees none")
        self.torch = torch_module
        self._stream = torch_module.cuda.Stream()
        self._keep: list = []

    @property
    def stream(self) -> int:
        return int(self._stream.cuda_stream)

    def device(self, nbytes: int) -> int:
        t = self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda")
        self._keep.append(t)
        return int(t.data_ptr())

    def host(self, shape, dtype) -> np.ndarray:
        nbytes_of(shape, dtype)
        t = self.torch.from_numpy(np.empty(tuple(int(d) for d in shape), np.dtype(dtype))).pin_memory()
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

    def event_intervals(self, launch, n: int) -> list[float]:
        events = [self.torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
        events[0].record(self._stream)
        for e in events[1:]:
            launch()
            e.record(self._stream)
        events[-1].synchronize()
        return [float(a.elapsed_time(b)) for a, b in zip(events, events[1:])]

    def capture(self, enqueue):
        raise EdgekitError(NO_GRAPHS.format(lib=self.name))

    def free(self) -> None:
        self._keep = []

    def close(self) -> None:
        self.free()
