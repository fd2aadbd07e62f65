"""LiteRT (formerly TensorFlow Lite): runs a .tflite file with ai-edge-litert's interpreter (XNNPACK on the CPU).

An INT8 .tflite from litert-torch takes and gives int8 tensors; this runner quantizes the float input with the
input tensor's own scale and zero point and dequantizes the output, which is what an app does too."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import EdgekitError, first_line
from .base import BackendSpec, Runner, RunnerRequest

SPEC = BackendSpec(
    "litert", inputs=("tflite",), devices=("cpu",), precisions=("fp32", "int8"), suffixes=(".tflite",),
    requires=("ai_edge_litert",), extra="litert", fix="pip install ai-edge-litert (edgekit's [litert] extra)",
    wrong_input="the litert backend runs .tflite files, not {model!r}: run `edgekit export {model} --format tflite` "
                "first")


def quantize_io(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float to the tensor's integer type with its (scale, zero point); float tensors pass through."""
    if detail["dtype"] == np.float32:
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])


def dequantize_io(q: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return q
    scale, zero = detail["quantization"]
    return ((q.astype(np.float32) - zero) * scale).astype(np.float32)


class LiteRTRunner(Runner):
    name = "litert"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path, self.threads = Path(path), threads
        self.interpreter = None

    def activate_impl(self) -> None:
        litert = require("ai_edge_litert.interpreter", "the litert backend")
        try:
            self.interpreter = litert.Interpreter(model_path=str(self.path), num_threads=self.threads or 1)
            self.interpreter.allocate_tensors()
        except Exception as exc:
            raise EdgekitError(f"LiteRT cannot load {self.path} ({first_line(exc, 160)}): re-export it with "
                               "`edgekit export --format tflite`") from None
        self.input_detail = self.interpreter.get_input_details()[0]
        self.output_detail = self.interpreter.get_output_details()[0]
        self.input_shape = [int(d) for d in self.input_detail["shape"]]

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        it.set_tensor(self.input_detail["index"], quantize_io(np.ascontiguousarray(x), self.input_detail))
        it.invoke()
        return dequantize_io(it.get_tensor(self.output_detail["index"]), self.output_detail).copy()

    def deactivate_impl(self) -> None:
        self.interpreter = None

    def describe(self) -> dict:
        from importlib.metadata import version

        io = {k: str(np.dtype(d["dtype"])) for k, d in (("input", self.input_detail), ("output", self.output_detail))} \
            if self.interpreter is not None else {}
        return {"backend": self.name, "device": self.device, "threads": self.threads or 1,
                "ai-edge-litert": version("ai-edge-litert"), "io_dtypes": io}


def open(request: RunnerRequest) -> LiteRTRunner:
    return LiteRTRunner(request.path, request.threads)
