"""OpenVINO on Intel (and ARM) CPUs: reads edgekit's ONNX, FP32 or Q/DQ INT8, directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from ..errors import EdgekitError, first_line
from .base import Runner


def compiled_from_onnx(path: str | Path, device: str = "CPU", threads: int | None = None, hint: str = "LATENCY"):
    """A compiled model with the latency hint (one inference at a time, as a batch-1 edge app runs)."""
    ov = require("openvino", "the OpenVINO backend (pip install 'edgekit[openvino]')")
    core = ov.Core()
    # OpenVINO's CPU plugin silently computes in bf16 on CPUs that have it; FP32 means FP32 here
    config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        return core.compile_model(str(path), device, config)
    except Exception as exc:
        raise EdgekitError(f"OpenVINO cannot compile {path} ({first_line(exc)}): check the file or use "
                           "onnxruntime") from None


class OpenVINORunner(Runner):
    name = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "CPU") -> None:
        super().__init__()
        self.path, self.threads, self.device = Path(path), threads, device.lower()
        self._ov_device = device

    def activate_impl(self) -> None:
        self.compiled = compiled_from_onnx(self.path, self._ov_device, self.threads)
        self.request = self.compiled.create_infer_request()
        shape = self.compiled.input(0).get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else None for d in shape]

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        self.request.infer({0: x})
        return self.request.get_output_tensor(0).data.copy()

    def deactivate_impl(self) -> None:
        self.request = self.compiled = None

    def describe(self) -> dict:
        import openvino as ov

        return {"backend": self.name, "device": self.device, "threads": self.threads or "default",
                "openvino": ov.get_version(), "hint": "LATENCY",
                "inference_precision": str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))}


def int8_with_nncf(fp32_onnx: str | Path, out_xml: str | Path, calib_x: np.ndarray) -> Path:
    """NNCF post-training INT8 of the ONNX model for OpenVINO (its own recipe, for comparison)."""
    ov = require("openvino", "OpenVINO INT8")
    nncf = require("nncf", "OpenVINO INT8 through NNCF")
    model = ov.Core().read_model(str(fp32_onnx))
    dataset = nncf.Dataset(list(calib_x[:, None]))  # one (1, C, H, W) sample per item
    q = nncf.quantize(model, dataset, subset_size=len(calib_x))
    ov.save_model(q, str(out_xml))
    return Path(out_xml)
