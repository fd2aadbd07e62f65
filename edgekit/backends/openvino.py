"""OpenVINO on Intel (and ARM) CPUs: reads edgekit's ONNX, FP32 or Q/DQ INT8, directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import extra_hint, require
from ..errors import EdgekitError, first_line
from .base import BackendSpec, Runner, RunnerRequest

# CPU-plugin properties that --optimize may try; anything else is a typo, refused before compiling
TUNABLE = {"ENABLE_CPU_PINNING": bool, "CPU_DENORMALS_OPTIMIZATION": bool}

SPEC = BackendSpec(
    "openvino", inputs=("onnx",), devices=("cpu",), precisions=("fp32", "int8"), suffixes=(".onnx", ".xml"),
    tunable=tuple(TUNABLE), requires=("openvino",), extra="openvino", fix=extra_hint("openvino"),
    wrong_input="the openvino backend runs .onnx files, not {model!r}: run `edgekit export {model}` first, or "
                "pass --backend torch")


def compile_config(threads: int | None = None, hint: str = "LATENCY", options: dict | None = None) -> dict:
    """The compile properties: latency hint, FP32 meaning FP32, the thread count, tuned options."""
    # OpenVINO's CPU plugin silently computes in bf16 on CPUs that have it; FP32 means FP32 here
    config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    for k, v in (options or {}).items():
        if k not in TUNABLE:
            raise EdgekitError(f"unknown OpenVINO option {k!r}: choose from {', '.join(TUNABLE)}")
        config[k] = TUNABLE[k](v)
    return config


def read_model(path: str | Path):
    ov = require("openvino", "the OpenVINO backend")
    try:
        return ov.Core().read_model(str(path))
    except Exception as exc:
        raise EdgekitError(f"OpenVINO cannot read {path} ({first_line(exc)}): check the file or use "
                           "onnxruntime") from None


def compiled_from_onnx(path: str | Path, device: str = "CPU", threads: int | None = None, hint: str = "LATENCY",
                       options: dict | None = None, shape: tuple[int, ...] | None = None):
    """A compiled model with the latency hint (one inference at a time, as a batch-1 edge app runs).

    ``shape`` specializes a dynamic-batch model to one input shape first: the CPU plugin plans memory and
    picks kernels once for a static shape, which measured 8-30% faster at batch 1 than the dynamic graph.
    """
    ov = require("openvino", "the OpenVINO backend")
    model = read_model(path)
    if shape is not None and model.input(0).get_partial_shape().is_dynamic:
        model.reshape(list(shape))
    try:
        return ov.Core().compile_model(model, device, compile_config(threads, hint, options))
    except Exception as exc:
        raise EdgekitError(f"OpenVINO cannot compile {path} ({first_line(exc)}): check the file or use "
                           "onnxruntime") from None


class OpenVINORunner(Runner):
    """Runs an ONNX or IR file; a dynamic-batch model is compiled once per input shape it is given."""

    name = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "CPU",
                 options: dict | None = None) -> None:
        super().__init__()
        self.path, self.threads, self.device = Path(path), threads, device.lower()
        self._ov_device = device
        self.options = dict(options or {})
        compile_config(threads, options=self.options)  # refuse a bad option before any work

    def activate_impl(self) -> None:
        shape = read_model(self.path).input(0).get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else None for d in shape]
        self._requests: dict[tuple, object] = {}
        if None not in self.input_shape:
            self._request(tuple(self.input_shape))

    def _request(self, shape: tuple):
        if shape not in self._requests:
            static = None if None not in self.input_shape else shape
            self.compiled = compiled_from_onnx(self.path, self._ov_device, self.threads, options=self.options,
                                               shape=static)
            self._requests[shape] = self.compiled.create_infer_request()
        return self._requests[shape]

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        request = self._request(tuple(x.shape))
        request.infer({0: x})
        return request.get_output_tensor(0).data.copy()

    def deactivate_impl(self) -> None:
        self._requests, self.compiled = {}, None

    def describe(self) -> dict:
        import openvino as ov

        facts = {"backend": self.name, "device": self.device, "threads": self.threads or "default",
                 "openvino": ov.get_version(), "hint": "LATENCY", "options": self.options,
                 "shape_specialized": None in self.input_shape}
        if getattr(self, "compiled", None) is not None:
            facts["inference_precision"] = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        return facts


def open(request: RunnerRequest) -> OpenVINORunner:
    """A runner for the ONNX or IR file, with the tuned CPU-plugin options (``--optimize``'s choice)."""
    return OpenVINORunner(request.path, request.threads, request.device.upper(), dict(request.options))


def int8_with_nncf(fp32_onnx: str | Path, out_xml: str | Path, calib) -> Path:
    """NNCF post-training INT8 of the ONNX model for OpenVINO (its own recipe, for comparison). ``calib``: an array
    of samples, or an iterable of (1, C, H, W) samples with a length that can be read more than once."""
    ov = require("openvino", "OpenVINO INT8")
    nncf = require("nncf", "OpenVINO INT8 through NNCF")
    model = read_model(fp32_onnx)
    samples = list(calib[:, None]) if isinstance(calib, np.ndarray) else calib  # one (1, C, H, W) sample per item
    q = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(calib))
    ov.save_model(q, str(out_xml))
    return Path(out_xml)
