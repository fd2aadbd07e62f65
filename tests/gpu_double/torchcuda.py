"""The few torch CUDA calls ``TorchMemory`` makes, over the same ``FakeGpu``: tensors on "cuda" are device
allocations, ``pin_memory()`` copies into page-locked memory, ``copy_`` between them is a cudaMemcpyAsync on the
current stream, and events time the stream.

Where it may differ: real torch allocates through its caching allocator (a freed tensor's memory is reused, not
returned), and ``copy_(non_blocking=True)`` from a tensor torch does not know to be pinned is synchronous; here
every CPU tensor made by ``pin_memory()`` is pinned and every other is pageable, which is the same rule.
"""

from __future__ import annotations

import contextlib
import types

import numpy as np

from .device import FakeGpu


def make_torch(gpu: FakeGpu) -> types.SimpleNamespace:
    current = {"stream": 0}

    class Tensor:
        def __init__(self, host: np.ndarray | None = None, ptr: int | None = None, nbytes: int = 0) -> None:
            self.host, self.ptr, self.nbytes = host, ptr, nbytes if host is None else host.nbytes

        @property
        def is_cuda(self) -> bool:
            return self.ptr is not None

        def data_ptr(self) -> int:
            return self.ptr if self.is_cuda else self.host.ctypes.data

        def __getitem__(self, s: slice) -> "Tensor":
            n = len(range(*s.indices(self.nbytes)))
            return Tensor(ptr=self.ptr, nbytes=n) if self.is_cuda else Tensor(host=self.host.reshape(-1)[s])

        def pin_memory(self) -> "Tensor":
            ptr = gpu.malloc_host(self.host.nbytes)
            arr = gpu.pinned[ptr][:self.host.nbytes].view(self.host.dtype).reshape(self.host.shape)
            arr[...] = self.host
            return Tensor(host=arr)

        def numpy(self) -> np.ndarray:
            if self.is_cuda:
                raise TypeError("can't convert cuda:0 device type tensor to numpy")
            return self.host

        def copy_(self, src: "Tensor", non_blocking: bool = False) -> "Tensor":
            n = min(self.nbytes, src.nbytes)
            if self.is_cuda and not src.is_cuda:
                gpu.copy(self.ptr, src.data_ptr(), n, "htod", current["stream"])
            elif src.is_cuda and not self.is_cuda:
                gpu.copy(self.data_ptr(), src.ptr, n, "dtoh", current["stream"])
            else:
                raise NotImplementedError("the double copies between host and device only")
            if not non_blocking:
                gpu.synchronize(current["stream"])
            return self

    class Stream:
        def __init__(self) -> None:
            from .device import Stream as S

            self.cuda_stream = gpu.handle()
            gpu.streams[self.cuda_stream] = S(self.cuda_stream)

        def synchronize(self) -> None:
            gpu.synchronize(self.cuda_stream)

    class Event:
        def __init__(self, enable_timing: bool = False) -> None:
            from .device import Event as E

            self.timing, self.handle = enable_timing, gpu.handle()
            gpu.events[self.handle] = E(self.handle)

        def record(self, stream=None) -> None:
            gpu.record(self.handle, stream.cuda_stream if stream is not None else current["stream"])

        def synchronize(self) -> None:
            gpu.event_synchronize(self.handle)

        def elapsed_time(self, end: "Event") -> float:
            if not (self.timing and end.timing):
                raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
            return gpu.elapsed(self.handle, end.handle)

    @contextlib.contextmanager
    def stream(s: Stream):
        old, current["stream"] = current["stream"], s.cuda_stream
        try:
            yield
        finally:
            current["stream"] = old

    def empty(n: int, dtype=None, device: str = "cpu") -> Tensor:
        if device != "cuda":
            return Tensor(host=np.empty(n, np.uint8))
        return Tensor(ptr=gpu.malloc(int(n)), nbytes=int(n))

    cuda = types.SimpleNamespace(is_available=lambda: gpu.driver, Stream=Stream, Event=Event, stream=stream)
    return types.SimpleNamespace(cuda=cuda, uint8="uint8", empty=empty, from_numpy=lambda a: Tensor(host=a),
                                 __version__="2.14.1+double")
