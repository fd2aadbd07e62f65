"""Run a built engine: tensor-name I/O and execute_async_v3 on a CUDA stream."""

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
    torch, whichever is installed (``buffers`` picks one); see ``edgekit.backends.cudamem``.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path, batch: int | None = None, buffers: str | None = None) -> None:
        super().__init__()
        self.engine_path, self.device, self.batch, self.buffers = Path(engine_path), "cuda", batch, buffers

    def activate_impl(self) -> None:
        from .cudamem import open_memory

        trt = require_tensorrt()
        self._trt = trt
        self.mem = open_memory(self.buffers)
        self.runtime = trt.Runtime(_logger(trt))
        self.engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self.engine is None:
            raise EdgekitError(f"{self.engine_path} was built by another TensorRT version or for another GPU: "
                               "rebuild it here with edgekit build")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        if len(self.inputs) != 1:
            raise EdgekitError(f"edgekit runs single-input classifiers; this engine has {len(self.inputs)} inputs")
        shape = list(self.engine.get_tensor_shape(self.inputs[0]))
        self.input_shape = [None if d < 0 else d for d in shape]
        self._bound: int | None = None

    @property
    def max_batch(self) -> int:
        """The optimization profile's max batch (the engine's batch when it is static)."""
        if self.input_shape[0] is not None:
            return int(self.input_shape[0])
        _, _, hi = self.engine.get_tensor_profile_shape(self.inputs[0], 0)
        return int(hi[0])

    def _bind(self, batch: int) -> None:
        if self._bound == batch:
            return
        trt = self._trt
        self.mem.free()
        self.context.set_input_shape(self.inputs[0], [batch, *[int(d) for d in self.input_shape[1:]]])
        self._dev, self._host = {}, {}
        for n in self.inputs + self.outputs:
            shp = tuple(self.context.get_tensor_shape(n))
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(n)))
            self._host[n] = self.mem.host(shp, dtype)
            self._dev[n] = self.mem.device(self._host[n].nbytes)
            self.context.set_tensor_address(n, self._dev[n])
        self._bound = batch

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        """End to end: into page-locked memory, host -> device, execute, device -> host."""
        self._bind(len(x))
        inp, out = self.inputs[0], self.outputs[0]
        np.copyto(self._host[inp], x, casting="same_kind")
        self.mem.to_device(self._dev[inp], self._host[inp])
        if not self.context.execute_async_v3(self.mem.stream):
            raise EdgekitError(f"TensorRT failed to run {self.engine_path.name}")
        self.mem.to_host(self._host[out], self._dev[out])
        self.mem.synchronize()
        return self._host[out].astype(np.float32, copy=True)

    def compute_ms(self, batch: int, repeats: int = 100, warmup: int = 20) -> list[float]:
        """GPU compute time per call with CUDA events, inputs already on the device (no copies)."""
        self._bind(batch)

        def run():
            self.context.execute_async_v3(self.mem.stream)

        times = [self.mem.timed(run) for _ in range(warmup + repeats)]
        return times[warmup:]

    def deactivate_impl(self) -> None:
        if getattr(self, "mem", None) is not None:
            self.mem.close()
        self.mem, self.context, self.engine, self.runtime, self._bound = None, None, None, None, None

    def describe(self) -> dict:
        gpu, cc = gpu_identity()
        return {"backend": self.name, "device": "cuda", "gpu": gpu, "compute_capability": list(cc),
                "tensorrt": self._trt.__version__ if hasattr(self, "_trt") else None, "threads": None,
                "buffers": self.mem.name if getattr(self, "mem", None) is not None else self.buffers}
