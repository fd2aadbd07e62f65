"""The device under the double: memory in bytes, streams in order, events on a clock, graphs that replay.

One ``FakeGpu`` is shared by the fake ``cuda.bindings.runtime``, the fake ``pycuda.driver``, the fake torch CUDA
subset and the fake TensorRT, as one CUDA context is shared by them on a real machine: a pointer from any of them
is valid for all.

The rules it keeps, because edgekit's code relies on them (CUDA Runtime API reference, "Stream synchronization
behavior" and "API synchronization behavior" in the CUDA programming guide):

- Device memory is not host memory: a device pointer is a number in a range no host code may read; copies move
  bytes, and a copy past the end of an allocation is refused (``cudaErrorInvalidValue``).
- Work on a stream runs in order and later than the host enqueues it. Results reach host memory only once the
  host synchronizes (stream, event or device), so a read before the synchronization sees the old bytes: on a real
  GPU it is a race that usually loses; here it always loses, which makes a missing synchronization a test failure.
- A copy from or to pageable host memory is synchronous with the host (the copy is staged); from page-locked
  memory it is asynchronous.
- Events carry a device timestamp: the time the stream reached them. ``elapsed`` between two events is exact
  device time, so gaps in the stream (host enqueue latency) show up in it, as they do on a GPU.
- While a stream captures a graph, its work is recorded, not run; synchronizing it is an error that invalidates
  the capture (``cudaErrorStreamCaptureUnsupported``).

Where it differs from a GPU: time is a model, not a measurement. The host clock advances only by the modelled cost
of each API call (``Costs``), never by Python's own time, so every figure is deterministic; a kernel's device time
is what the engine says it costs. Errors that a real device raises asynchronously (an illegal address) are
returned at the next synchronization, as the sticky error of the context, without poisoning later tests.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np

DEVICE_BASE = 0x7F00_0000_0000  # device addresses live here, far from any host mapping of this process


class CudaFault(Exception):
    """A CUDA-rule violation, carrying the cudaError_t value (by name) that the real call returns."""

    def __init__(self, name: str, what: str = "") -> None:
        super().__init__(f"{name}: {what}")
        self.code = name


@dataclass
class Costs:
    """Modelled host and device costs in milliseconds (and bytes per millisecond for copies)."""

    api_call: float = 0.002  # any runtime call: event record, graph launch
    enqueue_kernel: float = 0.040  # host time of one TensorRT enqueue (execute_async_v3) before its work is queued
    kernel_base: float = 0.300  # device time of one inference
    kernel_per_image: float = 0.050
    pinned_bytes_per_ms: float = 20e6  # ~20 GB/s over PCIe
    pageable_bytes_per_ms: float = 8e6


@dataclass
class Stream:
    handle: int
    tail: float = 0.0  # device time at which its last queued work ends
    queue: list = field(default_factory=list)  # callables not yet run
    done: int = 0  # how many of the queue have run
    capture: "Graph | None" = None
    destroyed: bool = False


@dataclass
class Event:
    handle: int
    stream: int | None = None
    time: float | None = None
    position: int = 0  # queue position of the stream when recorded


@dataclass
class Graph:
    handle: int
    ops: list = field(default_factory=list)  # (device ms, callable)
    invalid: bool = False


class FakeGpu:
    """One device and its context. ``driver=False`` is a machine where the CUDA library imports but no driver
    answers (cudaGetDeviceCount returns cudaErrorInsufficientDriver)."""

    def __init__(self, name: str = "NVIDIA H100 80GB HBM3", cc: tuple[int, int] = (9, 0), memory: int = 80 << 30,
                 driver: bool = True, dla_cores: int = 0, costs: Costs | None = None,
                 faults: dict | None = None) -> None:
        self.name, self.cc, self.memory, self.driver, self.dla_cores = name, cc, memory, driver, dla_cores
        self.costs = costs or Costs()
        # fault injection, for the tests of what edgekit does when a call fails: "enqueue" (execute_async_v3
        # returns False), "tamper" (a function applied to every engine output: a broken engine),
        # "cudaGetDeviceProperties" (its error name), "raise_versions" (the runtime's version calls raise)
        self.faults = dict(faults or {})
        self.device: dict[int, np.ndarray] = {}  # base address -> bytes
        self.pinned: dict[int, np.ndarray] = {}  # page-locked host buffers by address
        self.streams: dict[int, Stream] = {0: Stream(0)}  # 0: the legacy default stream
        self.events: dict[int, Event] = {}
        self.graphs: dict[int, Graph] = {}
        self.execs: dict[int, Graph] = {}
        self.host = 0.0
        self.sticky: str | None = None
        self.calls: list[str] = []  # the API calls made, in order (for tests that check a sequence)
        self._next_dev, self._next_handle = DEVICE_BASE, 1

    # --- bookkeeping ---------------------------------------------------------------------------------------
    def handle(self) -> int:
        self._next_handle += 1
        return 0x1000 + self._next_handle

    def used(self) -> int:
        return sum(a.nbytes for a in self.device.values())

    def stream(self, handle) -> Stream:
        s = self.streams.get(int(handle or 0))
        if s is None or s.destroyed:
            raise CudaFault("cudaErrorInvalidResourceHandle", f"stream {handle!r} was not created")
        return s

    # --- memory -----------------------------------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        if nbytes < 0:
            raise CudaFault("cudaErrorInvalidValue", "negative size")
        if self.used() + nbytes > self.memory:
            raise CudaFault("cudaErrorMemoryAllocation", f"{nbytes} bytes")
        if nbytes == 0:
            return 0  # cudaMalloc(0) succeeds with a null pointer
        ptr = self._next_dev
        self._next_dev += (nbytes + 511) // 512 * 512 + 512
        self.device[ptr] = np.zeros(nbytes, np.uint8)
        return ptr

    def free(self, ptr: int) -> None:
        if int(ptr) == 0:
            return
        if self.device.pop(int(ptr), None) is None:
            raise CudaFault("cudaErrorInvalidValue", f"{int(ptr):#x} is not a device allocation")

    def malloc_host(self, nbytes: int) -> int:
        buf = np.zeros(max(nbytes, 1), np.uint8)
        ptr = buf.ctypes.data
        self.pinned[ptr] = buf
        return ptr

    def free_host(self, ptr: int) -> None:
        if self.pinned.pop(int(ptr), None) is None:
            raise CudaFault("cudaErrorInvalidValue", f"{int(ptr):#x} is not page-locked memory of this context")

    def view(self, ptr: int, nbytes: int) -> np.ndarray:
        """The device bytes [ptr, ptr + nbytes), which must lie inside one allocation."""
        ptr = int(ptr)
        for base, buf in self.device.items():
            if base <= ptr < base + max(buf.nbytes, 1):
                if ptr - base + nbytes > buf.nbytes:
                    raise CudaFault("cudaErrorInvalidValue", f"{nbytes} bytes at {ptr:#x} run past the end of a "
                                                              f"{buf.nbytes}-byte allocation")
                return buf[ptr - base:ptr - base + nbytes]
        raise CudaFault("cudaErrorInvalidValue", f"{ptr:#x} is not device memory")

    def is_device(self, ptr: int) -> bool:
        return any(b <= int(ptr) < b + max(a.nbytes, 1) for b, a in self.device.items())

    def is_pinned(self, ptr: int, nbytes: int) -> bool:
        ptr = int(ptr)
        return any(b <= ptr and ptr + nbytes <= b + a.nbytes for b, a in self.pinned.items())

    # --- streams and work ---------------------------------------------------------------------------------------
    def enqueue(self, handle, device_ms: float, fn, host_ms: float | None = None) -> None:
        """Queue ``fn`` on the stream: it runs, in order, at the next synchronization."""
        s = self.stream(handle)
        self.host += self.costs.api_call if host_ms is None else host_ms
        if s.capture is not None:
            s.capture.ops.append((device_ms, fn))
            return
        start = max(s.tail, self.host)
        s.tail = start + device_ms
        s.queue.append(fn)

    def flush(self, s: Stream, upto: int | None = None) -> None:
        upto = len(s.queue) if upto is None else upto
        while s.done < upto:
            fn = s.queue[s.done]
            s.done += 1
            try:
                fn()
            except CudaFault as exc:  # an illegal access inside a kernel: sticky, reported at synchronization
                self.sticky = self.sticky or exc.code

    def synchronize(self, handle) -> None:
        s = self.stream(handle)
        if s.capture is not None:
            s.capture.invalid = True
            raise CudaFault("cudaErrorStreamCaptureUnsupported", "synchronizing a capturing stream")
        self.flush(s)
        self.host = max(self.host, s.tail)
        self._raise_sticky()

    def device_synchronize(self) -> None:
        for s in self.streams.values():
            self.flush(s)
            self.host = max(self.host, s.tail)
        self._raise_sticky()

    def _raise_sticky(self) -> None:
        if self.sticky is not None:
            code, self.sticky = self.sticky, None
            raise CudaFault(code, "an earlier kernel failed")

    def copy(self, dst: int, src: int, nbytes: int, kind: str, handle) -> None:
        """cudaMemcpyAsync: ``kind`` is "htod" or "dtoh"; pageable host memory makes it synchronous."""
        if kind == "htod":
            if not self.is_device(dst) or self.is_device(src):
                raise CudaFault("cudaErrorInvalidValue", "host-to-device copy between the wrong kinds of memory")
            target = self.view(dst, nbytes)
            pinned = self.is_pinned(src, nbytes)
            rate = self.costs.pinned_bytes_per_ms if pinned else self.costs.pageable_bytes_per_ms
            if pinned:
                self.enqueue(handle, nbytes / rate, lambda: target.__setitem__(slice(None), _read(src, nbytes)))
            else:  # staged: the host buffer is read now and the call returns once it may be reused
                data = _read(src, nbytes)
                self.enqueue(handle, nbytes / rate, lambda: target.__setitem__(slice(None), data))
                self.host = max(self.host, self.stream(handle).tail)
        elif kind == "dtoh":
            if not self.is_device(src) or self.is_device(dst):
                raise CudaFault("cudaErrorInvalidValue", "device-to-host copy between the wrong kinds of memory")
            source = self.view(src, nbytes)
            pinned = self.is_pinned(dst, nbytes)
            rate = self.costs.pinned_bytes_per_ms if pinned else self.costs.pageable_bytes_per_ms
            self.enqueue(handle, nbytes / rate, lambda: ctypes.memmove(int(dst), source.ctypes.data, nbytes))
            if not pinned:
                self.synchronize(handle)
        elif kind == "dtod":
            source, target = self.view(src, nbytes), self.view(dst, nbytes)
            self.enqueue(handle, 2 * nbytes / (self.costs.pinned_bytes_per_ms * 100),  # ~2 TB/s of HBM
                         lambda: target.__setitem__(slice(None), source))
        else:
            raise CudaFault("cudaErrorInvalidMemcpyDirection", kind)

    # --- events and graphs ----------------------------------------------------------------------------------------
    def record(self, event: int, handle) -> None:
        e = self.events.get(int(event))
        if e is None:
            raise CudaFault("cudaErrorInvalidResourceHandle", "event not created")
        s = self.stream(handle)
        self.host += self.costs.api_call
        if s.capture is not None:
            raise CudaFault("cudaErrorStreamCaptureUnsupported", "recording a timing event inside a capture")
        e.stream, e.time, e.position = s.handle, max(s.tail, self.host), len(s.queue)

    def event_synchronize(self, event: int) -> None:
        e = self.events.get(int(event))
        if e is None:
            raise CudaFault("cudaErrorInvalidResourceHandle", "event not created")
        if e.stream is not None:
            self.flush(self.streams[e.stream], e.position)
            self.host = max(self.host, e.time)
        self._raise_sticky()

    def elapsed(self, start: int, end: int) -> float:
        a, b = self.events.get(int(start)), self.events.get(int(end))
        if a is None or b is None or a.time is None or b.time is None:
            raise CudaFault("cudaErrorInvalidResourceHandle", "an event was not created or not recorded")
        for e in (a, b):
            if self.streams[e.stream].done < e.position:
                raise CudaFault("cudaErrorNotReady", "the event has not completed: synchronize first")
        return float(b.time - a.time)

    def begin_capture(self, handle) -> None:
        s = self.stream(handle)
        if s.handle == 0:
            raise CudaFault("cudaErrorStreamCaptureUnsupported", "the legacy default stream cannot capture")
        if s.capture is not None:
            raise CudaFault("cudaErrorIllegalState", "the stream is already capturing")
        s.capture = Graph(self.handle())

    def end_capture(self, handle) -> int:
        s = self.stream(handle)
        if s.capture is None:
            raise CudaFault("cudaErrorIllegalState", "the stream is not capturing")
        g, s.capture = s.capture, None
        if g.invalid:
            raise CudaFault("cudaErrorStreamCaptureInvalidated", "the capture was invalidated")
        self.graphs[g.handle] = g
        return g.handle

    def instantiate(self, graph: int) -> int:
        g = self.graphs.get(int(graph))
        if g is None:
            raise CudaFault("cudaErrorInvalidValue", "not a graph")
        h = self.handle()
        self.execs[h] = Graph(h, list(g.ops))
        return h

    def launch(self, graph_exec: int, handle) -> None:
        g = self.execs.get(int(graph_exec))
        if g is None:
            raise CudaFault("cudaErrorInvalidValue", "not an instantiated graph")
        self.host += self.costs.api_call
        for ms, fn in g.ops:  # one launch: the captured work back to back, no host in between
            self.enqueue(handle, ms, fn, host_ms=0.0)


def _read(ptr: int, nbytes: int) -> np.ndarray:
    return np.frombuffer(ctypes.string_at(int(ptr), nbytes), np.uint8).copy()
