"""Run a built engine: tensor-name I/O and execute_async_v3 on a CUDA stream. A runner only runs: timing lives in
``edgekit.measure`` (``launcher`` gives it what to time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import EdgekitError
from ..base import Runner
from .build import _logger, gpu_identity
from .options import require_tensorrt


def throughput(batch: int, median_ms: float) -> float:
    """Images per second at ``batch`` from the median time of one call."""
    return batch / median_ms * 1e3 if median_ms > 0 else float("nan")


class TensorRTRunner(Runner):
    """Deserialises an engine and runs it by tensor name with ``execute_async_v3``.

    Device buffers, page-locked host buffers, the stream and the events come from cuda-python, pycuda or
    torch, whichever is installed (``buffers`` picks one); see ``cudamem``. A DLA engine runs on ``dla_core``,
    which the runtime must be told before it deserializes the engine (trtexec's loadEngine does the same).
    Every TensorRT call that reports failure by its return value is checked.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, batch: int | None = None, buffers: str | None = None,
                 dla_core: int | None = None) -> None:
        super().__init__()
        self.engine_path, self.device, self.batch, self.buffers = Path(engine_path), "cuda", batch, buffers
        self.dla_core, self.cleanup = dla_core, None

    def activate_impl(self) -> None:
        from .cudamem import open_memory

        trt = require_tensorrt()
        self._trt = trt
        self.mem = open_memory(self.buffers)
        self._log = _logger(trt)
        self.runtime = trt.Runtime(self._log)
        if self.dla_core is not None:
            self.runtime.DLA_core = int(self.dla_core)
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            said = "; ".join(m for _, m in self._log.messages[-2:]) or "no message"
            raise EdgekitError(f"{self.engine_path} cannot be deserialized here (TensorRT said: {said[:300]}): an "
                               "engine runs only on the TensorRT version and GPU that built it; rebuild it here "
                               "with edgekit build")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1:
            raise EdgekitError(f"edgekit runs single-input classifiers; this engine has {len(self.inputs)} inputs")
        shape = list(self.engine.get_tensor_shape(self.inputs[0]))
        self.input_shape = [None if d < 0 else d for d in shape]
        self._bound: int | None = None

    def batch_range(self) -> tuple[int, int]:
        """The batches the engine takes: its optimization profile's min and max (its batch when static)."""
        if self.input_shape[0] is not None:
            return int(self.input_shape[0]), int(self.input_shape[0])
        shapes = self.engine.get_tensor_profile_shape(self.inputs[0], 0)
        if len(shapes) != 3:
            raise EdgekitError(f"{self.engine_path.name} has a dynamic batch but no optimization profile for "
                               f"{self.inputs[0]}: rebuild it with --batch-profile")
        return int(shapes[0][0]), int(shapes[2][0])

    @property
    def max_batch(self) -> int:
        """The optimization profile's max batch (the engine's batch when it is static)."""
        return self.batch_range()[1]

    def _bind(self, batch: int) -> None:
        if self._bound == batch:
            return
        lo, hi = self.batch_range()
        if not lo <= batch <= hi:
            raise EdgekitError(f"batch {batch} is outside {self.engine_path.name}'s optimization profile (batch "
                               f"{lo}..{hi}): run batches in that range, or rebuild with --batch-profile")
        trt = self._trt
        self.mem.free()
        self._bound = None
        shape = [batch, *[int(d) for d in self.input_shape[1:]]]
        if not self.context.set_input_shape(self.inputs[0], shape):
            said = "; ".join(m for _, m in self._log.messages[-1:])
            raise EdgekitError(f"TensorRT refused input shape {shape} for {self.engine_path.name} ({said[:200]})")
        self._dev, self._host = {}, {}
        for n in self.inputs + self.outputs:
            shp = tuple(self.context.get_tensor_shape(n))
            if any(d < 0 for d in shp):
                raise EdgekitError(f"TensorRT left {n} without a shape ({list(shp)}) after setting the input shape")
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            self._host[n] = self.mem.host(shp, dtype)
            self._dev[n] = self.mem.device(self._host[n].nbytes)
            if not self.context.set_tensor_address(n, self._dev[n]):
                raise EdgekitError(f"TensorRT refused the device address of {n}")
        self._bound = batch

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.mem.stream):
            said = "; ".join(m for _, m in self._log.messages[-1:])
            raise EdgekitError(f"TensorRT failed to enqueue {self.engine_path.name} ({said[:200] or 'no message'})")

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        """End to end: into page-locked memory, host -> device, execute, device -> host."""
        self._bind(len(x))
        inp, out = self.inputs[0], self.outputs[0]
        np.copyto(self._host[inp], x, casting="same_kind")
        self.mem.to_device(self._dev[inp], self._host[inp])
        self._enqueue()
        self.mem.to_host(self._host[out], self._dev[out])
        self.mem.synchronize()
        return self._host[out].astype(np.float32, copy=True)

    def launcher(self, batch: int, x: np.ndarray):
        """(launch, intervals, method) for timing GPU compute at ``batch`` the way trtexec does: inputs resident on
        the device (``x`` copied once), one inference per ``launch()`` with nothing else on the stream, replayed
        from a CUDA graph where the buffer library can capture one, else enqueued back to back; ``intervals(launch,
        n)`` gives the device time of each of n launches between events."""
        self._bind(batch)
        inp = self.inputs[0]
        np.copyto(self._host[inp], x[:batch], casting="same_kind")
        self.mem.to_device(self._dev[inp], self._host[inp])
        self._enqueue()  # TensorRT's first enqueue after a shape change does setup work that must stay out of a graph
        self.mem.synchronize()
        try:
            launch = self.mem.capture(self._enqueue)
            method = "CUDA graph"
        except EdgekitError as exc:
            launch, method = self._enqueue, f"back-to-back enqueues ({exc})"
        return launch, self.mem.event_intervals, method

    def deactivate_impl(self) -> None:
        if getattr(self, "mem", None) is not None:
            self.mem.close()
        self.mem, self.context, self.engine, self.runtime, self._bound = None, None, None, None, None
        if getattr(self, "cleanup", None) is not None:
            self.cleanup()  # the temporary folder the backend built this engine in

    def describe(self) -> dict:
        try:
            gpu, cc = gpu_identity()
        except EdgekitError as exc:  # the facts are for the report; the engine ran
            gpu, cc = f"n/a ({exc})", ()
        return {"backend": self.name, "device": "cuda", "gpu": gpu, "compute_capability": list(cc),
                "tensorrt": self._trt.__version__ if hasattr(self, "_trt") else None, "threads": None,
                "buffers": self.mem.name if getattr(self, "mem", None) is not None else self.buffers,
                "dla_core": self.dla_core, "host_copies": "pinned"}
